"""The one reader/writer of generated-architecture files ``run_<k>.txt`` (the generator -> predictor hand-off).

Format (original): first line ``elapsed time: <t:6.2f>s ``, then one architecture per line
(NB201 strings; OFA python-dict strings). Readers take the first whitespace token of each line
for NB201 strings, as the original does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from metad2a.errors import DataFileError

_HEADER = re.compile(r"^elapsed time:\s*([0-9.]+)s")


def write_archive(path: Path, elapsed: float, archs: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(f"elapsed time: {elapsed:6.2f}s \n")
        for a in archs:
            f.write(f"{a}\n")
    os.replace(tmp, path)


def read_archive(path: Path, first_token: bool = True, hint: str = "") -> tuple[float, list[str]]:
    """Returns (elapsed seconds, architectures)."""
    if not path.is_file():
        raise DataFileError(f"{path}: file not found{'; ' + hint if hint else ''}")
    lines = path.read_text().splitlines()
    m = _HEADER.match(lines[0]) if lines else None
    if not m:
        raise DataFileError(f"{path}: first line must be 'elapsed time: <seconds>s'")
    archs = [ln.split()[0] if first_token else ln.strip() for ln in lines[1:] if ln.strip()]
    return float(m.group(1)), archs
