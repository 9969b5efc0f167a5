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


def one_line(err: BaseException, *, first: bool = False, with_type: bool = False, limit: int | None = None) -> str:
    """The message of ``err`` as one line.

    An error re-raised from another process (a DataLoader worker, a Ray task) carries the remote
    traceback in its message: then its last line, without the exception's class name. Otherwise the
    lines joined (or only the ``first`` line), whitespace collapsed; ``with_type`` prefixes the
    class name, ``limit`` cuts the message to that many characters.
    """
    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        msg = type(err).__name__
    elif first:
        msg = lines[0]
    elif len(lines) > 1 and "Traceback" in text:
        msg = lines[-1].removeprefix(f"{type(err).__module__}.{type(err).__qualname__}: ")
    else:
        msg = " ".join(" ".join(lines).split())
    msg = msg[:limit] if limit else msg
    return f"{type(err).__name__}: {msg}" if with_type else msg


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
