"""metad2a.download and the get_files scripts against a real HTTP server on 127.0.0.1.

The server (ThreadingHTTPServer, HTTP/1.0 so every answer closes its connection) serves
``/<mode>/<name>`` for the files in ``server.files``:

* ``files``: Content-Length, and 206 answers to ``Range: bytes=N-``;
* ``flaky``: 500 on the first request for a name, then like ``files``;
* ``cut-once``: the first request sends the full Content-Length but half the body, then like ``files``;
* ``cut-norange``: like ``cut-once`` but ignores ``Range`` afterwards (200 with the whole file);
* ``always-cut``: always the full Content-Length and half the body;
* ``nolength``: no Content-Length, the body ends when the connection closes;
* ``html`` / ``html-sniff``: a 200 HTML page, with and without a text/html Content-Type;
* anything else: 404.

No test reaches anything but 127.0.0.1: proxies point at a dead local port (with 127.0.0.1
exempted) and name resolution of any other host raises.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metad2a import download as dl
from metad2a.download import ManifestEntry, download_all, download_file, extract_tarball
from metad2a.errors import DownloadError, MetaD2AError
from metad2a.search_spaces.nasbench201.downloads import MANIFEST as NB201
from metad2a.search_spaces.ofa_mbv3.downloads import MANIFEST as OFA

REPO = Path(__file__).resolve().parents[1]
FAST = {"backoff": 0.001, "timeout": 5.0, "progress": False}
HTML = b"<!DOCTYPE html>\n<html><body>Sign in to Dropbox</body></html>\n"
LOCAL_ONLY_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        mode, _, name = self.path.lstrip("/").partition("/")
        srv = self.server
        with srv.lock:
            srv.log.append((self.path, self.headers.get("Range")))
            srv.counts[self.path] += 1
            nth = srv.counts[self.path]
        if mode in ("html", "html-sniff"):
            ctype = "text/html; charset=utf-8" if mode == "html" else "application/octet-stream"
            return self._send(200, HTML, {"Content-Type": ctype})
        data = srv.files.get(name)
        if data is None:
            return self._send(404, b"not found")
        if mode == "flaky" and nth == 1:
            return self._send(500, b"oops")
        if mode == "always-cut" or (mode in ("cut-once", "cut-norange") and nth == 1):
            return self._send(200, data, cut=True)
        if mode == "nolength":
            return self._send(200, data, length=False)
        if mode in ("files", "flaky", "cut-once", "mirror"):
            return self._send_range(data)
        if mode == "cut-norange":
            return self._send(200, data)
        return self._send(404, b"not found")

    def _send_range(self, data: bytes) -> None:
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            cr = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], {"Content-Range": cr})
        return self._send(200, data)

    def _send(self, code: int, body: bytes, headers: dict | None = None, *, cut=False, length=True) -> None:
        self.send_response(code)
        headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        # HTTP/1.0: the connection closes after this answer, so a cut body reads as truncated.


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.counts: Counter = Counter()
        self.log: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path.lstrip('/')}"


@pytest.fixture(autouse=True)
def _local_only(monkeypatch):
    """Proxies to a dead local port, and no name resolution except for local hosts."""
    for key in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(key, raising=False)
    for key, value in LOCAL_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    real = socket.getaddrinfo

    def local_getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"):
            raise OSError(f"test tried to resolve {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_getaddrinfo)


@pytest.fixture
def server():
    srv = _Server()
    srv.files["data.bin"] = os.urandom(150_000)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_success_is_byte_identical(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    assert download_file(server.url("files/data.bin"), dest, **FAST) == dest
    assert dest.read_bytes() == server.files["data.bin"]
    assert not dest.with_name("data.bin.part").exists()


def test_404_fails_at_once_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download_file(server.url("files/nope.bin"), dest, retries=3, **FAST)
    assert isinstance(err.value, MetaD2AError) and "\n" not in str(err.value)
    assert server.counts["/files/nope.bin"] == 1
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_500_then_success(server, tmp_path):
    dest = tmp_path / "data.bin"
    download_file(server.url("flaky/data.bin"), dest, **FAST)
    assert dest.read_bytes() == server.files["data.bin"]
    assert server.counts["/flaky/data.bin"] == 2


def test_truncated_body_fails_after_retries_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="truncated|broke off") as err:
        download_file(server.url("always-cut/data.bin"), dest, retries=2, **FAST)
    assert "\n" not in str(err.value)
    assert server.counts["/always-cut/data.bin"] == 3
    assert not dest.exists()
    # Documented choice: the partial file stays next to the target, to be resumed later.
    assert dest.with_name("data.bin.part").is_file()


def test_resume_with_range_after_a_truncated_attempt(server, tmp_path):
    dest = tmp_path / "data.bin"
    data = server.files["data.bin"]
    download_file(server.url("cut-once/data.bin"), dest, **FAST)
    assert dest.read_bytes() == data
    (_, first), (_, second) = server.log
    # The resume starts where the written part ends (at most the half that was sent).
    assert first is None and second.startswith("bytes=")
    assert 0 < int(second[len("bytes=") : -1]) <= len(data) // 2


def test_restart_from_zero_when_the_server_ignores_range(server, tmp_path):
    dest = tmp_path / "data.bin"
    download_file(server.url("cut-norange/data.bin"), dest, **FAST)
    assert dest.read_bytes() == server.files["data.bin"]
    assert server.log[1][1] is not None  # a range was asked for, a 200 came back


def test_no_content_length(server, tmp_path):
    dest = tmp_path / "data.bin"
    download_file(server.url("nolength/data.bin"), dest, **FAST)
    assert dest.read_bytes() == server.files["data.bin"]


@pytest.mark.parametrize("mode", ["html", "html-sniff"])
def test_html_page_is_an_error(server, tmp_path, mode):
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(DownloadError, match="HTML") as err:
        download_file(server.url(f"{mode}/ckpt.pt"), dest, **FAST)
    assert "\n" not in str(err.value)
    assert server.counts[f"/{mode}/ckpt.pt"] == 1
    assert not list(tmp_path.iterdir())


def test_complete_file_is_skipped_without_a_request(server, tmp_path):
    dest = tmp_path / "data.bin"
    url = server.url("files/data.bin")
    download_file(url, dest, **FAST)
    download_file(url, dest, **FAST)
    download_file(url, dest, expected_size=len(server.files["data.bin"]), **FAST)
    assert server.counts["/files/data.bin"] == 1


def test_wrong_size_is_downloaded_again_and_checked(server, tmp_path):
    import hashlib

    data = server.files["data.bin"]
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    download_file(server.url("files/data.bin"), dest, sha256=hashlib.sha256(data).hexdigest(), **FAST)
    assert dest.read_bytes() == data
    other = tmp_path / "other.bin"
    with pytest.raises(DownloadError, match="expected 7"):
        download_file(server.url("files/data.bin"), other, expected_size=7, **FAST)
    assert not list(tmp_path.glob("other.bin*"))


def test_mirror_rewrites_the_url(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.MIRROR_ENV, server.url("mirror") + "/")
    dest = tmp_path / "renamed.bin"
    download_file("https://www.dropbox.com/s/xyz123/data.bin?dl=1", dest, **FAST)
    assert dest.read_bytes() == server.files["data.bin"]
    assert [path for path, _ in server.log] == ["/mirror/data.bin"]
    assert dl.mirror_url("https://www.dropbox.com/s/xyz/ckpt_400.pt?dl=1", "http://m/base") == (
        "http://m/base/ckpt_400.pt"
    )


def test_download_all_counts_failures_and_keeps_going(server, tmp_path, capsys):
    entries = [
        ManifestEntry(server.url("files/data.bin"), "a/data.bin"),
        (server.url("files/missing.bin"), "a/missing.bin"),
        (server.url("html/page.bin"), "a/page.bin"),
        (server.url("flaky/data.bin"), "b/data.bin"),
    ]
    assert download_all(entries, tmp_path, **FAST) == 2
    assert (tmp_path / "a/data.bin").read_bytes() == server.files["data.bin"]
    assert (tmp_path / "b/data.bin").read_bytes() == server.files["data.bin"]
    assert not (tmp_path / "a/missing.bin").exists() and not (tmp_path / "a/page.bin").exists()
    out, err = capsys.readouterr()
    assert "2 downloaded, 0 already present, 2 failed" in out
    assert len(err.strip().splitlines()) == 2 and "HTML" in err
    assert download_all(entries[:1], tmp_path, **FAST) == 0
    assert "0 downloaded, 1 already present, 0 failed" in capsys.readouterr().out


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_tarball_and_suffix(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(_tarball({"MNIST/raw/a.bin": b"abc"}))
    extract_tarball(archive, tmp_path / "out")
    assert (tmp_path / "out/MNIST/raw/a.bin").read_bytes() == b"abc"
    assert not archive.exists()
    assert dl.strip_archive_suffix("fgvc-aircraft-2013b.tar.gz") == "fgvc-aircraft-2013b"
    assert dl.strip_archive_suffix("data.tar.gz") == "data"  # str.strip('.tar.gz') would give 'd'


def test_extract_tarball_rejects_escaping_members(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tarball({"ok.txt": b"1", "../escaped.txt": b"2"}))
    with pytest.raises(DownloadError, match="outside"):
        extract_tarball(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out/ok.txt").exists()


def test_tarball_entry_is_extracted_once(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.MIRROR_ENV, server.url("mirror"))
    server.files["mnist.tar.gz"] = _tarball({"MNIST/raw/t10k.bin": b"digits"})
    assert download_all(NB201["get_mnist"], tmp_path, **FAST) == 0
    assert (tmp_path / "data/raw-data/mnist/MNIST/raw/t10k.bin").read_bytes() == b"digits"
    assert not (tmp_path / "data/raw-data/mnist/mnist.tar.gz").exists()
    assert download_all(NB201["get_mnist"], tmp_path, **FAST) == 0
    assert server.counts["/mirror/mnist.tar.gz"] == 1


def test_manifests_match_the_original_layout():
    pre = NB201["get_preprocessed_data"]
    assert len(pre) == 13 and all(e.target == f"data/{dl.url_filename(e.url)}" for e in pre)
    assert all(e.url.startswith("https://www.dropbox.com/s/") and e.url.endswith("?dl=1") for e in pre)
    assert NB201["get_checkpoint"][0].target == "results/generator/model/ckpt_400.pt"
    assert NB201["get_predictor_checkpoint"][0].target == "results/predictor/model/ckpt_max_corr.pt"
    assert NB201["get_aircraft"][0].extract_to == "data/raw-data/aircraft"
    ofa_pre = [dl.url_filename(e.url) for e in OFA["get_preprocessed_data"]]
    assert ofa_pre.count("imgnet32bylabel.pt") == 1 and len(ofa_pre) == 7
    (db,) = OFA["get_generator_database"]
    assert db.target == "data/generator/processed/collected_database.pt"
    assert dl.url_filename(db.url) == "generator_collected_database.pt"
    assert OFA["get_generator_checkpoint"][0].target == "results/generator/model/ckpt_120.pt"
    assert [e.target for e in OFA["get_pets"]] == ["data/pets/test15.pth", "data/pets/train85.pth"]
    assert "ycm4jaojgswp0zm" in OFA["get_predictor_checkpoint"][0].url


def _run_script(script: str, cwd: Path, mirror: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(LOCAL_ONLY_ENV, PYTHONPATH=str(REPO), **{dl.MIRROR_ENV: mirror})
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_get_files_scripts_end_to_end(server, tmp_path):
    for entry in NB201["get_preprocessed_data"] + OFA["get_generator_database"]:
        server.files[dl.url_filename(entry.url)] = os.urandom(1000 + len(server.files))
    mirror = server.url("mirror")

    proc = _run_script("MetaD2A_nas_bench_201/get_files/get_preprocessed_data.py", tmp_path, mirror)
    assert proc.returncode == 0, proc.stderr
    for entry in NB201["get_preprocessed_data"]:
        assert (tmp_path / entry.target).read_bytes() == server.files[dl.url_filename(entry.url)]

    proc = _run_script("MetaD2A_ofa/get_files/get_generator_database.py", tmp_path, mirror, "--root", "ofa")
    assert proc.returncode == 0, proc.stderr
    saved = tmp_path / "ofa/data/generator/processed/collected_database.pt"
    assert saved.read_bytes() == server.files["generator_collected_database.pt"]

    proc = _run_script("MetaD2A_nas_bench_201/get_files/get_checkpoint.py", tmp_path, mirror)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1
    assert not (tmp_path / "results/generator/model/ckpt_400.pt").exists()


@pytest.mark.slow
def test_ofa_predictor_database_is_not_downloaded(server, tmp_path):
    proc = _run_script("MetaD2A_ofa/get_files/get_predictor_database.py", tmp_path, server.url("mirror"))
    assert proc.returncode == 2
    assert "never published" in proc.stderr and "build_database.py" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir()) and not server.log


def _tar_gz(member: str, payload: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


ALL_SCRIPTS = [("MetaD2A_nas_bench_201", name, NB201[name]) for name in NB201] + [
    ("MetaD2A_ofa", name, OFA[name]) for name in OFA
]


@pytest.mark.slow
@pytest.mark.parametrize("front,name,entries", ALL_SCRIPTS, ids=[f"{f}/{n}" for f, n, _ in ALL_SCRIPTS])
def test_every_get_files_script_through_a_mirror(server, tmp_path, front, name, entries):
    """Each script lands byte-identical files at the original paths (tarballs: their content)."""
    expected = {}
    for e in entries:
        payload = os.urandom(500 + len(expected))
        fname = dl.url_filename(e.url)
        if e.extract_to:
            server.files[fname] = _tar_gz(f"{name}/inner.bin", payload)
            expected[f"{e.extract_to}/{name}/inner.bin"] = payload
        else:
            server.files[fname] = payload
            expected[e.target] = payload
    proc = _run_script(f"{front}/get_files/{name}.py", tmp_path, server.url("mirror"))
    assert proc.returncode == 0, proc.stderr
    for target, payload in expected.items():
        assert (tmp_path / target).read_bytes() == payload, target
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.tar.gz"))
