"""Writing files so that a crash or a full disk never leaves half of one, and fingerprinting them.

Every output file of the package goes through this module:

- ``atomic_write`` (and ``write_text``, ``write_json``): the bytes go to a temporary file in the
  target folder, are flushed to disk, and the temporary file is renamed over the target, so a reader
  sees either the old file or the new one, never a mixture;
- ``write_files``: several files that belong together (a search's ``architecture.txt``,
  ``accuracy.txt`` and ``result.json``): every one is staged first, and only when all are on disk are
  they renamed into place, so a failure leaves all of them as they were;
- ``append_text``: one line added to a log-like file (``results.jsonl``); on failure the file is cut
  back to its previous length, so it never ends in half a line.

A write that fails (full disk, read-only folder, a file where a folder should be) raises
:class:`~metad2a.errors.OutputError`, one line that names the path and what went wrong ("no space left
on device"); its temporary file is removed. JSON is always strict (docs/data.md#strict-json): NaN and
infinities are written as ``null``, never as the bare ``NaN`` that strict parsers reject.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from metad2a.errors import OutputError, describe_os_error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(err: OSError, path: str | Path) -> OutputError:
    """The one-line error for a failed write of ``path``."""
    what = describe_os_error(err)
    fix = ("free space there or write elsewhere" if what.startswith("no space")
           else "choose a folder you can write to")
    return OutputError(f"cannot write {path}: {what}; {fix} (files written before are unchanged)")


def make_dirs(path: str | Path) -> Path:
    """``mkdir -p path``; a failure (a file in the way, no permission, full disk) is an ``OutputError``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, path) from e
    return path


class _Recorder:
    """A file object that remembers the OS error of a failed write: ``torch.save`` turns it into a
    RuntimeError ("unexpected pos ...") that no longer says why it failed."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _stage(path: Path, write: Callable[[IO[bytes]], Any]) -> str:
    """Write a temporary file beside ``path`` (flushed and fsynced) and return its name."""
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise output_error(e, path) from e
    rec = None
    try:
        with os.fdopen(fd, "wb") as f:
            rec = _Recorder(f)
            write(rec)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        cause = e if isinstance(e, OSError) else rec.error if rec is not None else None
        if cause is not None:
            raise output_error(cause, path) from e
        raise
    return tmp


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write`` receives a binary file object to fill.

    The folder is created when missing; on any error the temporary file is removed and the
    previous content of ``path`` (if any) stays as it was.

    Raises:
        OutputError: the file or its folder cannot be written (full disk, permissions, ...).
    """
    path = Path(path)
    tmp = _stage(path, write)
    try:
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(e, path) from e
    return path


def write_files(contents: Mapping[str | Path, bytes | str]) -> list[Path]:
    """Write several files all or nothing: every one is staged (written, fsynced) before the first is
    renamed into place, so a full disk leaves every one of them as it was.

    Raises:
        OutputError: one of them cannot be written (then none is changed).
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in contents.items():
            raw = data.encode() if isinstance(data, str) else bytes(data)
            staged.append((_stage(Path(path), lambda f, raw=raw: f.write(raw)), Path(path)))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise output_error(e, path) from e
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    return [Path(p) for p in contents]


def write_text(path: str | Path, text: str) -> Path:
    """``atomic_write`` of a UTF-8 text."""
    data = text.encode()
    return atomic_write(path, lambda f: f.write(data))


def strict_json_value(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON ``null``), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_value(v) for v in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (``kwargs`` go to ``json.dumps``): NaN and infinities become
    ``null`` (docs/data.md#strict-json). Every JSON file or line the package writes goes through it."""
    return json.dumps(strict_json_value(obj), allow_nan=False, **kwargs)


def write_json(path: str | Path, obj: Any, indent: int | None = 2, **kwargs: Any) -> Path:
    """``atomic_write`` of ``obj`` as indented strict JSON (``kwargs`` go to ``json.dumps``)."""
    return write_text(path, to_json(obj, indent=indent, **kwargs) + "\n")


def append_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Append ``text`` to ``path`` (created with its folder when missing); with ``fsync`` it is on
    disk when this returns. A failed append is undone (the file is cut back to its previous length).

    Raises:
        OutputError: the text cannot be written.
    """
    path = Path(path)
    make_dirs(path.parent)
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise output_error(e, path) from e
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise output_error(e, path) from e
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(src: str | Path, dst: str | Path) -> Path:
    """Make ``dst`` the same file as ``src``: a hard link, or a copy where links are impossible
    (another file system). Kept as it is when it already is that file (same inode, or a copy with
    the same size and modification time); replaced atomically otherwise."""
    import shutil

    src, dst = Path(src), Path(dst)
    if dst.exists():
        a, b = src.stat(), dst.stat()
        if os.path.samefile(src, dst) or (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns):
            return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
