"""Logging set-up (console + the original log files) and a running-average meter."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from metad2a.files import append_text, make_dirs, output_error, to_json

LOGGER_NAME = "metad2a"


def setup_logging(log_file: Path | None = None) -> logging.Logger:
    """Message-only console handler, plus an appending file handler for ``log_file``.

    Re-configures the package logger each call (tests run several CLIs in one process).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_file is not None:
        make_dirs(Path(log_file).parent)
        try:
            fh = _LogFile(log_file, mode="a")
        except OSError as e:
            raise output_error(e, log_file) from e
        fh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(fh)
    return logger


class _LogFile(logging.FileHandler):
    """A log file whose write errors (a full disk) stop the run with a one-line ``OutputError``
    instead of logging's printed traceback and carrying on."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise output_error(err, self.baseFilename) from err
        super().handleError(record)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One JSON object per line (machine-readable epoch summaries, DomainBed style)."""
    append_text(path, to_json(record, sort_keys=True) + "\n")


class Meter:
    """Running sums of named values, averaged on demand."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, n: int = 1, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += n

    def mean(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}
