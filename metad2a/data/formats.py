"""Readers and writers of the original NB201 data files (docs/data.md#nb201-inputs), one pair per format.

- ``<name>bylabel.pt``: ``{class_index: [Tensor[N_c, D]]}``, classes 0-based, rows = samples.
- ``meta_train_task_lst.pt``: list of tasks, each a list of 1-based class ids into imgnet32.
- ``meta_train_tasks_{generator,predictor}.pt``: dict of parallel lists ``acc`` (percent),
  ``task`` (index into the task list) and ``graph`` (igraph; the DiffusionNAG copy calls it ``g``),
  plus ``<same>_idx.pt``: a permutation whose first 400 entries are the validation split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import igraph
import numpy as np
import torch

from metad2a.checkpoint import load_data, read_record, save_data
from metad2a.errors import DataFileError


# --------------------------------------------------------------------------- bylabel features
def read_bylabel(path: str | Path, hint: str = "", mmap: bool = True) -> list[torch.Tensor]:
    """Read a bylabel feature file into a list of [N_c, D] tensors indexed by class.

    The file is memory-mapped when possible (imgnet32bylabel.pt is ~2.6 GB), so no second copy is
    made. Every class is checked for NaN and infinite values (docs/data.md#nb201-inputs): a feature
    file with one bad row would otherwise make the search run on in silence or rank at random.

    Raises:
        DataFileError: missing or unreadable file, no classes, classes not 0..C-1, an empty class,
            inconsistent widths, or non-finite values (the class and row are named).
    """
    path = Path(path)
    obj = read_record(path, hint, mmap=mmap)
    layout = "expected a dict {class_index: [Tensor[N, D]]}"
    if not isinstance(obj, Mapping):
        raise DataFileError(f"{path}: {layout}, got {type(obj).__name__}")
    if not obj:
        raise DataFileError(f"{path}: holds no classes (an empty dict); {layout}; extract the features again")
    keys = sorted(obj, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, str(k)))
    if keys != list(range(len(keys))):
        raise DataFileError(f"{path}: class keys must be 0..{len(keys) - 1}, got {keys[:5]}...")
    feats = []
    for k in keys:
        v = obj[k]
        if isinstance(v, (list, tuple)) and not v:
            raise DataFileError(f"{path}: class {k} holds an empty list; {layout}")
        t = v[0] if isinstance(v, (list, tuple)) else v
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point():
            raise DataFileError(f"{path}: class {k} must hold a float [N, D] tensor (or a list with one)")
        bad = ~torch.isfinite(t)
        if bad.any():
            row = int(bad.any(1).nonzero()[0, 0])
            raise DataFileError(f"{path}: class {k} holds {int(bad.sum())} NaN or infinite value(s) (first in "
                                f"row {row}); extract the features again, or remove those rows")
        feats.append(t)
    dims = {t.size(1) for t in feats}
    if len(dims) != 1:
        raise DataFileError(f"{path}: classes have different feature widths {sorted(dims)}")
    return feats


def write_bylabel(feats: Sequence[torch.Tensor], path: str | Path) -> Path:
    """Write features in the original layout ``{c: [Tensor[N_c, D]]}``."""
    return save_data({c: [t.detach().float().cpu().contiguous()] for c, t in enumerate(feats)}, path)


# --------------------------------------------------------------------------- meta-train files
def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) or (
        isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point() and v.dtype != torch.bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or isinstance(v, (float, np.floating)) or (
        isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point())


def read_task_list(path: str | Path, hint: str = "") -> list[list[int]]:
    """Tasks as lists of 1-based class ids (the loader subtracts one).

    Raises:
        DataFileError: not a non-empty list of equally long, non-empty lists of integer ids.
    """
    tasks = load_data(path, hint)
    if isinstance(tasks, torch.Tensor) and tasks.dim() == 2:
        tasks = tasks.tolist()
    layout = "expected a list of tasks, each a list of 1-based class ids"
    if not isinstance(tasks, Sequence) or isinstance(tasks, (str, bytes)) or not all(
            isinstance(t, (Sequence, torch.Tensor)) and not isinstance(t, (str, bytes)) for t in tasks):
        raise DataFileError(f"{path}: {layout}")
    if not tasks:
        raise DataFileError(f"{path}: holds no tasks; {layout}")
    out = []
    for i, t in enumerate(tasks):
        t = t.tolist() if isinstance(t, torch.Tensor) else list(t)
        if not t or not all(_is_int(c) for c in t):
            raise DataFileError(f"{path}: task {i} is {'empty' if not t else 'not a list of integer class ids'}; "
                                f"{layout}")
        out.append([int(c) for c in t])
    sizes = sorted({len(t) for t in out})
    if len(sizes) > 1:
        i = next(i for i, t in enumerate(out) if len(t) != len(out[0]))
        raise DataFileError(f"{path}: tasks have different class counts ({', '.join(map(str, sizes))}; task 0 "
                            f"has {len(out[0])}, task {i} {len(out[i])}); every task needs the same number of "
                            "classes")
    return out


@dataclass
class MetaTrainFile:
    """Parallel lists of one ``meta_train_tasks_*.pt`` file plus its split permutation."""

    acc: list[float]
    task: list[int]
    graphs: list[Any]
    perm: list[int]


def read_meta_train(path: str | Path, idx_path: str | Path, hint: str = "") -> MetaTrainFile:
    """Read ``meta_train_tasks_<model>.pt`` and its ``_idx.pt`` permutation.

    Raises:
        DataFileError: missing keys, lists of different lengths, no entries, an accuracy that is not
            a finite number, a task index that is not an integer >= 0, an entry that is not an igraph
            graph, or an ``_idx`` that is not a permutation (the entry is named).
    """
    data = load_data(path, hint)
    if not isinstance(data, Mapping):
        raise DataFileError(f"{path}: expected a dict with keys acc, task, graph")
    gkey = "graph" if "graph" in data else "g" if "g" in data else None
    missing = [k for k in ("acc", "task") if k not in data] + ([] if gkey else ["graph"])
    if missing:
        raise DataFileError(f"{path}: missing key(s) {missing}; found {sorted(data)}")
    try:
        acc, task, graphs = list(data["acc"]), list(data["task"]), list(data[gkey])
    except TypeError as e:
        raise DataFileError(f"{path}: acc, task and {gkey} must be lists ({e})") from e
    if not len(acc) == len(task) == len(graphs):
        raise DataFileError(f"{path}: acc/task/graph have different lengths {len(acc)}/{len(task)}/{len(graphs)}")
    if not acc:
        raise DataFileError(f"{path}: holds no entries (empty acc/task/graph lists); nothing to meta-train on")
    for i, (a, t, g) in enumerate(zip(acc, task, graphs)):
        if not _is_number(a) or not math.isfinite(float(a)):
            raise DataFileError(f"{path}: entry {i} has accuracy {a!r}; every accuracy must be a finite number "
                                "(percent)")
        if not _is_int(t) or int(t) < 0:
            raise DataFileError(f"{path}: entry {i} has task index {t!r}; task indices are integers >= 0 into "
                                f"the task list")
        if not isinstance(g, igraph.Graph):
            raise DataFileError(f"{path}: entry {i} of {gkey!r} is a {type(g).__name__}, not an igraph graph")
    perm = load_data(idx_path, hint)
    try:
        perm = [int(i) for i in (perm.tolist() if isinstance(perm, torch.Tensor) else perm)]
    except (TypeError, ValueError) as e:
        raise DataFileError(f"{idx_path}: not a permutation of 0..{len(acc) - 1} ({e})") from e
    if sorted(perm) != list(range(len(acc))):
        raise DataFileError(f"{idx_path}: not a permutation of 0..{len(acc) - 1}")
    return MetaTrainFile([float(a) for a in acc], [int(t) for t in task], graphs, perm)


def write_meta_train(mt: MetaTrainFile, path: str | Path, idx_path: str | Path) -> None:
    """Write in the original layout (graphs under the original key ``graph``)."""
    save_data({"acc": list(mt.acc), "task": list(mt.task), "graph": list(mt.graphs)}, path)
    save_data(torch.tensor(mt.perm, dtype=torch.long), idx_path)


def top_k_per_task(mt: MetaTrainFile, top_k: int, seed: int) -> MetaTrainFile:
    """A generator database derived from a predictor database: each task's ``top_k`` most accurate
    entries (ties keep file order), tasks in ascending order, with a fresh split permutation drawn
    from ``seed`` (docs/data.md#derived-generator-database)."""
    by_task: dict[int, list[int]] = {}
    for i, t in enumerate(mt.task):
        by_task.setdefault(t, []).append(i)
    keep = [i for t in sorted(by_task) for i in sorted(by_task[t], key=lambda i: -mt.acc[i])[:top_k]]
    perm = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed)).tolist()
    return MetaTrainFile([mt.acc[i] for i in keep], [mt.task[i] for i in keep], [mt.graphs[i] for i in keep], perm)
