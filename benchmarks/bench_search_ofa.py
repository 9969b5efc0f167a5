"""MobileNetV3/OFA search speed: the original pooled loop before and after chunked decoding, and
``--constrained-decoding`` with a 1-epoch generator (docs/fidelity.md#chunked-search, #constrained-decoding).

    python benchmarks/bench_search_ofa.py [--quick] [--work /tmp/metad2a-bench-search-ofa] [--threads 2]

Writes its tables into BENCHMARKS.md (section ``bench_search_ofa``; ``--no-write`` only prints them).

Data: a synthetic OFA meta-database in the original formats (``write_synthetic_ofa``: 200 source classes
of 512-d synthetic features, tasks of 2-5 classes, 300 predictor and 200 generator entries, one random
subnet per task, the generator's the best of 10 by a synthetic accuracy), and a synthetic CIFAR-10-sized
target (10 classes x 5,000 rows), so that a pooled set has the README's size: 100 resampled sets x 10
classes x 20 rows. The generator is meta-trained with the original per-task steps through
``MetaD2A_ofa/main.py`` for ``--gen-epochs`` epochs (checkpoints of every epoch kept; the 1-epoch one is
the weak generator), the predictor for ``--pred-epochs`` epochs.

Before = the plain pooled loop (``tests/reference_search.py``); after = ``GeneratorRunner``. Both run
exactly ``--pooled`` pooled sets with the same seed (the early stop switched off for the timing), back to
back, alternating which goes first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch  # noqa: E402
from _search_common import dist, interleaved, machine, main_py, median, spread, write_section

from metad2a import paths  # noqa: E402
from metad2a.config import MetaTestConfig, ModelConfig, RunConfig  # noqa: E402
from metad2a.data.catalog import DatasetInfo  # noqa: E402
from metad2a.data.formats import read_bylabel, write_bylabel  # noqa: E402
from metad2a.data.meta_test import TargetDataset  # noqa: E402
from metad2a.data.synthetic import synthetic_features  # noqa: E402
from metad2a.engine import generator_runner  # noqa: E402
from metad2a.engine.generator_runner import GeneratorRunner  # noqa: E402
from metad2a.models.factory import load_trained  # noqa: E402
from metad2a.search_spaces import get_search_space  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.collected_database import collected_database  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.synthetic import write_synthetic_ofa  # noqa: E402
from tests import reference_search as ref  # noqa: E402

SPACE = get_search_space("ofa_mbv3")
FRONT = "MetaD2A_ofa"


def build(work: Path, gen_epochs: int, pred_epochs: int, threads: int) -> None:
    data = work / "data"
    if not collected_database(data, "generator").is_file():
        write_synthetic_ofa(data, num_source_classes=200, rows_per_class=40, ways=(2, 3, 4, 5),
                            num_predictor_entries=300, num_generator_entries=200, targets={})
        write_bylabel(synthetic_features(10, 5000, 512, torch.Generator().manual_seed(10)),
                      paths.bylabel(data, "cifar10"))
    gen_dir = paths.model_dir(work / "results", "generator")
    if not (gen_dir / f"ckpt_{gen_epochs}.pt").is_file():
        main_py(FRONT, work, "--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", str(gen_epochs),
                "--save-epoch", "1", "--resume", threads=threads)
    if not (paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt").is_file():
        main_py(FRONT, work, "--model", "predictor", "--hs", "512", "--nz", "56", "--max-epoch", str(pred_epochs),
                "--save-epoch", str(pred_epochs), "--batch_size", "8", threads=threads)


def load(kind: str, path: Path, hs: int):
    return load_trained(kind, path, nvt=SPACE.nvt, max_n=SPACE.max_n, hs=hs, nz=56,
                        start_type=SPACE.start_type, end_type=SPACE.end_type)[0]


def runner(cap: int | None = None) -> GeneratorRunner:
    r = GeneratorRunner(SPACE, RunConfig(space=SPACE.name, model="generator", test=True), ModelConfig(hs=56, nz=56),
                        torch.device("cpu"))
    if cap is not None:
        r.loop = replace(r.loop, max_pooled_batches=cap)
    return r


def pooled_speed(gen, pred, target, pooled: int, reps: int, constrained: bool) -> dict:
    """Exactly ``pooled`` pooled sets before and after, same seeds."""
    run = runner(cap=pooled)
    tc = MetaTestConfig(data_names=("cifar10",), constrained_decoding=constrained)
    want = 10 ** 9  # never reached: every pooled set is decoded (and scored when valid and new)
    verdict = generator_runner.yield_verdict

    def before(i):
        torch.manual_seed(100 + i)
        return ref.generate_pooled(SPACE, gen, pred, target, want, max_batches=pooled,
                                   constraints=SPACE if constrained else None)

    def after(i):
        torch.manual_seed(100 + i)
        return run._generate_pooled(gen, pred, target, want, tc, None)

    run._generate_pooled(gen, pred, target, 1, tc, None)  # the target's per-row projections: once per target
    generator_runner.yield_verdict = lambda *a, **k: None  # time exactly `pooled` sets
    try:
        tb, ta, outs = interleaved(before, after, reps)
    finally:
        generator_runner.yield_verdict = verdict
    for (archs, scores, decoded), res in outs:
        if archs != res.archs or decoded != res.decoded or any(abs(x - y) > 1e-5 for x, y in zip(scores, res.scores)):
            sys.exit("pooled loop: before and after differ for the same seed")
    res = [o[1] for o in outs]
    return {"constrained": constrained, "before_s": tb, "after_s": ta, "pooled": pooled,
            "valid": [r.valid for r in res], "unique": [len(r.archs) for r in res]}


def search_runs(gen, pred, target, want: int, reps: int, constrained: bool, fast: bool = False) -> dict:
    """The real search (early stop on) ``reps`` times: seconds, counts, scores of the kept subnets.
    ``fast``: with ``--fast-resampling`` (docs/fidelity.md#fast-resampling)."""
    return paired_runs(gen, pred, target, want, reps, constrained, (fast,))[0]


def paired_runs(gen, pred, target, want: int, reps: int, constrained: bool, variants=(False, True)) -> list[dict]:
    """``search_runs`` for each ``--fast-resampling`` setting in ``variants``, alternating per
    repetition (same seeds), so that a change in the machine's load hits all of them alike."""
    run = runner()
    setups = []
    for fast in variants:
        t = replace(target, fast_resampling=fast)
        tc = MetaTestConfig(data_names=("cifar10",), num_gen_arch=want, constrained_decoding=constrained,
                            fast_resampling=fast)
        run.search(gen, pred, t, 1, tc)  # projections
        setups.append((t, tc, [], []))
    for i in range(reps):
        for t, tc, secs, res in setups:
            torch.manual_seed(300 + i)
            t0 = time.perf_counter()
            res.append(run.search(gen, pred, t, want, tc))
            secs.append(time.perf_counter() - t0)
    return [{"constrained": constrained, "fast_resampling": tc.fast_resampling, "seconds": secs,
             "decoded": [r.decoded for r in res], "valid": [r.valid for r in res],
             "unique": [len(r.archs) for r in res], "scores": [s for r in res for s in r.scores],
             "stop": [r.stop_reason for r in res]} for _, tc, secs, res in setups]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/metad2a-bench-search-ofa")
    ap.add_argument("--quick", action="store_true",
                    help="30 pooled sets, 2 repetitions, 1 search run each, the 1-epoch generator only")
    ap.add_argument("--gen-epochs", type=int, default=10, help="also compare the generator after this many epochs")
    ap.add_argument("--pred-epochs", type=int, default=2)
    ap.add_argument("--pooled", type=int, default=100, help="pooled sets per timing")
    ap.add_argument("--want", type=int, default=200, help="subnets per search run (README: 200)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    pooled, reps, runs = (30, 2, 1) if a.quick else (a.pooled, 3, 5)
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    build(work, a.gen_epochs, 1 if a.quick else a.pred_epochs, a.threads)
    gen_dir = paths.model_dir(work / "results", "generator")
    pred = load("predictor", paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt", 512)
    target = TargetDataset("cifar10", read_bylabel(paths.bylabel(work / "data", "cifar10")),
                           DatasetInfo(10, runs=10), 20)
    gen1 = load("generator", gen_dir / "ckpt_1.pt", 56)
    speed = [pooled_speed(gen1, pred, target, pooled, reps, c) for c in (False, True)]
    constrained, constrained_fast = paired_runs(gen1, pred, target, a.want, runs, True)
    compare = []
    for ep in [1] if a.quick else sorted({1, a.gen_epochs}):
        g = gen1 if ep == 1 else load("generator", gen_dir / f"ckpt_{ep}.pt", 56)
        for c in (False, True):
            compare.append({"epochs": ep, **search_runs(g, pred, target, a.want, 1, c)})

    cmd = ("python benchmarks/bench_search_ofa.py" + (" --quick" if a.quick else "")
           + (f" --threads {a.threads}" if a.threads != 2 else ""))
    lines = [f"```bash\n{cmd}\n```", "",
             f"Measured on {machine()}; torch {torch.__version__}, {a.threads} thread(s). Before and after ran "
             f"back to back (same seed; same subnets and scores checked); medians (min–max) over {reps} "
             f"repetitions.", "",
             f"| original pooled loop, 1-epoch generator, {pooled} pooled sets of 100 x 10 x 20 rows | valid graphs "
             f"(each scored) | before, s per 100 pooled sets | after | before / after |", "|---|---|---|---|---|"]
    for r in speed:
        per100 = [t * 100 / r["pooled"] for t in r["before_s"]], [t * 100 / r["pooled"] for t in r["after_s"]]
        lines.append(f"| {'--constrained-decoding' if r['constrained'] else 'unconstrained'} | "
                     f"{median(r['valid']):.0f} of {r['pooled']} | {spread(per100[0])} | **{spread(per100[1])}** | "
                     f"{median(per100[0]) / median(per100[1]):.1f}x |")
    lines += ["", f"`--constrained-decoding`, 1-epoch generator, one search run of {a.want} subnets (pooled loop, "
              f"scoring included): **{spread(constrained['seconds'])} s** per run over {runs} run(s) "
              f"({median(constrained['decoded']):.0f} pooled sets decoded, all valid); with `--fast-resampling` "
              f"as well (same seeds, other sets; the two alternated run by run): "
              f"**{spread(constrained_fast['seconds'])} s** "
              f"({median(constrained_fast['unique']):.0f} subnets found).", "",
              f"Constrained vs unconstrained, {a.want} subnets requested, one run (early stop on); scores: the "
              "predictor's normalised output of the kept subnets, mean / median / p90 / max.", "",
              "| generator | decoding | pooled sets decoded | valid rate | unique rate | seconds | predictor scores "
              "of kept subnets | stopped |", "|---|---|---|---|---|---|---|---|"]
    for r in compare:
        d = max(sum(r["decoded"]), 1)
        lines.append(f"| {r['epochs']} epoch(s) | {'constrained' if r['constrained'] else 'unconstrained'} | "
                     f"{sum(r['decoded']):,} | {sum(r['valid']) / d:.1%} | {sum(r['unique']) / d:.1%} | "
                     f"{median(r['seconds']):.1f} | {dist(r['scores'], '{:.4f}')} | "
                     f"{'early: ' + r['stop'][0].split(';')[0] if r['stop'][0] else 'no'} |")
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"speed": speed, "constrained": constrained, "constrained_fast": constrained_fast,
                      "compare": [{k: v for k, v in r.items() if k != "scores"} for r in compare]}, default=str)[:4000])
    if not a.no_write:
        write_section("bench_search_ofa", "### OFA: the pooled loop before/after; `--constrained-decoding`\n\n" + text)


if __name__ == "__main__":
    main()
