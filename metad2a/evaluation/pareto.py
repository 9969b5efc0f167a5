"""The trade-off between predicted accuracy and cost: the Pareto front and its plot
(docs/fidelity.md#budget-pareto)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from metad2a.plotting import PLOT_EXTRA, has_pyplot, pyplot, save_figure

log = logging.getLogger("metad2a")


def pareto_front(scores: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, by increasing cost (ties: higher score first, then index).

    A point is dominated when another has a score at least as high and a cost at most as high, one of
    the two strictly. Equal points do not dominate each other (both are kept).
    """
    if len(scores) != len(costs):
        raise ValueError(f"{len(scores)} scores but {len(costs)} costs")
    order = sorted(range(len(scores)), key=lambda i: (costs[i], -scores[i], i))
    front: list[int] = []
    best = float("-inf")  # highest score among the points of lower (or equal) cost seen so far
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
        elif front and scores[i] == scores[front[-1]] and costs[i] == costs[front[-1]]:
            front.append(i)  # the same point twice: neither dominates the other
    return front


def plot_pareto(path: str | Path, costs: Sequence[float], scores: Sequence[float], front: Sequence[int],
                chosen: int | None, xlabel: str, ylabel: str, title: str = "") -> bool:
    """Plot every candidate, the front (a step line) and the chosen point into ``path`` (PNG).

    matplotlib is optional (``pip install -e '.[plot]'``): without it, one note line and no file.

    Returns:
        Whether the plot was written.
    """
    if not has_pyplot():
        log.info(f"note: matplotlib is not installed ({PLOT_EXTRA}); {Path(path).name} not written")
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    ax.scatter(costs, scores, s=14, c="0.6", label=f"candidates ({len(costs)})")
    fx, fy = [costs[i] for i in front], [scores[i] for i in front]
    ax.step(fx, fy, where="post", c="tab:blue", lw=1.2)
    ax.scatter(fx, fy, s=22, c="tab:blue", label=f"Pareto front ({len(front)})")
    if chosen is not None:
        ax.scatter([costs[chosen]], [scores[chosen]], s=90, marker="*", c="tab:red", label="chosen", zorder=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True
