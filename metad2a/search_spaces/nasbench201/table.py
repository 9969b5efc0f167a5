"""The NAS-Bench-201 accuracy tables: the original ``data/nasbench201.pt`` and the benchmark CSV.

- ``nasbench201.pt`` (docs/data.md#nasbench201-pt): ``{'arch': {'str': [...], 'igraph': [...],
  'matrix': [...]}, 'test-acc': {'cifar10': [...], 'cifar100': [...]}}``, aligned lists.
- the CSV (``--nb201-table``, docs/data.md#nb201-csv): one row per cell with ``arch_str`` and
  ``<dataset>_test_200ep`` columns, optionally gzipped.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

from metad2a.checkpoint import load_data
from metad2a.errors import DataFileError

NASBENCH201_FILE = "nasbench201.pt"


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
    data = load_data(path, hint)
    try:
        strs = list(data["arch"]["str"])
        accs = {k: dict(zip(strs, map(float, v))) for k, v in data["test-acc"].items()}
    except (KeyError, TypeError) as e:
        raise DataFileError(f"{path}: expected keys ['arch']['str'] and ['test-acc'][dataset] ({e})") from e
    return AccuracyTable(accs, str(path))


# column of the NB201 CSV (docs/data.md#nb201-csv) used for each data name (200-epoch test acc,
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
