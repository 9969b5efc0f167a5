"""Metrics: classification accuracy of trained networks, and the statistics the reports print."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k (k capped at the classes)."""
    kmax = min(max(ks), logits.size(1))
    hit = logits.topk(kmax, dim=1).indices.eq(target[:, None])  # [B, kmax]
    return [int(hit[:, : min(k, kmax)].any(1).sum()) for k in ks]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r, NaN when it is undefined (fewer than two values, or a constant input)."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b)[0])


def mean_confidence_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width ``sem * t((1 + confidence) / 2, n - 1)`` as the original reports them;
    a half-width of 0 for a single value (the original prints nan)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()) if len(a) else float("nan"), 0.0
    return float(a.mean()), float(stats.sem(a) * stats.t.ppf((1 + confidence) / 2.0, len(a) - 1))
