"""A drawing of a MobileNetV3 subnet: one column per stage, one box per active layer with its kernel
size and expand ratio (the layers beyond a stage's depth are left out)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metad2a.search_spaces.ofa_mbv3.subnet import (
    EXPANDS,
    KS,
    NUM_STAGES,
    SLOTS_PER_STAGE,
    canonical_arch_dict,
)


def draw_subnet(arch: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Stage / kernel / expand diagram of ``arch`` into the PNG ``path``: box width grows with the
    kernel size, colour with the expand ratio."""
    from metad2a.plotting import pyplot, save_figure

    plt = pyplot()
    a = canonical_arch_dict(arch)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=120)
    for s in range(NUM_STAGES):
        ax.text(s, 0.6, f"stage {s + 1}\ndepth {a['d'][s]}", ha="center", va="bottom", fontsize=8)
        for j in range(a["d"][s]):
            i = s * SLOTS_PER_STAGE + j
            k, e = a["ks"][i], a["e"][i]
            w = 0.35 + 0.08 * KS.index(k)
            colour = cmap(0.2 + 0.3 * EXPANDS.index(e))
            ax.add_patch(plt.Rectangle((s - w / 2, -j - 0.4), w, 0.8, fc=colour, ec="black", lw=0.8))
            ax.text(s, -j, f"k{k} e{e}", ha="center", va="center", fontsize=8,
                    color="white" if EXPANDS.index(e) < 2 else "black")
    ax.set_xlim(-0.6, NUM_STAGES - 0.4)
    ax.set_ylim(-SLOTS_PER_STAGE + 0.4, 1.3)
    ax.axis("off")
    ax.set_title(title or "MobileNetV3 subnet: kernel size (k) and expand ratio (e) of each layer", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
