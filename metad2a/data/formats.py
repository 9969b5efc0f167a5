"""Readers and writers of the original NB201 data files (ORIGINAL.md §2.4), one pair per format.

- ``<name>bylabel.pt``: ``{class_index: [Tensor[N_c, D]]}``, classes 0-based, rows = samples.
- ``meta_train_task_lst.pt``: list of tasks, each a list of 1-based class ids into imgnet32.
- ``meta_train_tasks_{generator,predictor}.pt``: dict of parallel lists ``acc`` (percent),
  ``task`` (index into the task list) and ``graph`` (igraph; the DiffusionNAG copy calls it ``g``),
  plus ``<same>_idx.pt``: a permutation whose first 400 entries are the validation split.
- ``nasbench201.pt``: ``{'arch': {'str': [...], 'igraph': [...], 'matrix': [...]},
  'test-acc': {'cifar10': [...], 'cifar100': [...]}}`` aligned lists.
"""

from __future__ import annotations

import csv
import gzip
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


# --------------------------------------------------------------------------- accuracy tables
@dataclass
class AccuracyTable:
    """NB201 accuracy (%) per architecture string, per dataset."""

    acc: dict[str, dict[str, float]]  # dataset -> arch_str -> accuracy
    source: str

    def lookup(self, dataset: str, arch_str: str) -> float | None:
        return self.acc.get(dataset, {}).get(arch_str)

    def has(self, dataset: str) -> bool:
        return dataset in self.acc


def read_nasbench201_pt(path: str | Path, hint: str = "") -> AccuracyTable:
    data = load_trusted_data(path, hint)
    try:
        strs = list(data["arch"]["str"])
        accs = {k: dict(zip(strs, map(float, v))) for k, v in data["test-acc"].items()}
    except (KeyError, TypeError) as e:
        raise DataFileError(f"{path}: expected keys ['arch']['str'] and ['test-acc'][dataset] ({e})") from e
    return AccuracyTable(accs, str(path))


# column of ../shared/data/nb201/nb201_merged.csv.gz used for each data name (200-epoch test acc,
# the figure the original reads from nasbench201.pt)
CSV_COLUMNS = {"cifar10": "cifar10_test_200ep", "cifar100": "cifar100_test_200ep",
               "imagenet16_120": "imagenet16_120_test_200ep"}


def read_nb201_csv(path: str | Path) -> AccuracyTable:
    """The NB201 ground-truth table as CSV (optionally gzipped) with ``arch_str`` and
    ``<dataset>_test_200ep`` columns."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found; pass the NB201 table CSV with --nb201-table")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise DataFileError(f"{path}: cannot read the CSV table ({e})") from e
    if not rows or "arch_str" not in rows[0]:
        raise DataFileError(f"{path}: expected a CSV with an 'arch_str' column")
    acc = {name: {r["arch_str"]: float(r[col]) for r in rows if r.get(col) not in (None, "")}
           for name, col in CSV_COLUMNS.items() if col in rows[0]}
    return AccuracyTable(acc, str(path))
