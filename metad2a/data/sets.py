"""Turning per-class features into the sets the models read: ``num_sample`` random rows per class,
classes concatenated in order -> [C * num_sample, D] (docs/fidelity.md#overview)."""

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


def sample_rows(sizes: Sequence[int], num_sample: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_sample`` distinct row indices, uniformly at random, for each of ``len(sizes)`` classes of
    ``sizes[i]`` rows: [len(sizes), num_sample].

    The random draws are made in one call: each class takes the rows with the ``num_sample``
    largest of uniform keys drawn over its rows (as the original's randperm, another stream).
    """
    sizes_t = torch.tensor(list(sizes))
    keys = torch.rand(len(sizes_t), int(sizes_t.max()), generator=generator)
    if int(sizes_t.min()) != keys.size(1):  # rows a class does not have
        keys[torch.arange(keys.size(1))[None, :] >= sizes_t[:, None]] = -1.0
    return keys.topk(num_sample, dim=1).indices


def sample_batch(feats: Sequence[torch.Tensor], class_lists: Sequence[Sequence[int]], num_sample: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One set per class list (all lists of equal length): [B, C*n, D].

    ``num_sample`` distinct rows per class, uniformly at random (``sample_rows``).
    """
    if len({len(cl) for cl in class_lists}) > 1:
        raise ValueError("all sets of one batch must have the same number of classes")
    pairs = [c for cl in class_lists for c in cl]
    idx = sample_rows([feats[c].size(0) for c in pairs], num_sample, generator)
    # index_select, not t[i]: advanced indexing is orders of magnitude slower here on large tensors
    rows = torch.stack([feats[c].index_select(0, i) for c, i in zip(pairs, idx)])  # [B*C, n, D]
    return rows.reshape(len(class_lists), -1, rows.size(-1)).float()
