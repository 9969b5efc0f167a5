"""Turning per-class features into the sets the models read: ``num_sample`` random rows per class,
classes concatenated in order -> [C * num_sample, D] (ORIGINAL.md §1.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metad2a.errors import DataFileError


def check_rows(feats: Sequence[torch.Tensor], classes: Sequence[int], num_sample: int, source: str) -> None:
    """Every used class needs at least ``num_sample`` rows (the original samples without replacement)."""
    short = [c for c in classes if feats[c].size(0) < num_sample]
    if short:
        raise DataFileError(
            f"{source}: class(es) {short[:5]} have fewer than --num-sample={num_sample} feature rows; "
            f"lower --num-sample or extract more images per class"
        )


def sample_set(feats: Sequence[torch.Tensor], classes: Sequence[int], num_sample: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_sample`` distinct random rows of each class, stacked in class order: [C*n, D]."""
    rows = []
    for c in classes:
        t = feats[c]
        idx = torch.randperm(t.size(0), generator=generator)[:num_sample]
        rows.append(t[idx])
    return torch.cat(rows, 0).float()


def sample_sets(feats: Sequence[torch.Tensor], classes: Sequence[int], num_sample: int, count: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` independent resamples of the same classes: [count, C*n, D]."""
    return torch.stack([sample_set(feats, classes, num_sample, generator) for _ in range(count)])
