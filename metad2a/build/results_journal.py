"""An append-only JSON-lines file of finished jobs: what a long build resumes from.

Every finished job (success or final failure) is one line ``{"key": ..., ...}``, appended, flushed
and fsynced as soon as the job ends, so a killed process loses at most the jobs still running. On
reading, a last line cut short by a kill is dropped (and cut from the file, so the next append starts
on a fresh line); a later line for the same key replaces an earlier one (a failed job retried with
``--retry-failed``). Used by both database builders (:mod:`metad2a.build.jobs`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from metad2a.errors import DataFileError
from metad2a.files import append_text, to_json

log = logging.getLogger("metad2a")


class ResultsJournal:
    """Append-only ``key -> record`` store in a JSON-lines file.

    Args:
        path: the file (created on the first append).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """Records by key, in file order (later lines win).

        Raises:
            DataFileError: a line other than the last is not a JSON object with a ``key``.
        """
        if not self.path.is_file():
            return {}
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # the process was killed while writing the last line
            log.warning(f"warning: {self.path}: dropping an unfinished last line ({len(data) - complete} bytes)")
            with open(self.path, "r+b") as f:
                f.truncate(complete)
            data = data[:complete]
        records: dict[str, dict[str, Any]] = {}
        for n, line in enumerate(data.decode().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFileError(f"{self.path}:{n}: not a JSON line ({e.msg}); fix or delete that line") from e
            if not isinstance(rec, dict) or "key" not in rec:
                raise DataFileError(f"{self.path}:{n}: expected a JSON object with a 'key'; fix or delete that line")
            records[str(rec["key"])] = rec
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (flush + fsync) before returning."""
        if "key" not in record:
            raise ValueError("a journal record needs a 'key'")
        append_text(self.path, to_json(record, sort_keys=True) + "\n", fsync=True)
