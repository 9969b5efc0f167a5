"""Search under a budget (docs/fidelity.md#budget): the one feasibility filter both runners apply
to each batch of new unique valid architectures, and what ``result.json`` and ``pareto.png`` report.

Parameters and FLOPs come first (the space's closed-form counts, microseconds); latency is measured
only for the candidates within those limits, on the user's device, through the space's latency
hook and the fingerprint's cache. Every candidate the filter saw keeps its record, so that a
decoded duplicate costs nothing and an infeasible search can name the smallest costs it met.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metad2a.config import Budget
from metad2a.errors import MetaD2AError
from metad2a.evaluation.pareto import pareto_front, plot_pareto
from metad2a.latency import LatencyMeter
from metad2a.search_spaces.base import SearchSpace

log = logging.getLogger("metad2a")

FLAG = {"params_m": "--max-params", "mflops": "--max-flops", "latency_ms": "--max-latency-ms"}
UNIT = {"params_m": "M params", "mflops": "MFLOPs", "latency_ms": "ms"}
PARETO_FILE = "pareto.png"


class InfeasibleBudgetError(MetaD2AError):
    """No candidate fits the budget."""


class BudgetFilter:
    """Keeps the architectures within a budget; records the cost of every one it sees.

    Args:
        space: the search space (its ``arch_cost``, ``latency_ms`` and ``arch_key`` hooks).
        budget: the limits and the latency settings.
        num_classes: classes of the target (the head the costs include).
        default_cache: the latency cache folder when the budget names none.
        patience: a search stops early once this many architectures in a row (new to the run,
            unique and valid) were over the budget (``exhausted``); default ``PATIENCE``.
    """

    PATIENCE = 1000

    def __init__(self, space: SearchSpace, budget: Budget, num_classes: int, default_cache: str | Path,
                 patience: int | None = None) -> None:
        self.space, self.budget, self.num_classes = space, budget, num_classes
        self.patience = self.PATIENCE if patience is None else patience
        self.over_in_a_row = 0
        self.input_size = budget.input_size or space.cost_input_size
        self.limits = budget.limits()
        self.meter: LatencyMeter | None = None
        if budget.measures_latency:
            self.meter = LatencyMeter.open(space.name, budget.latency_device, budget.latency_batch,
                                           budget.latency_threads, self.input_size, budget.cache or default_cache)
        self.records: dict[str, dict[str, Any]] = {}  # arch key -> cost record, in order seen

    def __call__(self, archs: Sequence[Any]) -> list[Any]:
        """The feasible architectures among ``archs``, in their order."""
        keys = [self.space.arch_key(a) for a in archs]
        new = {}
        for a, k in zip(archs, keys):
            if k not in self.records and k not in new:
                new[k] = a
        for k, a in new.items():
            params_m, mflops = self.space.arch_cost(a, self.num_classes, self.input_size)
            rec = {"params_m": params_m, "mflops": mflops, "latency_ms": None}
            rec["over"] = [c for c in ("params_m", "mflops") if c in self.limits and rec[c] > self.limits[c]]
            self.records[k] = rec
        if self.meter is not None:
            timed = [k for k in new if not self.records[k]["over"]]
            if timed:
                try:
                    lat = self.space.latency_ms([new[k] for k in timed], self.num_classes, self.meter)
                finally:
                    self.meter.cache.save()
                for k, ms in zip(timed, lat):
                    rec = self.records[k]
                    rec["latency_ms"] = ms
                    if ms > self.limits["latency_ms"]:
                        rec["over"].append("latency_ms")
        kept = []
        for a, k in zip(archs, keys):
            if self.records[k]["over"]:
                self.over_in_a_row += 1
            else:
                self.over_in_a_row = 0
                kept.append(a)
        return kept

    @property
    def exhausted(self) -> bool:
        """Whether the last ``patience`` architectures offered were all over the budget."""
        return self.over_in_a_row >= self.patience

    def stop_reason(self) -> str:
        """Why a search under this budget stopped short."""
        return (f"stopped early: the last {self.over_in_a_row} new unique valid architectures were all over "
                f"the budget ({self.describe_limits()})")

    def cost(self, arch: Any) -> dict[str, Any]:
        """The cost record of an architecture the filter has seen."""
        return self.records[self.space.arch_key(arch)]

    @property
    def rejected(self) -> int:
        """Candidates seen that exceed a limit."""
        return sum(bool(r["over"]) for r in self.records.values())

    def describe_limits(self) -> str:
        return ", ".join(f"{FLAG[c]} {v:g}" for c, v in self.limits.items())

    def infeasible(self, what: str, hint: str = "raise the limits") -> InfeasibleBudgetError:
        """The one-line error when nothing fits: the smallest params, FLOPs and latency seen."""
        n = len(self.records)
        parts = []
        for c in ("params_m", "mflops", "latency_ms"):
            seen = [r[c] for r in self.records.values() if r[c] is not None]
            if seen:
                parts.append(f"{min(seen):.4g} {UNIT[c]}")
            elif c == "latency_ms" and self.meter is not None:
                parts.append("latency not measured (none within the params/FLOPs limits)")
        smallest = ", ".join(parts) if parts else "none"
        return InfeasibleBudgetError(
            f"no candidate fits the budget ({self.describe_limits()}) among {n} {what}; the smallest seen: "
            f"{smallest}; {hint}")

    # ------------------------------------------------------------------ reporting
    @property
    def pareto_axis(self) -> str:
        """The cost the Pareto front trades against the score: latency when measured, else FLOPs."""
        return "latency_ms" if self.meter is not None else "mflops"

    def costs(self, archs: Sequence[Any]) -> list[dict[str, Any]]:
        """``{params_m, mflops, latency_ms}`` of each architecture."""
        return [{c: self.cost(a)[c] for c in ("params_m", "mflops", "latency_ms")} for a in archs]

    def front(self, archs: Sequence[Any], scores: Sequence[float]) -> list[int]:
        """Indices of the non-dominated architectures (higher score, lower cost)."""
        return pareto_front(scores, [self.cost(a)[self.pareto_axis] for a in archs])

    def summary(self, chosen: Any | None) -> dict[str, Any]:
        """The ``budget`` block of ``result.json``."""
        rejected = [{"arch": k, **{c: r[c] for c in ("params_m", "mflops", "latency_ms")}, "over": r["over"]}
                    for k, r in self.records.items() if r["over"]]
        return {
            "limits": {FLAG[c]: v for c, v in self.limits.items()}, "num_classes": self.num_classes,
            "input_size": self.input_size, "latency": self.meter.describe() if self.meter else None,
            "latency_measured_now": self.meter.measured if self.meter else 0,
            "pareto_axes": {"x": self.pareto_axis, "y": "score"},
            "candidates_seen": len(self.records), "feasible": len(self.records) - self.rejected,
            "chosen": ({"arch": self.space.arch_key(chosen), **self.costs([chosen])[0]}
                       if chosen is not None else None),
            "rejected": rejected,
            "note": ("params_m/mflops: the space's count with the target's head at input_size; latency_ms: "
                     "measured on the fingerprint's device (null: not measured, because no latency limit was "
                     "given or the candidate was already over the params/FLOPs limits)"),
        }

    def plot(self, path: str | Path, archs: Sequence[Any], scores: Sequence[float], title: str = "") -> bool:
        """``pareto.png``: every candidate, the front and the chosen (first) one."""
        x = [self.cost(a)[self.pareto_axis] for a in archs]
        label = "latency (ms)" if self.pareto_axis == "latency_ms" else "MFLOPs"
        return plot_pareto(path, x, list(scores), self.front(archs, scores), 0 if archs else None, label,
                           "predicted score", title)


def admit(candidates: Sequence[Any], room: int, feasible: BudgetFilter | None) -> list[Any]:
    """The first ``room`` feasible architectures among ``candidates`` (new, unique, valid, in order).

    Without a filter: the first ``room``. With one, it sees the candidates in chunks no larger than
    the room left, so no latency is measured for candidates the search would not keep.
    """
    if feasible is None:
        return list(candidates[:room])
    kept: list[Any] = []
    i = 0
    while i < len(candidates) and len(kept) < room:
        chunk = candidates[i:i + room - len(kept)]
        i += len(chunk)
        kept += feasible(chunk)
    return kept


def make_filter(space: SearchSpace, budget: Budget, num_classes: int, default_cache: str | Path) -> BudgetFilter | None:
    """A filter for the budget, or None when it sets no limit (the unconstrained search)."""
    return BudgetFilter(space, budget, num_classes, default_cache) if budget.active else None
