"""The OFA/MobileNetV3 meta-training database and its split files (docs/data.md#collected-database).

``<data>/<predictor|generator>/processed/collected_database.pt`` is a python list with one dict per
meta-training task, as the database builder collects it:

- ``loss``, ``top1``, ``top5``: cross-entropy and accuracies (percent) of the subnet on the task;
- ``net``: the OFA subnet dict ``{'wid': None, 'ks': [20], 'e': [20], 'd': [5]}``;
- ``class``: LongTensor of the task's class indices, 0-based, indexing ``imgnet32bylabel.pt``
  directly (unlike the NB201 task list there is no ``-1``);
- ``params`` (M), ``flops`` (MFLOPs), ``test_transform`` (a pickled torchvision transform, which the
  restricted loader admits for this file only).

On first use the original splits it into ``collected_database_{train,valid,test}.pt`` beside it,
each a dict ``{acc, class, net, flops, mean, std}``: a ``torch.randperm`` under the global seed,
the first ``int(0.15 n)`` entries for test, the next ``int(0.15 n)`` for validation and the rest
(about 70%) for training; ``mean``/``std`` are the mean and unbiased std of the *training* top-1
accuracies, stored in all three files. Later runs read the split files and never re-split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metad2a import paths
from metad2a.checkpoint import TRANSFORM_GLOBALS, load_data, save_data
from metad2a.errors import DataFileError

log = logging.getLogger("metad2a")

SPLITS = ("train", "valid", "test")
HELD_OUT_FRACTION = 0.15  # test and valid each get int(0.15 * n) entries
ENTRY_KEYS = ("top1", "net", "class")  # what meta-training reads from each entry


def collected_database(data_path: str | Path, model: str) -> Path:
    """The meta-training database of ``model``: ``<data>/<model>/processed/collected_database.pt``."""
    return Path(data_path) / model / "processed" / "collected_database.pt"


def collected_split(data_path: str | Path, model: str, split: str) -> Path:
    """Split cache written beside it on first use: ``collected_database_<train|valid|test>.pt``."""
    return Path(data_path) / model / "processed" / f"collected_database_{split}.pt"


@dataclass
class CollectedSplit:
    """One split file: parallel lists plus the training-split normalisation."""

    acc: list[float]  # top-1 accuracy in percent
    classes: list[list[int]]  # 0-based indices into imgnet32bylabel.pt
    nets: list[Any]  # OFA subnet dicts
    flops: list[float]
    mean: float
    std: float

    def __len__(self) -> int:
        return len(self.acc)


def _as_int_list(value: Any) -> list[int]:
    return [int(c) for c in (value.tolist() if isinstance(value, torch.Tensor) else value)]


def read_collected_database(path: str | Path, hint: str = "") -> list[Mapping[str, Any]]:
    """Read ``collected_database.pt`` (a pickle that also holds torchvision transform objects, which
    the restricted loader admits for this format).

    Raises:
        DataFileError: missing, unreadable, not a list of dicts, or entries without top1/net/class.
    """
    entries = load_data(path, hint, allow=TRANSFORM_GLOBALS)
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise DataFileError(f"{path}: expected a list of dicts (one per task), got {type(entries).__name__}")
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise DataFileError(f"{path}: entry {i} is a {type(e).__name__}, expected a dict")
        missing = [k for k in ENTRY_KEYS if k not in e]
        if missing:
            raise DataFileError(f"{path}: entry {i} lacks key(s) {missing}; found {sorted(e)}")
        top1 = e["top1"]
        if isinstance(top1, (str, bytes, bool)) or not isinstance(top1, (int, float, torch.Tensor)) or \
                not math.isfinite(float(top1)):
            raise DataFileError(f"{path}: entry {i} has top1 {top1!r}; every accuracy must be a finite number")
    return list(entries)


def split_indices(n: int, generator: torch.Generator | None = None) -> dict[str, list[int]]:
    """The original split of ``n`` entries: one ``torch.randperm`` (global RNG unless ``generator``),
    test = first ``int(0.15 n)``, valid = next ``int(0.15 n)``, train = the rest."""
    perm = torch.randperm(n, generator=generator).tolist()
    k = int(n * HELD_OUT_FRACTION)
    return {"test": perm[:k], "valid": perm[k : 2 * k], "train": perm[2 * k :]}


def train_statistics(acc: Sequence[float]) -> tuple[float, float]:
    """Mean and unbiased std as the original computes them: on a float32 tensor, then ``.item()``
    (so the stored values carry float32 rounding; one entry gives std nan, as torch does)."""
    t = torch.tensor([float(a) for a in acc], dtype=torch.float32)
    return t.mean().item(), t.std().item()


def make_splits(entries: Sequence[Mapping[str, Any]], generator: torch.Generator | None = None
                ) -> dict[str, dict[str, Any]]:
    """Split file contents ``{acc, class, net, flops, mean, std}`` for train, valid and test."""
    idx = split_indices(len(entries), generator)
    mean, std = train_statistics([entries[i]["top1"] for i in idx["train"]])
    out = {}
    for name in SPLITS:
        rows = [entries[i] for i in idx[name]]
        out[name] = {"acc": [float(e["top1"]) for e in rows], "class": [e["class"] for e in rows],
                     "net": [e["net"] for e in rows], "flops": [e.get("flops") for e in rows],
                     "mean": mean, "std": std}
    return out


def read_split(path: str | Path, hint: str = "") -> CollectedSplit:
    """Read one ``collected_database_<split>.pt`` (ours or the original's)."""
    data = load_data(path, hint)
    keys = ("acc", "class", "net", "mean", "std")
    if not isinstance(data, Mapping) or any(k not in data for k in keys):
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise DataFileError(f"{path}: expected a dict with keys {list(keys)} (+ flops), found {found}")
    acc, classes, nets = list(data["acc"]), list(data["class"]), list(data["net"])
    if not len(acc) == len(classes) == len(nets):
        raise DataFileError(f"{path}: acc/class/net have different lengths {len(acc)}/{len(classes)}/{len(nets)}")
    flops = list(data.get("flops") or [None] * len(acc))
    if any(isinstance(a, (str, bytes)) for a in acc):
        raise DataFileError(f"{path}: accuracies must be numbers, found a string")
    try:
        split = CollectedSplit([float(a) for a in acc], [_as_int_list(c) for c in classes], nets, flops,
                               float(data["mean"]), float(data["std"]))
    except (TypeError, ValueError) as e:
        raise DataFileError(f"{path}: non-numeric accuracy or class index ({e})") from e
    bad = [i for i, a in enumerate(split.acc) if not math.isfinite(a)]
    if bad:
        raise DataFileError(f"{path}: entry {bad[0]} has accuracy {split.acc[bad[0]]}; every accuracy must be a "
                            "finite number (percent)")
    return split


def load_or_make_splits(data_path: str | Path, model: str, hint: str = "",
                        generator: torch.Generator | None = None) -> dict[str, CollectedSplit]:
    """The train and valid splits of ``<data>/<model>/processed``, splitting the collected database
    first if ``collected_database_train.pt`` does not exist yet (the original's rule; the split then
    depends on the global RNG state, i.e. on ``--seed`` and what ran before).

    Raises:
        DataFileError: missing or malformed files, or a database too small for a non-empty
            train and validation split (at least 7 entries).
    """
    train_file = collected_split(data_path, model, "train")
    if not train_file.is_file():
        src = paths.require(collected_database(data_path, model), hint)
        entries = read_collected_database(src, hint)
        if int(len(entries) * HELD_OUT_FRACTION) < 1:
            raise DataFileError(f"{src}: {len(entries)} entries cannot be split 70/15/15 with a non-empty "
                                f"validation split; the database needs at least 7 tasks")
        for name, content in make_splits(entries, generator).items():
            save_data(content, collected_split(data_path, model, name))
        log.info(f"==> split {src} into collected_database_{{train,valid,test}}.pt")
    out = {name: read_split(paths.require(collected_split(data_path, model, name), hint), hint)
           for name in ("train", "valid")}
    empty = [name for name, split in out.items() if not len(split)]
    if empty:
        raise DataFileError(f"{collected_split(data_path, model, empty[0])}: the {empty[0]} split holds no entries; "
                            "delete the collected_database_*.pt split files to split the database again")
    if not math.isfinite(out["train"].mean):
        raise DataFileError(f"{train_file}: the training split has no usable accuracies (mean {out['train'].mean})")
    return out
