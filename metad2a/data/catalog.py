"""Meta-test dataset facts and pipeline facts per search space (ORIGINAL.md §2.8-§2.9, §3.7-§3.9).

Everything the engine and the CLI need to know about a space's *protocol* (which datasets, how
many runs, which meta-training files, whether the generator step ranks with the predictor) is
data here, looked up by the space name; nothing else branches on the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DatasetInfo:
    """num_classes: classes in the bylabel file; runs: search repetitions; top_n: candidates kept
    by the predictor (the original reports the best table accuracy among them for CIFAR)."""

    num_classes: int
    runs: int = 1
    top_n: int = 1
    table_column: str | None = None  # column of nb201_merged.csv.gz / key of nasbench201.pt


@dataclass(frozen=True)
class SpaceCatalog:
    """What the original pipeline of one search space does.

    Attributes:
        datasets: meta-test datasets known by name (others work given their bylabel file).
        all_generator / all_predictor: the order ``--data-name all`` runs in each step.
        meta_train_source: ``"nb201_tasks"`` (task list + ``meta_train_tasks_*.pt``, equal-sized
            tasks) or ``"collected_database"`` (OFA ``<model>/processed/collected_database.pt``,
            tasks of 10..990 classes).
        generator_ranks: the generator's ``--test`` step also loads the predictor and writes its
            architectures sorted by predicted score; there is no predictor ``--test`` step (OFA).
        num_gen_arch_dir: meta-test outputs go to ``meta_test/<data>/<num-gen-arch>/`` (OFA).
        original_loops: the original trains and searches per sample (OFA: one optimizer step per
            task, 100 resampled sets pooled into one per decoded graph); ``--ofa-per-set`` turns
            it off.
        released_generator_epoch: ``--load-epoch`` of the authors' generator checkpoint.
    """

    datasets: Mapping[str, DatasetInfo]
    all_generator: tuple[str, ...]
    all_predictor: tuple[str, ...]
    meta_train_source: Literal["nb201_tasks", "collected_database"] = "nb201_tasks"
    generator_ranks: bool = False
    num_gen_arch_dir: bool = False
    original_loops: bool = False
    released_generator_epoch: int = 400


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

# OFA meta-test (ORIGINAL.md §3.9): 10 runs for CIFAR, else 1; no accuracy table (the searched
# subnet is evaluated by fine-tuning, a later step). aircraft100 is FGVC's 100 variants;
# aircraft30 (manufacturers) is in the original's table and its "all" list although no feature
# file was ever distributed for it (§5 item 13).
OFA_DATASETS = {
    "cifar10": DatasetInfo(10, runs=10),
    "cifar100": DatasetInfo(100, runs=10),
    "mnist": DatasetInfo(10),
    "svhn": DatasetInfo(10),
    "aircraft30": DatasetInfo(30),
    "aircraft100": DatasetInfo(100),
    "pets": DatasetInfo(37),
}
OFA_ALL = ("cifar100", "cifar10", "mnist", "svhn", "aircraft30", "aircraft100", "pets")

CATALOGS: dict[str, SpaceCatalog] = {
    "nasbench201": SpaceCatalog(NB201_DATASETS, NB201_ALL_GENERATOR, NB201_ALL_PREDICTOR),
    "ofa_mbv3": SpaceCatalog(OFA_DATASETS, OFA_ALL, OFA_ALL, meta_train_source="collected_database",
                             generator_ranks=True, num_gen_arch_dir=True, original_loops=True,
                             released_generator_epoch=120),
}


def space_catalog(space: str) -> SpaceCatalog:
    """The catalog of a search space by its name; unknown names list the known ones."""
    try:
        return CATALOGS[space]
    except KeyError:
        raise ValueError(f"no dataset catalog for search space {space!r}; known: {', '.join(CATALOGS)}") from None


def dataset_info(name: str, num_classes: int | None = None, space: str = "nasbench201") -> DatasetInfo:
    """Facts for a dataset; a name outside the space's table (your own dataset) gets one run,
    top-1, and the class count given (or read from its feature file by the caller)."""
    info = space_catalog(space).datasets.get(name, DatasetInfo(num_classes or 0))
    if num_classes is not None and num_classes != info.num_classes:
        info = DatasetInfo(num_classes, info.runs, info.top_n, info.table_column)
    return info
