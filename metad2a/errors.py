"""User-facing errors. The CLI prints their message as one line (no traceback) and exits 2,
so every message names the problem and the fix."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class MetaD2AError(Exception):
    """Base class of errors caused by input (files, flags, shapes) rather than by a bug."""


class CheckpointError(MetaD2AError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class DataFileError(MetaD2AError):
    """A data file is missing, unreadable, or not in the expected format."""


class DownloadError(MetaD2AError):
    """A download failed: HTTP error, HTML page instead of the file, truncated body, wrong size or hash."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` as one line; for an error re-raised from a DataLoader worker (whose
    message carries the worker's traceback) the last line, without the exception's class name."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if len(lines) > 1 and "Traceback" in str(err):
        return lines[-1].removeprefix(f"{type(err).__module__}.{type(err).__qualname__}: ")
    return " ".join(lines) or type(err).__name__


def user_command(interrupted: str = "interrupted", also: tuple[type[BaseException], ...] = ()) -> Callable:
    """Decorate a command's ``main``: user errors (``MetaD2AError`` and ``also``) print one line
    ``error: ...`` on stderr and return 2, Ctrl-C prints ``interrupted`` and returns 130."""

    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> int:
            try:
                return fn(*args, **kwargs)
            except (MetaD2AError, *also) as e:
                print(f"error: {one_line(e)}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                print(interrupted, file=sys.stderr)
                return 130

        return wrapper

    return decorate
