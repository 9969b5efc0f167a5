"""Facts about a meta-test dataset: classes, search runs, candidates kept, table column.

Each search space lists its known datasets (``SearchSpace.datasets``); a dataset outside that list
(your own) works from its feature file alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DatasetInfo:
    """num_classes: classes in the bylabel file (0: not known, use every class of the file);
    runs: search repetitions; top_n: candidates kept by the predictor (the original reports the
    best table accuracy among them where a table exists); table_column: the dataset's column in
    the space's accuracy table, if it has one."""

    num_classes: int
    runs: int = 1
    top_n: int = 1
    table_column: str | None = None


def resolve_dataset(known: Mapping[str, DatasetInfo], name: str, num_classes: int | None = None) -> DatasetInfo:
    """Facts for ``name``; a name outside ``known`` (your own dataset) gets one run, top-1, and
    the class count given (0 when not given: the caller reads it from the feature file)."""
    info = known.get(name, DatasetInfo(num_classes or 0))
    if num_classes is not None and num_classes != info.num_classes:
        info = replace(info, num_classes=num_classes)
    return info
