"""How well the OFA per-layer latency table predicts measured latency on this machine.

    python benchmarks/bench_latency_table.py [--subnets 100] [--threads 1] [--clock wall] [--write]

1. Builds the MobileNetV3 latency table (``metad2a latency-table``'s code: stem, 90 MBConv layers,
   head, each timed in context inside 9 whole subnets) into a fresh temporary cache and times the build.
2. Draws ``--subnets`` random subnets (seeded, OFA's sampling) and predicts each one's latency as
   the sum of its table entries.
3. Extracts each subnet from a randomly initialised supernet (latency does not depend on the weight
   values) with a ``--classes``-way head and times it whole with the same method as the table entries:
   ``--repeats`` timed forward passes (``--threads`` intra-op threads, batch ``--batch``) spread over
   4 rounds over all subnets, each round after ``--warmup`` untimed passes (the subnet is extracted
   anew each round, to keep memory small), and the median. The subnets are not among the table's 9.
4. Reports Spearman's rho, the mean absolute percentage error (MAPE), the mean signed error (bias)
   and the worst case, and the repeatability of the direct measurement itself (Spearman's rho
   between the medians of rounds 1+3 and of rounds 2+4: on a noisy machine, a ceiling for the
   table's rho), as JSON and as a Markdown table; ``--write`` puts the table into BENCHMARKS.md
   between this script's markers (one section per ``--clock``).

``--clock cpu`` times with the process's CPU time instead of the wall clock: on a machine shared
with other jobs it leaves out the time this process waits for a core, which the wall clock does
not; on a quiet machine both agree. Needs the ``ofa`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from scipy import stats  # noqa: E402

from metad2a.latency import LatencyMeter  # noqa: E402
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.latency_table import build_table, subnet_latencies  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet, extract_subnet, new_classifier  # noqa: E402

ROUNDS = 4  # as the table build (latency_table.ROUNDS)
MARKER = "<!-- bench_latency_table:{clock}:{end} -->"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subnets", type=int, default=100)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the per-subnet figures here")
    p.add_argument("--write", action="store_true", help="put the Markdown table into BENCHMARKS.md")
    args = p.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        meter = LatencyMeter.open(OFA_MBV3.name, "cpu", args.batch, args.threads, args.resolution, tmp,
                                  warmup=args.warmup, repeats=args.repeats, clock=args.clock)
        t0 = time.time()
        entries = build_table(meter, args.classes)
        build_s = time.time() - t0
        rng = random.Random(args.seed)
        archs = [ofa.random_arch_dict(rng) for _ in range(args.subnets)]
        predicted = subnet_latencies(archs, args.classes, meter)
        supernet = build_supernet(seed=0)
        samples: list[list[list[float]]] = [[] for _ in archs]  # per subnet, per round
        shape = (args.batch, 3, args.resolution, args.resolution)
        per_round = -(-args.repeats // ROUNDS)
        t1 = time.time()
        for _ in range(ROUNDS):
            for i, a in enumerate(archs):
                net = new_classifier(extract_subnet(supernet, a), args.classes, 0.0)
                samples[i].append([row[0] for row in meter.samples(net, shape, per_round, args.warmup)])
        measured = [1000.0 * statistics.median(x for r in s for x in r) for s in samples]
        # the measurement's own repeatability: rounds 1+3 against rounds 2+4 (half the passes each)
        halves = [[1000.0 * statistics.median(x for r in s[h::2] for x in r) for s in samples] for h in (0, 1)]
        split_rho = float(stats.spearmanr(*halves)[0])
        direct_s = time.time() - t1
    load_after = os.getloadavg()

    ape = [abs(p_ - m) / m for p_, m in zip(predicted, measured)]
    signed = [(p_ - m) / m for p_, m in zip(predicted, measured)]
    worst = max(range(len(ape)), key=ape.__getitem__)
    rho = float(stats.spearmanr(predicted, measured)[0])
    summary = {
        "subnets": args.subnets, "resolution": args.resolution, "classes": args.classes, "batch": args.batch,
        "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats, "clock": args.clock,
        "device": meter.cache.fingerprint["device"], "torch": torch.__version__,
        "table_entries": entries, "table_build_s": round(build_s, 1), "direct_timing_s": round(direct_s, 1),
        "spearman_rho": round(rho, 4), "mape_pct": round(100 * statistics.mean(ape), 2),
        "measured_split_half_rho": round(split_rho, 4),
        "bias_pct": round(100 * statistics.mean(signed), 2),
        "worst_ape_pct": round(100 * ape[worst], 2), "worst_predicted_ms": round(predicted[worst], 3),
        "worst_measured_ms": round(measured[worst], 3),
        "measured_ms": {"min": round(min(measured), 3), "median": round(statistics.median(measured), 3),
                        "max": round(max(measured), 3)},
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "archs": archs, "predicted_ms": predicted,
                                         "measured_ms_all": measured}, indent=1) + "\n")
    # the command as shown in BENCHMARKS.md: without the output options (--write, --json PATH)
    argv = sys.argv[1:]
    shown = [a for i, a in enumerate(argv) if a != "--write" and not a.startswith("--json")
             and not (i and argv[i - 1] == "--json")]
    cmd = "python benchmarks/bench_latency_table.py " + " ".join(shown)
    begin, end = MARKER.format(clock=args.clock, end="begin"), MARKER.format(clock=args.clock, end="end")
    md = "\n".join([
        begin,
        "```bash",
        cmd.strip(),
        "```",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| table build ({entries} entries: stem, 90 MBConv layers, {args.classes}-class head; "
        f"{args.resolution}px, batch {args.batch}, {args.threads} thread(s)) | **{build_s:.1f} s** | minutes |",
        f"| Spearman rho, table sum vs whole subnet, {args.subnets} random subnets | **{rho:.3f}** | >= 0.9 |",
        f"| mean absolute percentage error | **{100 * statistics.mean(ape):.1f} %** | <= 10 % |",
        f"| repeatability of the measurement itself: Spearman rho, rounds 1+3 vs 2+4 | {split_rho:.3f} | |",
        f"| mean signed error (table minus measured) | {100 * statistics.mean(signed):+.1f} % | |",
        f"| worst case | {100 * ape[worst]:.1f} % (table {predicted[worst]:.2f} ms, measured "
        f"{measured[worst]:.2f} ms) | |",
        f"| measured latency, min / median / max | {min(measured):.2f} / {statistics.median(measured):.2f} / "
        f"{max(measured):.2f} ms | |",
        f"| clock; load average before / after | {args.clock}; {load_before[0]:.2f} / {load_after[0]:.2f} | |",
        end,
    ])
    print(md)
    if args.write:
        bench = REPO / "BENCHMARKS.md"
        text = bench.read_text()
        if begin in text and end in text:
            text = text[: text.index(begin)] + md + text[text.index(end) + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + md + "\n"
        bench.write_text(text)


if __name__ == "__main__":
    main()
