"""Writing files so that a crash never leaves half of one, and fingerprinting them.

Every output file of the package goes through ``atomic_write``: the bytes go to a temporary file
in the target folder, are flushed to disk, and the temporary file is renamed over the target, so a
reader sees either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write`` receives a binary file object to fill.

    The folder is created when missing; on any error the temporary file is removed and the
    previous content of ``path`` (if any) stays as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``atomic_write`` of a UTF-8 text."""
    data = text.encode()
    return atomic_write(path, lambda f: f.write(data))


def write_json(path: str | Path, obj: Any, **kwargs: Any) -> Path:
    """``atomic_write`` of ``obj`` as indented JSON (``kwargs`` go to ``json.dumps``)."""
    return write_text(path, json.dumps(obj, indent=2, **kwargs) + "\n")


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
