"""Synthetic feature files for tests, benchmarks and demos: Gaussian clusters, one mean per class.

The released files cannot be downloaded here. Each search space's ``synthetic.py`` builds a whole
data directory in that space's original formats on top of these features; nothing here claims to
be real data.
"""

from __future__ import annotations

import torch


def synthetic_features(num_classes: int, rows: int, dim: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``num_classes`` classes of ``rows`` non-negative ``dim``-d feature rows (ReLU of a Gaussian)."""
    means = torch.randn(num_classes, dim, generator=gen)
    return [(means[c] + 0.5 * torch.randn(rows, dim, generator=gen)).relu() for c in range(num_classes)]
