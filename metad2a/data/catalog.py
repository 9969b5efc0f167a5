"""Meta-test dataset facts per search space (ORIGINAL.md §2.8-§2.9, §3.9)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """num_classes: classes in the bylabel file; runs: search repetitions; top_n: candidates kept
    by the predictor (the original reports the best table accuracy among them for CIFAR)."""

    num_classes: int
    runs: int = 1
    top_n: int = 1
    table_column: str | None = None  # column of nb201_merged.csv.gz / key of nasbench201.pt


NB201_DATASETS = {
    "cifar10": DatasetInfo(10, runs=10, top_n=30, table_column="cifar10"),
    "cifar100": DatasetInfo(100, runs=10, top_n=30, table_column="cifar100"),
    "mnist": DatasetInfo(10),
    "svhn": DatasetInfo(10),
    "aircraft": DatasetInfo(30),
    "pets": DatasetInfo(37),
}
# The original's order for --data-name all differs between the two steps.
NB201_ALL_GENERATOR = ("cifar100", "cifar10", "mnist", "svhn", "aircraft", "pets")
NB201_ALL_PREDICTOR = ("cifar10", "cifar100", "mnist", "svhn", "aircraft", "pets")


def dataset_info(name: str, num_classes: int | None = None) -> DatasetInfo:
    """Facts for a dataset; a name outside the table (your own dataset) gets one run, top-1, and
    the class count given (or read from its feature file by the caller)."""
    info = NB201_DATASETS.get(name, DatasetInfo(num_classes or 0))
    if num_classes is not None and num_classes != info.num_classes:
        info = DatasetInfo(num_classes, info.runs, info.top_n, info.table_column)
    return info
