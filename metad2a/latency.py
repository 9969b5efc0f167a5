"""Latency measured on the user's device, and cached per device fingerprint
(docs/fidelity.md#budget-latency, docs/data.md#latency-cache).

``LatencyMeter`` times a module on a device: ``warmup`` untimed forward passes, then the median
of ``repeats`` timed ones, each on a batch of ``batch`` random images, under ``torch.inference_mode``
with the given number of intra-op threads; on CUDA every timed pass is bracketed by
``torch.cuda.synchronize``. What it measures goes into a ``LatencyCache``: one JSON file per
fingerprint (device name, torch version, threads, batch, input size, space and timing method), so
that a repeated search measures nothing twice, and a cache made under another fingerprint is
never read: a folder holds one file per fingerprint, and a file given explicitly whose
fingerprint differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.config import LATENCY_DEVICE
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.files import to_json, write_json

log = logging.getLogger("metad2a")

CACHE_FORMAT = "metad2a-latency-cache"
CACHE_VERSION = 1
WARMUP = 5
REPEATS = 20


def resolve_device(spec: str) -> torch.device:
    """The torch device of ``--latency-device`` (``cpu``, ``cuda``, ``cuda:<i>``).

    CUDA indices count the devices visible to this process (``--gpu`` sets ``CUDA_VISIBLE_DEVICES``).

    Raises:
        MetaD2AError: not a device name, CUDA asked for without CUDA, or an index out of range.
    """
    if not isinstance(spec, str) or not LATENCY_DEVICE.fullmatch(spec):
        raise MetaD2AError(f"--latency-device {spec!r} is not a device; use cpu, cuda or cuda:<index>")
    device = torch.device(spec)
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise MetaD2AError(f"--latency-device {spec}: CUDA is not available on this machine; "
                           f"use --latency-device cpu")
    index = 0 if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise MetaD2AError(f"--latency-device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible "
                           f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """The hardware behind ``device``: the GPU's name, or the CPU model (from /proc/cpuinfo where
    there is one) with the number of logical CPUs."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model} ({os.cpu_count()} logical CPUs)"


CLOCKS = ("wall", "cpu")


def fingerprint(space: str, device: torch.device, batch: int, threads: int, input_size: int,
                clock: str = "wall") -> dict[str, Any]:
    """What a latency depends on besides the network: the key of a cache file. (The number of
    warm-up and timed passes changes only the precision, and is not part of it.)"""
    return {"space": space, "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
            "threads": int(threads), "batch": int(batch), "input_size": int(input_size),
            "method": {"statistic": "median", "clock": clock, "mode": "torch.inference_mode, eval"}}


