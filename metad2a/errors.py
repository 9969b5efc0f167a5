"""User-facing errors. The CLI prints their message as one line (no traceback) and exits 2,
so every message names the problem and the fix."""

from __future__ import annotations

import errno
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


class OutputError(MetaD2AError):
    """An output file or folder could not be written: full disk, read-only or missing permission, a
    file where a folder should be. Raised by ``metad2a.files``; the earlier content stays as it was."""


# errno values that mean "the data does not fit": a full disk, a full quota, or a file-size limit
# (RLIMIT_FSIZE makes writes fail with EFBIG); all reported as "no space left on device".
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def describe_os_error(err: OSError) -> str:
    """What an OS error means for a user, in a few words: "no space left on device", "permission
    denied", "read-only file system", "a file is in the way of a folder", else the system's text."""
    if err.errno in _NO_SPACE:
        return "no space left on device" + (" (file size limit reached)" if err.errno == errno.EFBIG else "")
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return "a file is in the way of a folder (or a folder in the way of a file)"
    return err.strerror or type(err).__name__


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
                if isinstance(e, OSError):  # a file error no module turned into a MetaD2AError
                    where = f"{e.filename}: " if e.filename else ""
                    print(f"error: {where}{describe_os_error(e)}", file=sys.stderr)
                else:
                    print(f"error: {one_line(e)}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                print(interrupted, file=sys.stderr)
                return 130

        return wrapper

    return decorate
