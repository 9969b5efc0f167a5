"""Readers and writers of the original NB201 data files (docs/data.md#nb201-inputs), one pair per format.

- ``<name>bylabel.pt``: ``{class_index: [Tensor[N_c, D]]}``, classes 0-based, rows = samples.
- ``meta_train_task_lst.pt``: list of tasks, each a list of 1-based class ids into imgnet32.
- ``meta_train_tasks_{generator,predictor}.pt``: dict of parallel lists ``acc`` (percent),
  ``task`` (index into the task list) and ``graph`` (igraph; the DiffusionNAG copy calls it ``g``),
  plus ``<same>_idx.pt``: a permutation whose first 400 entries are the validation split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metad2a.checkpoint import _torch_load, load_trusted_data, save_data
from metad2a.errors import DataFileError


# --------------------------------------------------------------------------- bylabel features
def read_bylabel(path: str | Path, hint: str = "", mmap: bool = True) -> list[torch.Tensor]:
    """Read a bylabel feature file into a list of [N_c, D] tensors indexed by class.

    The file is memory-mapped when possible (imgnet32bylabel.pt is ~2.6 GB), so only the pages of
    sampled rows are read and no second copy is made.

    Raises:
        DataFileError: missing or unreadable file, classes not 0..C-1, or inconsistent widths.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found{'; ' + hint if hint else ''}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception:  # legacy (non-zip) files cannot be mapped; read them normally
        obj = _torch_load(path, True, DataFileError, hint)
    if not isinstance(obj, Mapping) or not obj:
        raise DataFileError(f"{path}: expected a dict {{class_index: [Tensor[N, D]]}}, got {type(obj).__name__}")
    keys = sorted(obj)
    if keys != list(range(len(keys))):
        raise DataFileError(f"{path}: class keys must be 0..{len(keys) - 1}, got {keys[:5]}...")
    feats = []
    for k in keys:
        v = obj[k]
        t = v[0] if isinstance(v, (list, tuple)) else v
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise DataFileError(f"{path}: class {k} must hold a [N, D] tensor (or a list with one)")
        feats.append(t)
    dims = {t.size(1) for t in feats}
    if len(dims) != 1:
        raise DataFileError(f"{path}: classes have different feature widths {sorted(dims)}")
    return feats


def write_bylabel(feats: Sequence[torch.Tensor], path: str | Path) -> Path:
    """Write features in the original layout ``{c: [Tensor[N_c, D]]}``."""
    return save_data({c: [t.detach().float().cpu().contiguous()] for c, t in enumerate(feats)}, path)


# --------------------------------------------------------------------------- meta-train files
def read_task_list(path: str | Path, hint: str = "") -> list[list[int]]:
    """Tasks as lists of 1-based class ids (the loader subtracts one)."""
    tasks = load_trusted_data(path, hint)
    if not isinstance(tasks, Sequence) or not all(isinstance(t, Sequence) for t in tasks):
        raise DataFileError(f"{path}: expected a list of tasks (lists of class ids)")
    return [[int(c) for c in t] for t in tasks]


@dataclass
class MetaTrainFile:
    """Parallel lists of one ``meta_train_tasks_*.pt`` file plus its split permutation."""

    acc: list[float]
    task: list[int]
    graphs: list[Any]
    perm: list[int]


def read_meta_train(path: str | Path, idx_path: str | Path, hint: str = "") -> MetaTrainFile:
    data = load_trusted_data(path, hint)
    if not isinstance(data, Mapping):
        raise DataFileError(f"{path}: expected a dict with keys acc, task, graph")
    gkey = "graph" if "graph" in data else "g" if "g" in data else None
    missing = [k for k in ("acc", "task") if k not in data] + ([] if gkey else ["graph"])
    if missing:
        raise DataFileError(f"{path}: missing key(s) {missing}; found {sorted(data)}")
    acc, task, graphs = list(data["acc"]), list(data["task"]), list(data[gkey])
    if not len(acc) == len(task) == len(graphs):
        raise DataFileError(f"{path}: acc/task/graph have different lengths {len(acc)}/{len(task)}/{len(graphs)}")
    perm = load_trusted_data(idx_path, hint)
    perm = [int(i) for i in (perm.tolist() if isinstance(perm, torch.Tensor) else perm)]
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
