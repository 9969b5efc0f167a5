"""Helpers shared by the search benchmarks (bench_search_nb201.py, bench_search_ofa.py): main.py in a
subprocess, interleaved before/after timing, summaries, and writing a results section into BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("METAD2A_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))


def main_py(front_end: str, work: Path, *args: str, threads: int) -> str:
    """Run ``<front_end>/main.py --gpu cpu ARGS`` in ``work``; returns stdout (exits on failure)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run([sys.executable, str(REPO / front_end / "main.py"), "--gpu", "cpu", *args],
                       cwd=work, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
    return p.stdout


def interleaved(before: Callable[[int], Any], after: Callable[[int], Any], reps: int
                ) -> tuple[list[float], list[float], list[tuple[Any, Any]]]:
    """Time ``before(i)`` and ``after(i)`` alternately (which goes first alternates too), so that both
    see the same load on a shared machine. Returns (seconds before, seconds after, outputs)."""
    tb, ta, outs = [], [], []
    for i in range(reps):
        pair: dict[str, Any] = {}
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            fn = before if name == "before" else after
            t0 = time.perf_counter()
            pair[name] = fn(i)
            (tb if name == "before" else ta).append(time.perf_counter() - t0)
        outs.append((pair["before"], pair["after"]))
    return tb, ta, outs


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min–max)``."""
    if not xs:
        return "–"
    return f"{fmt.format(median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def dist(xs: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``mean / median / p90 / max`` of a sample, or a dash."""
    if not xs:
        return "–"
    s = sorted(xs)
    p90 = s[min(len(s) - 1, int(0.9 * len(s)))]
    return " / ".join(fmt.format(v) for v in (statistics.mean(s), statistics.median(s), p90, s[-1]))


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load} "
            f"(1/5/15 min) at the end")


def write_section(name: str, text: str, path: Path = REPO / "BENCHMARKS.md") -> None:
    """Replace the section between ``<!-- <name>:begin -->`` and ``<!-- <name>:end -->`` in
    BENCHMARKS.md (appended when absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
