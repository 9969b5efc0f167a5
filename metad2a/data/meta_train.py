"""The meta-training database: (task features, architecture graph, accuracy) triples (docs/fidelity.md#nb201-meta-training)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metad2a.data.formats import MetaTrainFile
from metad2a.data.sets import check_rows, sample_batch
from metad2a.errors import DataFileError
from metad2a.nn.graph_batch import GraphBatch

ORIGINAL_NUM_VALID = 400  # the first 400 entries of the _idx permutation are the validation split


def num_valid(n: int) -> int:
    """400 as in the original; a database too small for that (our tests, a small own database)
    keeps a tenth for validation instead, so training never runs on an empty split."""
    return ORIGINAL_NUM_VALID if n > 2 * ORIGINAL_NUM_VALID else max(1, n // 10)


def normalise_accuracy(acc: torch.Tensor | float, mean: float, std: float) -> torch.Tensor | float:
    """The predictor's target: ``((acc - mean) / std) / 100`` (accuracy in percent; the mean and
    std of the training split)."""
    return ((acc - mean) / std) / 100.0


def denormalise_accuracy(y: torch.Tensor | float, mean: float, std: float) -> torch.Tensor | float:
    """Inverse of ``normalise_accuracy``: a predictor output back to an accuracy in percent."""
    return y * 100.0 * std + mean


def predicted_accuracy(score: float, meta: Mapping[str, Any]) -> float | None:
    """A predictor score in percent, given its checkpoint's sidecar (``acc_mean``/``acc_std`` of the
    split it was trained on); None when the sidecar does not say (the released checkpoints)."""
    mean, std = meta.get("acc_mean"), meta.get("acc_std")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (mean, std)):
        # missing, null, or not a number: the sidecar does not say
        return None
    return float(denormalise_accuracy(score, float(mean), float(std)))


@dataclass
class Batch:
    x: torch.Tensor  # [b, c*n, d]
    graphs: GraphBatch
    y: torch.Tensor  # [b] normalised accuracy ((acc - mean) / std) / 100
    acc: torch.Tensor  # [b] accuracy in percent


@dataclass
class RaggedBatch:
    """A batch of tasks with different class counts: the sets cannot be stacked."""

    xs: list[torch.Tensor]  # b sets, each [c_i*n, d]
    graphs: GraphBatch
    y: torch.Tensor  # [b] normalised accuracy ((acc - mean) / std) / 100
    acc: torch.Tensor  # [b] accuracy in percent


class _MetaTrainBase:
    """What both databases share: the feature source, splits, normalisation and batch counts.

    Subclasses set ``feats``, ``num_sample``, ``split`` (split name -> entry indices), ``mean`` and
    ``std``, and implement ``batches``.
    """

    feats: Sequence[torch.Tensor]
    num_sample: int
    split: dict[str, list[int]]
    mean: float
    std: float

    def _check_classes(self, classes: Sequence[Sequence[int]], source: str, id_offset: int,
                       listed: Sequence[Sequence[int]] = ()) -> None:
        """Every class id (of the tasks used, ``classes``, and of all tasks ``listed``) must index
        ``feats``, and every used class must have ``num_sample`` rows; ``id_offset`` is added back in
        the message so that it shows the ids as the file stores them."""
        used = sorted({c for cl in classes for c in cl})
        bad = sorted({c for cl in [*classes, *listed] for c in cl if not 0 <= c < len(self.feats)})
        if bad:
            lo, hi = id_offset, len(self.feats) - 1 + id_offset
            base = "1-based" if id_offset == 1 else "0-based"
            raise DataFileError(f"{source}: task class id {bad[0] + id_offset} is outside {lo}..{hi}: the ids "
                                f"are {base} and the feature file has {len(self.feats)} classes; fix the task "
                                "list or use the features it was built with")
        check_rows(self.feats, used, self.num_sample, source)

    def _set_statistics(self, mean: float, std: float) -> None:
        self.mean = float(mean)
        # one training entry has no std (nan in the original); keep training possible
        self.std = float(std) if math.isfinite(std) and std > 0 else 1.0

    def normalise(self, acc: torch.Tensor) -> torch.Tensor:
        return normalise_accuracy(acc, self.mean, self.std)

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        return denormalise_accuracy(y, self.mean, self.std)

    def num_batches(self, mode: str, batch_size: int) -> int:
        return -(-len(self.split[mode]) // batch_size)


class MetaTrainDatabase(_MetaTrainBase):
    """Splits, normalisation and batch sampling over one meta-train file of equal-sized tasks.

    Args:
        mt: the parsed file.
        tasks: task list (1-based class ids into ``feats``).
        feats: per-class features of the meta-training source (imgnet32), index = class id - 1.
        max_n: graph size of the search space.
        num_sample: rows per class.
        class_offset: subtracted from task class ids (1 for the original NB201 files).
    """

    def __init__(self, mt: MetaTrainFile, tasks: Sequence[Sequence[int]], feats: Sequence[torch.Tensor],
                 max_n: int, num_sample: int = 20, class_offset: int = 1, source: str = "") -> None:
        self.feats = feats
        self.num_sample = num_sample
        bad = [t for t in mt.task if not 0 <= t < len(tasks)]
        if bad:
            raise DataFileError(f"{source}: task index {bad[0]} is outside 0..{len(tasks) - 1}, the "
                                f"{len(tasks)} tasks of the task list; use the task list the file was built with")
        self.task_classes = [[c - class_offset for c in tasks[t]] for t in mt.task]
        self._check_classes(self.task_classes, source, class_offset,
                            listed=[[c - class_offset for c in t] for t in tasks])
        self.graphs = GraphBatch.from_graphs(mt.graphs, max_n)
        self.acc = torch.tensor(mt.acc, dtype=torch.float32)
        nv = num_valid(len(mt.perm))
        self.split = {"valid": list(mt.perm[:nv]), "train": list(mt.perm[nv:])}
        train_acc = self.acc[self.split["train"]]
        self._set_statistics(float(train_acc.mean()), float(train_acc.std()) if len(train_acc) > 1 else 1.0)

    def __len__(self) -> int:
        return len(self.acc)

    def batches(self, mode: str, batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches of the split; fresh random feature rows at every access, as the original."""
        idx = torch.tensor(self.split[mode], dtype=torch.long)
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=generator)]
        for s in range(0, len(idx), batch_size):
            b = idx[s : s + batch_size]
            x = sample_batch(self.feats, [self.task_classes[i] for i in b.tolist()], self.num_sample, generator)
            acc = self.acc[b]
            yield Batch(x, self.graphs[b], self.normalise(acc), acc)


