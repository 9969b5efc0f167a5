"""Logging set-up (console + the original log files), a running-average meter, and the progress
display of long loops (a tqdm bar in a terminal, periodic log lines otherwise)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from metad2a.files import append_text, make_dirs, output_error, to_json

LOGGER_NAME = "metad2a"


def setup_logging(log_file: Path | None = None) -> logging.Logger:
    """Message-only console handler, plus an appending file handler for ``log_file`` (which leaves
    out the progress lines of ``Progress``: the file keeps the original log's content).

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
        fh.addFilter(lambda record: not getattr(record, "progress", False))  # progress lines: console only
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


def _duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Progress of a long loop: a tqdm bar when attached to a terminal, else a log line at least
    every ``interval`` seconds (as long as the loop calls ``update``), so that a run whose output
    goes to a file or a pipe still says that it works, how fast, and for how long still.

    Args:
        total: the amount that finishes the loop (``None``: unknown, no ETA).
        desc: what runs (``"generate cifar10"``).
        unit: the unit of ``total`` (``"unique"``, ``"batch"``).
        rate_of: the count whose rate the log line reports (default: the progress itself).
        interval: seconds between log lines without a terminal.
        tty: force the terminal (True) or log (False) display; None: whether ``stream`` is a terminal.
        stream: where the bar goes (default ``sys.stderr``).
        logger: where the lines go (default the package logger).
        clock: the time source (tests).

    The tqdm-style ``set_postfix`` / ``set_description`` are accepted so that a bar can be swapped
    for this without touching its callers; counts given with ``update(..., **counts)`` or
    ``set_counts`` are shown in both displays.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", rate_of: str | None = None,
                 interval: float = 10.0, tty: bool | None = None, stream: IO[str] | None = None,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.rate_of = total, desc, unit, rate_of
        self.interval, self.clock = interval, clock
        self.log = logger or logging.getLogger(LOGGER_NAME)
        self.n = 0
        self.counts: dict[str, Any] = {}
        self.postfix = ""
        stream = stream or sys.stderr
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.start = self.last = clock()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def update(self, n: int = 1, **counts: Any) -> None:
        """Advance by ``n`` and set the shown counts."""
        self.n += n
        self.counts.update(counts)
        self._show()

    def set_counts(self, **counts: Any) -> None:
        self.counts.update(counts)
        self._show()

    def set_postfix(self, **values: Any) -> None:
        """tqdm-style: values shown after the counts (formatted by the caller)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        self._show()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc, refresh=False)
        self._show()

    def _fields(self) -> str:
        parts = [f"{v:,} {k}" if isinstance(v, int) else f"{k} {v}" for k, v in self.counts.items()]
        return ", ".join(parts + ([self.postfix] if self.postfix else []))

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.n = self.n
            self.bar.set_postfix_str(self._fields(), refresh=True)
            return
        now = self.clock()
        if now - self.last < self.interval:
            return
        self.last = now
        self.log.info(self.line(now), extra={"progress": True})

    def line(self, now: float | None = None) -> str:
        """The log line: ``desc: n/total unit (counts), rate, ETA``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        done = f"{self.n:,}/{self.total:,}" if self.total is not None else f"{self.n:,}"
        fields = self._fields()
        text = f"{self.desc}: {done} {self.unit}" + (f" ({fields})" if fields else "")
        rated = self.counts.get(self.rate_of, self.n) if self.rate_of else self.n
        text += f", {rated / elapsed:,.1f} {self.rate_of or self.unit}/s"
        if self.total is not None and self.n > 0:
            eta = (self.total - self.n) * elapsed / self.n
            text += f", ETA {_duration(eta)}"
        return text + f", {_duration(elapsed)} elapsed"


def progress_iter(items: Iterable[Any], total: int | None, desc: str, unit: str = "it",
                  **kwargs: Any) -> Iterator[tuple[Any, Progress]]:
    """Iterate ``items`` with a ``Progress`` advanced by one after each item; yields
    ``(item, progress)`` so that the loop body can set the shown values."""
    with Progress(total, desc, unit, **kwargs) as p:
        for item in items:
            yield item, p
            p.update(1)
