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


def sample_rows_fast(sizes: Sequence[int], num_sample: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """``sample_rows`` from far fewer random numbers (``--fast-resampling``, docs/fidelity.md#fast-resampling):
    another uniform draw of ``num_sample`` distinct rows per class, so other sets for the same seed.

    Each class draws ``2 * num_sample`` row indices uniformly with replacement (from float64 uniforms,
    so the rounding bias is below 1e-12) and keeps the first ``num_sample`` distinct ones in drawing
    order: by symmetry a uniformly random subset. A class whose draws hold fewer distinct rows (small
    classes; for 5,000 rows practically never) is drawn again with ``sample_rows``.
    """
    if num_sample < 1:
        raise ValueError(f"num_sample must be positive, got {num_sample}")
    sizes_t = torch.tensor(list(sizes))
    draws = 2 * num_sample
    u = torch.rand(len(sizes_t), draws, generator=generator, dtype=torch.float64)
    cand = (u * sizes_t[:, None]).long().minimum(sizes_t[:, None] - 1)  # [k, draws]
    srt, order = cand.sort(dim=1, stable=True)  # stable: the first drawing of a row sorts first
    repeat = torch.zeros_like(srt, dtype=torch.bool)
    repeat[:, 1:] = srt[:, 1:] == srt[:, :-1]
    first = ~torch.zeros_like(repeat).scatter_(1, order, repeat)  # [k, draws]: a row's first drawing
    taken = first.cumsum(1)
    ok = taken[:, -1] >= num_sample
    out = torch.empty(len(sizes_t), num_sample, dtype=torch.long)
    out[ok] = cand[ok][(first & (taken <= num_sample))[ok]].view(-1, num_sample)
    if not bool(ok.all()):
        out[~ok] = sample_rows(sizes_t[~ok].tolist(), num_sample, generator)
    return out


def sample_batch(feats: Sequence[torch.Tensor], class_lists: Sequence[Sequence[int]], num_sample: int,
                 generator: torch.Generator | None = None, fast: bool = False) -> torch.Tensor:
    """One set per class list (all lists of equal length): [B, C*n, D].

    ``num_sample`` distinct rows per class, uniformly at random (``sample_rows``; ``sample_rows_fast``
    when ``fast``).
    """
    if len({len(cl) for cl in class_lists}) > 1:
        raise ValueError("all sets of one batch must have the same number of classes")
    pairs = [c for cl in class_lists for c in cl]
    idx = (sample_rows_fast if fast else sample_rows)([feats[c].size(0) for c in pairs], num_sample, generator)
    # index_select, not t[i]: advanced indexing is orders of magnitude slower here on large tensors
    rows = torch.stack([feats[c].index_select(0, i) for c, i in zip(pairs, idx)])  # [B*C, n, D]
    return rows.reshape(len(class_lists), -1, rows.size(-1)).float()
