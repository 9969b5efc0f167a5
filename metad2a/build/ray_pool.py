"""Independent jobs as Ray tasks: local or on a cluster, CPUs or GPUs, retries, a progress bar.

Shared by the database builders (NB201 and OFA/MobileNetV3, through :mod:`metad2a.build.jobs`).
The caller gives a function ``fn(payload, context, device) -> value``, the jobs ``(key, payload)``
and a callback that receives every job's final :class:`JobOutcome` as soon as it is known (to
persist it). A job that raises, or
whose worker dies, is submitted again up to ``max_retries`` times and then reported as failed with
its last error; nothing is dropped.

Ray set-up (:class:`RayPool`): with no address a private Ray instance is started on this machine,
on 127.0.0.1 only, without dashboard and with usage statistics off (``RAY_USAGE_STATS_ENABLED=0``
unless you set it), and shut down at the end; ``num_cpus`` caps the parallel CPU jobs. With an
address (``auto``, ``ray://host:10001``, ``host:6379``) it joins that cluster; the nodes need
``metad2a``'s dependencies (torch, torchvision, igraph, ...), and this process's ``metad2a`` package
is shipped to them through Ray (``runtime_env`` ``py_modules``). A Ray instance already running in
this process is used as it is and left running. Each job gets ``cpus_per_task`` CPUs and
``gpus_per_task`` GPUs (default: one GPU when the cluster has any, else none); inside a job torch runs
with one thread, and on ``cuda`` when Ray gave it a GPU.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metad2a.config import require_positive
from metad2a.errors import MetaD2AError, one_line

log = logging.getLogger("metad2a")


@dataclass(frozen=True)
class RayPoolConfig:
    """Where and how jobs run.

    Attributes:
        address: Ray cluster address; None starts a local Ray instance.
        num_cpus: CPUs of the local instance (None: all of this machine's); ignored with ``address``.
        cpus_per_task: CPUs reserved per job.
        gpus_per_task: GPUs per job (fractions allowed); None: 1 if the cluster has GPUs, else 0.
        max_retries: resubmissions of a failed job before it is reported failed.
        max_in_flight: jobs submitted but not finished (None: twice the parallel slots).
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    max_retries: int = 2
    max_in_flight: int | None = None

    def __post_init__(self) -> None:
        require_positive(self, "num_cpus", allow_none=True)
        if self.cpus_per_task <= 0 or (self.gpus_per_task is not None and self.gpus_per_task < 0):
            raise MetaD2AError("--cpus-per-task must be > 0 and --gpus-per-task >= 0")
        if self.max_retries < 0:
            raise MetaD2AError(f"--retries must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class JobOutcome:
    """The final state of one job.

    Attributes:
        key: the job's key.
        ok: whether it returned.
        value: what ``fn`` returned (None on failure).
        error: the last error as one line (None on success).
        attempts: submissions made (1 + retries used).
        seconds: wall time of the last attempt, submission to result.
        node: the Ray node id the successful attempt ran on (None on failure).
    """

    key: str
    ok: bool
    value: Any
    error: str | None
    attempts: int
    seconds: float
    node: str | None = None


def _execute(fn: Callable[[Any, Any, str], Any], payload: Any, context: Any) -> tuple[Any, str]:
    """The Ray task body: one torch thread, the GPU Ray assigned (if any), then ``fn``; returns its
    value and the id of the node it ran on (several nodes may share one host name)."""
    import ray
    import torch

    torch.set_num_threads(1)
    device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    return fn(payload, context, device), ray.get_runtime_context().get_node_id()


def one_line_error(err: BaseException) -> str:
    """A Ray error as ``Type: message`` on one line (the task's own exception when there is one)."""
    cause = getattr(err, "cause", None)
    return one_line(cause if isinstance(cause, BaseException) else err, with_type=True, limit=300)


@contextmanager
def _on_loopback() -> Iterator[None]:
    """Make Ray resolve this node's address to 127.0.0.1 while a local instance starts (Ray's own
    switch for local-only use, ``ENABLE_RAY_CLUSTER``, when ray was imported before the variable was set)."""
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: the environment variable alone decides
        yield
        return
    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if before is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before is not None:
            ray_constants.ENABLE_RAY_CLUSTER = before


class RayPool:
    """A Ray session for running jobs; use as a context manager.

    Args:
        config: where and how jobs run.
    """

    def __init__(self, config: RayPoolConfig | None = None) -> None:
        self.config = config if config is not None else RayPoolConfig()
        self._started = False

    def __enter__(self) -> RayPool:
        if self.config.address is None:
            # A local instance stays on the loopback interface: Ray otherwise advertises the address of
            # the interface that routes outwards. The variable is read when ray is imported (and by the
            # processes Ray starts); _on_loopback() covers a ray imported earlier.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
        try:
            import ray
        except ImportError as e:
            raise MetaD2AError("build-database runs its jobs with Ray: pip install 'ray>=2.9' "
                               "(or pip install -e .[ray])") from e
        if ray.is_initialized():
            if self.config.num_cpus is not None or self.config.address is not None:
                log.info("==> Ray is already running in this process: using it as it is "
                         "(--num-cpus / --ray-address do not apply)")
            return self
        if self.config.address is None:
            # workers import the same metad2a as this process (a source checkout wins over an install)
            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
            # address="local": always a new private instance, never a cluster found via RAY_ADDRESS
            # or the last `ray start` (that is what --ray-address is for)
            with _on_loopback():
                ray.init(address="local", num_cpus=self.config.num_cpus, include_dashboard=False,
                         configure_logging=False, log_to_driver=True, _node_ip_address="127.0.0.1",
                         runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
        else:
            # ship this process's metad2a to the cluster's workers (uploaded through Ray, not pip),
            # so every node runs the same code as the driver
            package = str(Path(__file__).resolve().parents[1])
            try:
                ray.init(address=self.config.address, configure_logging=False, log_to_driver=True,
                         runtime_env={"py_modules": [package], "env_vars": {"OMP_NUM_THREADS": "1"}})
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise MetaD2AError(f"cannot join the Ray cluster at {self.config.address!r} "
                                   f"({' '.join(str(e).split())[:160]}); check --ray-address") from e
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    @property
    def address(self) -> str:
        """The GCS address of the Ray instance in use (``host:port``; what ``--ray-address`` takes)."""
        import ray

        return ray.get_runtime_context().gcs_address

    def resources(self) -> dict[str, float]:
        import ray

        return dict(ray.cluster_resources())

    def gpus_per_task(self) -> float:
        """The configured GPUs per job, or 1 when unset and the cluster has a GPU."""
        if self.config.gpus_per_task is not None:
            return self.config.gpus_per_task
        return 1.0 if self.resources().get("GPU", 0) >= 1 else 0.0

    def slots(self) -> int:
        """Jobs the cluster can run at once."""
        res, gpus = self.resources(), self.gpus_per_task()
        n = int(res.get("CPU", 1) // self.config.cpus_per_task)
        if gpus > 0:
            n = min(n, int(res.get("GPU", 0) // gpus))
        return max(1, n)

    def run(self, fn: Callable[[Any, Any, str], Any], jobs: Iterable[tuple[str, Any]],
            on_outcome: Callable[[JobOutcome], None], context: Any = None, *, total: int | None = None,
            done_before: int = 0, desc: str = "jobs", progress: bool = True) -> None:
        """Run every job; call ``on_outcome`` (in this process) once per job as it finishes.

        Args:
            fn: ``fn(payload, context, device)``; must be importable or picklable by Ray.
            jobs: ``(key, payload)`` pairs.
            on_outcome: receives each job's final :class:`JobOutcome`, in completion order.
            context: one object shared by all jobs (put in the object store once).
            total: size of the whole work (for the bar; default: done_before + number of jobs).
            done_before: jobs finished in earlier runs (the bar starts there).
            desc: bar label.
            progress: show a tqdm bar (done/total, rate, ETA) on stderr.
        """
        import ray
        from tqdm import tqdm

        jobs = list(jobs)
        total = done_before + len(jobs) if total is None else total
        gpus = self.gpus_per_task()
        remote = ray.remote(_execute).options(num_cpus=self.config.cpus_per_task, num_gpus=gpus, max_retries=0)
        fn_ref, ctx_ref = ray.put(fn), ray.put(context)
        limit = self.config.max_in_flight or 2 * self.slots()
        queue = list(reversed(jobs))  # pop() takes them in order
        pending: dict[Any, tuple[str, Any, int, float]] = {}
        bar = tqdm(total=total, initial=done_before, desc=desc, unit="job", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

        def submit(key: str, payload: Any, attempt: int) -> None:
            pending[remote.remote(fn_ref, payload, ctx_ref)] = (key, payload, attempt, time.time())

        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    key, payload = queue.pop()
                    submit(key, payload, 1)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    key, payload, attempt, t0 = pending.pop(ref)
                    try:
                        value, node = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 -- RayTaskError (fn raised), WorkerCrashedError, ...
                        err = one_line_error(e)
                        if attempt <= self.config.max_retries:
                            log.warning(f"warning: {key}: attempt {attempt} failed ({err}); retrying")
                            submit(key, payload, attempt + 1)
                            continue
                        outcome = JobOutcome(key, False, None, err, attempt, time.time() - t0)
                    else:
                        outcome = JobOutcome(key, True, value, None, attempt, time.time() - t0, node)
                    on_outcome(outcome)
                    bar.update(1)
        except BaseException:  # interrupted (Ctrl-C) or on_outcome failed: stop the jobs still running
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 -- already finished or the cluster is gone
                    pass
            raise
        finally:
            bar.close()
