"""The only downloader: streamed HTTP downloads that never leave a partial file at the target.

Replaces the download code of the original ``get_files/*.py`` scripts (HayeonLee/MetaD2A, MIT),
which streamed with ``requests`` and a tqdm bar but crashed without a Content-Length header,
re-downloaded everything on every run, had no checksums and wrote straight to the target
(docs/fidelity.md#downloads). Here:

* the body goes to ``<target>.part`` and is renamed into place only when complete, so a failed or
  interrupted transfer leaves nothing at the target path. The ``.part`` file is kept on purpose:
  the next attempt (or the next run) resumes it with an HTTP ``Range`` request, and restarts from
  zero when the server ignores the range;
* connection errors, timeouts, 5xx answers and bodies shorter than their Content-Length are
  retried with exponential back-off; 4xx answers and HTML pages (what Dropbox and Google Drive
  send for dead, private or rate-limited links) fail at once;
* a target that already exists is skipped: only complete files are ever renamed into place, and
  when a size or sha256 is known the file must match it too;
* ``METAD2A_MIRROR=<base URL>`` fetches every file from ``<base>/<last URL path segment>``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from metad2a.errors import DownloadError, MetaD2AError, one_line
from metad2a.files import file_sha256

MIRROR_ENV = "METAD2A_MIRROR"
PART_SUFFIX = ".part"
_CHUNK = 1 << 16
_HTML_PREFIXES = (b"<!doctype html", b"<html")


class ManifestEntry(NamedTuple):
    """One file of a ``get_files`` manifest.

    Attributes:
        url: The original download URL.
        target: Where the file goes, relative to the download root.
        extract_to: For a ``.tar.gz`` only: the folder (relative to the root) it is unpacked into;
            the tarball is deleted afterwards, as the original scripts do.
        size: Expected size in bytes, when known.
        sha256: Expected SHA-256 hex digest, when known.
    """

    url: str
    target: str
    extract_to: str | None = None
    size: int | None = None
    sha256: str | None = None


class _Transient(Exception):
    """A failure worth retrying: connection error, timeout, 5xx or truncated body."""


DROPBOX = "https://www.dropbox.com/s"


def dropbox_url(key: str, name: str) -> str:
    """The direct-download URL of a Dropbox share ``<key>/<name>`` (the original hosting)."""
    return f"{DROPBOX}/{key}/{name}?dl=1"


def dropbox_entry(key: str, name: str, target_dir: str, target_name: str | None = None) -> ManifestEntry:
    """A manifest entry for a Dropbox share saved as ``<target_dir>/<target_name or name>``."""
    return ManifestEntry(dropbox_url(key, name), f"{target_dir}/{target_name or name}")


def url_filename(url: str) -> str:
    """The last path segment of ``url``, without query string or fragment."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def mirror_url(url: str, mirror: str | None = None) -> str:
    """The URL a file is actually fetched from.

    Args:
        url: The original URL, e.g. ``https://www.dropbox.com/s/xyz/ckpt_400.pt?dl=1``.
        mirror: Base URL of a mirror; defaults to the ``METAD2A_MIRROR`` environment variable.

    Returns:
        ``url`` itself without a mirror, else ``<mirror>/<last path segment>``
        (``<mirror>/ckpt_400.pt`` in the example).
    """
    base = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    if not base:
        return url
    return f"{base.rstrip('/')}/{url_filename(url)}"


def is_complete(path: str | Path, size: int | None = None, sha256: str | None = None) -> bool:
    """Whether ``path`` is a file matching the given size and sha256 (each checked only when given)."""
    path = Path(path)
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or file_sha256(path) == sha256.lower()


