"""The one reader/writer of generated-architecture files ``run_<k>.txt`` (the generator -> predictor hand-off).

Format (original): first line ``elapsed time: <t:6.2f>s ``, then one architecture per line
(NB201 strings; OFA python-dict strings). Readers take the first whitespace token of each line
for NB201 strings, as the original does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from metad2a.errors import DataFileError
from metad2a.files import write_text

_HEADER = re.compile(r"^elapsed time:\s*([0-9.]+)s")


def archive_text(elapsed: float, archs: Sequence[str]) -> str:
    """The content of a ``run_<k>.txt``: the header line, then one architecture per line."""
    return f"elapsed time: {elapsed:6.2f}s \n" + "".join(f"{a}\n" for a in archs)


def write_archive(path: Path, elapsed: float, archs: Sequence[str]) -> None:
    """Write a ``run_<k>.txt`` atomically."""
    write_text(path, archive_text(elapsed, archs))


def read_archive(path: Path, first_token: bool = True, hint: str = "") -> tuple[float, list[str]]:
    """Returns (elapsed seconds, architectures).

    Raises:
        DataFileError: missing file, not UTF-8 text, no header line, or no architecture.
    """
    if not path.is_file():
        raise DataFileError(f"{path}: file not found{'; ' + hint if hint else ''}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: cannot be read as text ({e}){'; ' + hint if hint else ''}") from e
    m = _HEADER.match(lines[0]) if lines else None
    if not m:
        raise DataFileError(f"{path}: first line must be 'elapsed time: <seconds>s'")
    archs = [ln.split()[0] if first_token else ln.strip() for ln in lines[1:] if ln.strip()]
    if not archs:
        raise DataFileError(f"{path}: holds no architectures after its header line"
                            f"{'; ' + hint if hint else ''}")
    return float(m.group(1)), archs