def fingerprint_id(fp: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (the cache file's name)."""
    return hashlib.sha256(to_json(fp, sort_keys=True).encode()).hexdigest()[:12]


def _describe_difference(stored: dict[str, Any], current: dict[str, Any]) -> str:
    keys = sorted(set(stored) | set(current))
    diff = [f"{k} {stored.get(k)!r} vs {current.get(k)!r} here" for k in keys if stored.get(k) != current.get(k)]
    return "; ".join(diff)


@dataclass
class LatencyCache:
    """Measured latencies (ms) of one fingerprint, by key, in one JSON file.

    Use :meth:`open`; entries measured since the last :meth:`save` are ``new``.
    """

    path: Path
    fingerprint: dict[str, Any]
    entries: dict[str, float] = field(default_factory=dict)
    new: int = 0

    @classmethod
    def open(cls, location: str | Path, fp: dict[str, Any]) -> LatencyCache:
        """The cache of fingerprint ``fp`` at ``location``.

        ``location`` is a folder (the file ``<space>-<fingerprint id>.json`` in it: created when
        missing; other fingerprints' files are left alone, with a note that this fingerprint is
        measured anew) or a ``.json`` file (used only if its fingerprint is ``fp``).

        Raises:
            DataFileError: the file is not a latency cache, or holds another fingerprint.
        """
        location = Path(location)
        explicit = location.suffix == ".json" or location.is_file()
        path = location if explicit else location / f"{fp['space']}-{fingerprint_id(fp)}.json"
        if not path.is_file():
            if not explicit and location.is_dir():
                others = [p.name for p in sorted(location.glob(f"{fp['space']}-*.json"))]
                if others:
                    log.info(f"note: {location} holds latencies measured under other fingerprints "
                             f"({', '.join(others)}); measuring anew for this one ({path.name})")
            return cls(path, fp)
        try:
            data = json.loads(path.read_text())
            ok = data.get("format") == CACHE_FORMAT and isinstance(data.get("entries"), dict)
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise DataFileError(f"{path}: not a latency cache ({CACHE_FORMAT}); remove it or pass another "
                                f"--latency-cache")
        if data.get("fingerprint") != fp:
            diff = _describe_difference(data.get("fingerprint") or {}, fp)
            raise DataFileError(f"{path}: measured under another fingerprint ({diff}); its latencies do not hold "
                                f"here: pass a folder to --latency-cache to measure anew")
        return cls(path, fp, {str(k): float(v) for k, v in data["entries"].items()})

    def get(self, key: str) -> float | None:
        return self.entries.get(key)

    def put(self, key: str, ms: float) -> None:
        self.entries[key] = float(ms)
        self.new += 1

    def save(self) -> None:
        """Write the file (atomically) if anything was measured since it was read or last saved."""
        if not self.new:
            return
        write_json(self.path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "unit": "ms",
                               "fingerprint": self.fingerprint, "entries": dict(sorted(self.entries.items()))})
        self.new = 0


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` while active, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LatencyMeter:
    """Times modules on a device and keeps the results in a cache.

    Attributes:
        device: where modules run.
        batch: images per forward pass.
        threads: intra-op threads while timing.
        input_size: image side; a module's input is ``[batch, channels, side, side]`` unless the
            caller gives another shape.
        cache: the fingerprint's cache.
        warmup, repeats: untimed passes, then timed passes (the median counts).
        clock: ``wall`` (elapsed time: the latency) or ``cpu`` (the process's CPU time, on the CPU
            only: insensitive to other processes competing for the cores, for benchmarks on a
            shared machine; it leaves out time spent waiting, so it is not a latency on a quiet one).
    """

    device: torch.device
    batch: int
    threads: int
    input_size: int
    cache: LatencyCache
    warmup: int = WARMUP
    repeats: int = REPEATS
    clock: str = "wall"
    measured: int = 0  # networks timed (not served from the cache) by this meter

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS or (self.clock == "cpu" and self.device.type != "cpu"):
            raise MetaD2AError(f"clock {self.clock!r}: use 'wall', or 'cpu' on the CPU")

    @classmethod
    def open(cls, space: str, device: str | torch.device, batch: int, threads: int, input_size: int,
             location: str | Path, warmup: int = WARMUP, repeats: int = REPEATS, clock: str = "wall") -> LatencyMeter:
        """A meter whose cache is the fingerprint's file at ``location`` (see ``LatencyCache.open``)."""
        dev = resolve_device(device) if isinstance(device, str) else device
        fp = fingerprint(space, dev, batch, threads, input_size, clock)
        return cls(dev, batch, threads, input_size, LatencyCache.open(location, fp), warmup, repeats, clock)

    def samples(self, module: nn.Module, input_shape: tuple[int, ...], passes: int, warmup: int,
                parts: Sequence[nn.Module] = ()) -> list[list[float]]:
        """``warmup`` untimed, then ``passes`` timed forward passes of ``module`` on a random input of
        ``input_shape`` (batch first), with the meter's threads, device and clock.

        Returns one row per timed pass: the pass's seconds, then the seconds spent inside each of
        ``parts`` (sub-modules, timed in context by forward hooks; each called once per pass).
        """
        module = module.to(self.device).eval()
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        cuda = self.device.type == "cuda"
        clock = time.perf_counter if self.clock == "wall" else time.process_time
        row: list[float] = []
        starts: dict[int, float] = {}

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize(self.device)

        def pre(i: int) -> Callable[..., None]:
            def hook(*_: Any) -> None:
                sync()
                starts[i] = clock()
            return hook

        def post(i: int) -> Callable[..., None]:
            def hook(*_: Any) -> None:
                sync()
                row[1 + i] = clock() - starts[i]
            return hook

        handles = [h for i, m in enumerate(parts)
                   for h in (m.register_forward_pre_hook(pre(i)), m.register_forward_hook(post(i)))]
        rows = []
        try:
            with intra_op_threads(self.threads), torch.inference_mode():
                for i in range(warmup + passes):
                    row = [0.0] * (1 + len(parts))
                    sync()
                    t0 = clock()
                    module(x)
                    sync()
                    row[0] = clock() - t0
                    if i >= warmup:
                        rows.append(row)
        finally:
            for h in handles:
                h.remove()
        return rows

    def time(self, module: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Median latency (ms) of ``module``: ``warmup`` untimed passes, then ``repeats`` timed ones."""
        self.measured += 1
        return 1000.0 * statistics.median(r[0] for r in self.samples(module, input_shape, self.repeats, self.warmup))

    def measure(self, key: str, build: Callable[[], tuple[nn.Module, tuple[int, ...]]]) -> float:
        """The cached latency of ``key``, or time ``build()``'s ``(module, input shape)`` and cache it.

        ``build`` runs under a forked, seeded RNG: initialising a module draws no number from the
        global generator, so a search draws the same graphs whether its cache was warm or cold.
        """
        ms = self.cache.get(key)
        if ms is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                module, shape = build()
            ms = self.time(module, shape)
            self.cache.put(key, ms)
        return ms

    def image_shape(self, channels: int = 3) -> tuple[int, int, int, int]:
        """``[batch, channels, input_size, input_size]``."""
        return (self.batch, channels, self.input_size, self.input_size)

    def describe(self) -> dict[str, Any]:
        """The meter for ``result.json``: the fingerprint and the cache file."""
        return {"fingerprint": self.cache.fingerprint, "cache": str(self.cache.path)}