def download_file(
    url: str,
    dest: str | Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming and retrying as needed.

    Args:
        url: The original URL (rewritten by ``METAD2A_MIRROR``, see :func:`mirror_url`).
        dest: Target file; its folder is created. Skipped when it already exists (and matches
            ``expected_size``/``sha256`` when given); a stale file that does not match them is
            replaced only once the new download is complete.
        expected_size: Expected size in bytes, checked before the rename.
        sha256: Expected SHA-256 hex digest, checked before the rename.
        retries: Retries after the first attempt for transient failures (connection errors,
            timeouts, 5xx, truncated bodies). Each retry resumes the ``.part`` file.
        backoff: Seconds before the first retry; doubled for each further retry.
        timeout: Seconds to wait for the connection and for each read.
        progress: Show a tqdm bar (only on a terminal).

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        DownloadError: 4xx answer, HTML page instead of the file, wrong size or hash, or a
            transient failure that outlasted the retries. Nothing is left at ``dest`` (a ``.part``
            file may remain to be resumed, except after a size or hash mismatch).
    """
    dest = Path(dest)
    if is_complete(dest, expected_size, sha256):
        return dest
    source = mirror_url(url)
    part = dest.with_name(dest.name + PART_SUFFIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch(source, dest, part, timeout=timeout, progress=progress)
            break
        except _Transient as err:
            if attempt == retries:
                tries = f"{retries + 1} attempts" if retries else "1 attempt"
                raise DownloadError(
                    f"{source}: {err} (gave up after {tries}); check the network and run "
                    f"again (a partial download is resumed), or set {MIRROR_ENV} to a mirror that has "
                    f"{url_filename(url)}"
                ) from err
            time.sleep(backoff * 2**attempt)
    _verify(part, source, dest, expected_size, sha256)
    os.replace(part, dest)
    return dest


def _fetch(source: str, dest: Path, part: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: resume or (re)start ``part``; raises _Transient for failures worth retrying."""
    offset = part.stat().st_size if part.is_file() else 0
    # identity: Content-Length must count the bytes we write, and ranges must address them.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with requests.get(source, headers=headers, stream=True, timeout=timeout) as resp:
            _check_answer(resp, source, dest, part, offset)
            if resp.status_code != 206:
                offset = 0  # the server ignored the range: start over
            length = resp.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            received = _write_body(resp, source, dest, part, offset, expected, progress)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
        raise _Transient(_describe(err)) from err
    if expected is not None and received < expected:
        raise _Transient(f"body truncated ({received} of {expected} bytes)")


def _check_answer(resp: requests.Response, source: str, dest: Path, part: Path, offset: int) -> None:
    """Sort the status line and headers into success, transient failure and fatal failure."""
    code = resp.status_code
    if code == 416 and offset:
        part.unlink()
        raise _Transient("server refused to resume the partial file (HTTP 416)")
    if code >= 500:
        raise _Transient(f"HTTP {code} {resp.reason}")
    if code >= 400:
        raise DownloadError(
            f"{source}: HTTP {code} {resp.reason}; the link is dead or wrong: put the file at {dest} "
            f"by hand, or set {MIRROR_ENV} to a mirror that has it"
        )
    if code == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
        part.unlink()
        raise _Transient("server resumed at the wrong offset")
    if "text/html" in resp.headers.get("Content-Type", "").lower():
        raise _html_error(source, dest)


def _write_body(
    resp: requests.Response,
    source: str,
    dest: Path,
    part: Path,
    offset: int,
    expected: int | None,
    progress: bool,
) -> int:
    """Append (206) or write (200) the body to ``part``; returns the bytes received."""
    chunks = resp.iter_content(_CHUNK)
    first = next(chunks, b"")
    if not offset and first[:64].lstrip().lower().startswith(_HTML_PREFIXES):
        raise _html_error(source, dest)
    received = 0
    total = None if expected is None else offset + expected
    bar = tqdm(
        total=total,
        initial=offset,
        desc=dest.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if progress else True,  # None: only on a terminal
    )
    with bar, open(part, "ab" if offset else "wb") as fh:
        for chunk in itertools.chain([first], chunks):
            fh.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


def _verify(part: Path, source: str, dest: Path, size: int | None, sha256: str | None) -> None:
    """Check a finished ``part`` against the expected size and hash; a bad one is deleted."""
    actual = part.stat().st_size
    problem = None
    if size is not None and actual != size:
        problem = f"got {actual} bytes, expected {size}"
    elif sha256 is not None and file_sha256(part) != sha256.lower():
        problem = "sha256 mismatch"
    if problem:
        part.unlink()
        raise DownloadError(
            f"{source}: {problem}; the file differs from the one this code expects: run again, or put "
            f"the right file at {dest} by hand"
        )


def _html_error(source: str, dest: Path) -> DownloadError:
    return DownloadError(
        f"{source}: the server sent an HTML page instead of the file (the link is dead, private or "
        f"rate-limited); download it in a browser to {dest}, or set {MIRROR_ENV} to a mirror that has it"
    )


def _describe(err: requests.RequestException) -> str:
    """A short reason for a network failure (requests' own messages nest several exceptions)."""
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "connection broke off during the transfer"
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+", str(err))
    return f"connection failed ({cause.group(0)})" if cause else "connection failed"


def strip_archive_suffix(name: str) -> str:
    """``'fgvc-aircraft-2013b.tar.gz'`` -> ``'fgvc-aircraft-2013b'``.

    The original used ``name.strip('.tar.gz')``, which strips a character set from both ends and
    works for this name only by accident (docs/fidelity.md#strip-suffix).
    """
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract_tarball(archive: str | Path, dest_dir: str | Path, *, remove: bool = True) -> Path:
    """Unpack a tar(.gz) archive into ``dest_dir``, then delete it as the original scripts do.

    Args:
        archive: The tarball.
        dest_dir: Folder to unpack into; created when missing.
        remove: Delete the tarball after a successful extraction.

    Returns:
        ``dest_dir`` as a ``Path``.

    Raises:
        DownloadError: The archive is unreadable, or a member would land outside ``dest_dir``
            (absolute path, ``..``, link pointing outside, device file). Nothing is extracted then.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root, archive)
            # The "data" filter (Python >= 3.11.4 / 3.10.12) repeats these checks and drops modes.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **extra)
    except (tarfile.TarError, EOFError) as err:
        raise DownloadError(
            f"{archive}: unreadable archive ({one_line(err)}); delete it and run again"
        ) from err
    if remove:
        archive.unlink()
    return dest_dir


def _check_member(member: tarfile.TarInfo, root: Path, archive: Path) -> None:
    """Reject a member that would be written, or would point, outside ``root``."""
    target = (root / member.name).resolve()
    inside = [target]
    if member.issym():
        inside.append((target.parent / member.linkname).resolve())
    elif member.islnk():
        inside.append((root / member.linkname).resolve())
    if member.isdev() or not all(p == root or p.is_relative_to(root) for p in inside):
        raise DownloadError(
            f"{archive}: member {member.name!r} would land outside {root}; the archive is not the "
            "expected one: delete it and download it again"
        )


def _extracted_stamp(entry: ManifestEntry, root: Path) -> Path | None:
    """Marker written after a successful extraction, since the tarball itself is deleted."""
    if entry.extract_to is None:
        return None
    return root / entry.extract_to / f".{strip_archive_suffix(url_filename(entry.url))}.extracted"


def download_all(entries: Iterable[ManifestEntry | Sequence], root: str | Path = ".", **options) -> int:
    """Download a manifest, keep going after failures, and print one line per failure and a summary.

    Args:
        entries: ``ManifestEntry`` objects or plain ``(url, target)`` tuples.
        root: Folder the targets are relative to.
        **options: Passed to :func:`download_file` (``retries``, ``backoff``, ``timeout``,
            ``progress``).

    Returns:
        The number of entries that failed (0 on success).
    """
    root = Path(root)
    fetched = present = 0
    failed: list[str] = []
    for entry in (e if isinstance(e, ManifestEntry) else ManifestEntry(*e) for e in entries):
        target = root / entry.target
        stamp = _extracted_stamp(entry, root)
        if (stamp.is_file() if stamp else is_complete(target, entry.size, entry.sha256)):
            present += 1
            continue
        print(f"{entry.target} <- {mirror_url(entry.url)}", flush=True)
        try:
            download_file(entry.url, target, expected_size=entry.size, sha256=entry.sha256, **options)
            if stamp:
                extract_tarball(target, stamp.parent)
                stamp.touch()
            fetched += 1
        except (MetaD2AError, OSError) as err:
            failed.append(entry.target)
            print(f"error: {entry.target}: {one_line(err)}", file=sys.stderr, flush=True)
    print(
        f"{fetched} downloaded, {present} already present, {len(failed)} failed "
        f"(under {root.resolve()})",
        flush=True,
    )
    return len(failed)


def _parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        default=".",
        help="folder the target paths are relative to (default: the current folder, which the README "
        "puts inside MetaD2A_nas_bench_201/ or MetaD2A_ofa/)",
    )
    return parser


def download_main(
    entries: Sequence[ManifestEntry], argv: Sequence[str] | None = None, *, description: str | None = None
) -> int:
    """Entry point of the ``get_files/*.py`` scripts: parse ``--root`` and download ``entries``.

    Returns:
        The exit status: 0 when everything is in place, 1 when a file failed, 130 on Ctrl-C.
    """
    args = _parser(description).parse_args(argv)
    try:
        return 1 if download_all(entries, args.root) else 0
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def unavailable_main(
    message: str, argv: Sequence[str] | None = None, *, description: str | None = None
) -> int:
    """Entry point of a ``get_files`` script whose file was never published: explain and return 2."""
    _parser(description).parse_args(argv)
    print(f"error: {message}", file=sys.stderr)
    return 2