class RaggedMetaTrainDatabase(_MetaTrainBase):
    """Splits, normalisation and sampling over tasks whose class counts differ (the OFA database:
    10..990 ImageNet classes per task). Same interface as ``MetaTrainDatabase``, but batches carry
    a list of sets.

    Args:
        feats: per-class features of the meta-training source (imgnet32), indexed by class id.
        classes: per split, each task's class ids (already 0-based).
        graphs: per split, the architectures as a GraphBatch aligned with ``classes``.
        acc: per split, top-1 accuracies in percent.
        mean, std: normalisation (the original stores the training split's in every split file).
        num_sample: rows per class.
    """

    def __init__(self, feats: Sequence[torch.Tensor], classes: dict[str, list[list[int]]],
                 graphs: dict[str, GraphBatch], acc: dict[str, Sequence[float]], mean: float, std: float,
                 num_sample: int = 20, source: str = "") -> None:
        self.feats = feats
        self.num_sample = num_sample
        self.classes = classes
        self.graphs = graphs
        self.accs = {k: torch.tensor(list(v), dtype=torch.float32) for k, v in acc.items()}
        self._check_classes([cl for split in classes.values() for cl in split], source, 0)
        self.split = {k: list(range(len(v))) for k, v in classes.items()}
        self._set_statistics(mean, std)

    def __len__(self) -> int:
        return sum(len(v) for v in self.split.values())

    def batches(self, mode: str, batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[RaggedBatch]:
        """Batches of the split; fresh random feature rows for every task at every access."""
        n = len(self.split[mode])
        idx = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for s in range(0, n, batch_size):
            b = idx[s : s + batch_size]
            xs = [sample_batch(self.feats, [self.classes[mode][i]], self.num_sample, generator)[0]
                  for i in b.tolist()]
            acc = self.accs[mode][b]
            yield RaggedBatch(xs, self.graphs[mode][b], self.normalise(acc), acc)
