"""NB201 search speed with a weak and a trained generator, before and after chunked decoding, and
constrained vs unconstrained decoding (docs/fidelity.md#chunked-search, #constrained-decoding).

    python benchmarks/bench_search_nb201.py [--quick] [--work /tmp/metad2a-bench-search-nb201] [--threads 2]

Writes its tables into BENCHMARKS.md (section ``bench_search_nb201``; ``--no-write`` only prints them).

* **Weak generator**: meta-trained for ``--gen-epochs`` (10) epochs on a ``--weak-tasks`` (600) task
  generator database: the first 600 tasks of the one ``bench_nb201.py`` derives from the **real** NB201
  predictor database and task list (``../shared/data/metad2a``), with synthetic ImageNet-32-sized
  features (the same files). This is the setting in which a new user meets a generator that keeps about
  1 decoded graph in 20. The ranking predictor is meta-trained on the full real predictor database for
  ``--pred-epochs`` epochs.
* **Trained generator**: meta-trained for ``--gen-epochs`` epochs on the whole derived database (3,031
  tasks), as ``bench_nb201.py`` does (about 5 of 6 decoded graphs kept).
* **Target**: the README's CIFAR-10 protocol (10 runs x 500 unique architectures) on a synthetic
  CIFAR-10-sized feature file (10 classes x 5,000 rows x 512), ``cifar10bylabel.pt`` of the data folder.

Before = the plain loop (``tests/reference_search.py``: one loader batch of 100 sets at a time, the set
encoder on the sampled rows); after = ``GeneratorRunner.generate``; fast = the same with
``--fast-resampling`` (same seeds, other sets: its archives are not compared). Each run is timed before and after
back to back (alternating which goes first) with the same seed, and the two must return the same
architectures. Ranking time: the predictor scoring the run's 500 architectures (10 common sets).
Constrained vs unconstrained: the same generator, target and seeds; the kept architectures' predictor
scores and, with the real NB201 table (``../shared/data/nb201/nb201_merged.csv.gz``), their CIFAR-10
accuracies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from _search_common import REPO, SHARED, dist, interleaved, machine, main_py, median, spread, write_section

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_nb201  # noqa: E402
import torch  # noqa: E402

from metad2a import paths  # noqa: E402
from metad2a.config import MetaTestConfig, ModelConfig, RunConfig  # noqa: E402
from metad2a.data.catalog import DatasetInfo  # noqa: E402
from metad2a.data.formats import MetaTrainFile, read_bylabel, read_meta_train, write_meta_train  # noqa: E402
from metad2a.data.meta_test import TargetDataset  # noqa: E402
from metad2a.engine.generator_runner import GeneratorRunner  # noqa: E402
from metad2a.engine.predictor_runner import PredictorRunner  # noqa: E402
from metad2a.models.factory import load_trained  # noqa: E402
from metad2a.search_spaces import get_search_space  # noqa: E402
from tests import reference_search as ref  # noqa: E402

SPACE = get_search_space("nasbench201")
TABLE = SHARED / "nb201" / "nb201_merged.csv.gz"
FRONT = "MetaD2A_nas_bench_201"


def weak_data(data: Path, tasks: int) -> Path:
    """``data`` with a generator database of its first ``tasks`` tasks (the other files linked)."""
    small = data.parent / f"{data.name}-{tasks}"
    if (small / "done").is_file():
        return small
    small.mkdir(parents=True, exist_ok=True)
    for f in data.iterdir():
        if f.is_file() and "generator" not in f.name and f.name != "done" and not (small / f.name).exists():
            (small / f.name).symlink_to(f.resolve())
    mt = read_meta_train(*paths.meta_train_tasks(data, "generator"))
    keep = list(range(tasks))
    write_meta_train(MetaTrainFile([mt.acc[i] for i in keep], [mt.task[i] for i in keep],
                                   [mt.graphs[i] for i in keep], [p for p in mt.perm if p < tasks]),
                     *paths.meta_train_tasks(small, "generator"))
    (small / "done").write_text(f"first {tasks} tasks of {data}")
    return small


def load(kind: str, path: Path, hs: int):
    model, meta = load_trained(kind, path, nvt=SPACE.nvt, max_n=SPACE.max_n, hs=hs, nz=56,
                               start_type=SPACE.start_type, end_type=SPACE.end_type)
    return model, meta


def runners(hs_pred: int) -> tuple[GeneratorRunner, PredictorRunner]:
    rc = RunConfig(space=SPACE.name, model="generator", test=True)
    g = GeneratorRunner(SPACE, rc, ModelConfig(hs=56, nz=56), torch.device("cpu"))
    p = PredictorRunner(SPACE, rc, ModelConfig(hs=hs_pred, nz=56), torch.device("cpu"))
    return g, p


def protocol(label: str, gen, pred, hs_pred: int, target: TargetDataset, runs: int, want: int) -> dict:
    """The CIFAR-10 protocol's generator step before and after, interleaved per run, and the ranking."""
    g_run, p_run = runners(hs_pred)
    tc = MetaTestConfig(data_names=("cifar10",), num_gen_arch=want)
    seeds = [1000 + k for k in range(runs)]

    def before(i):
        torch.manual_seed(seeds[i])
        return ref.generate(SPACE, gen, target, want)

    sampling: list[float] = []  # seconds per "after" run spent drawing the resampled sets' rows
    draw = target.sample_indices

    def timed_draw(*args, **kwargs):
        t0 = time.perf_counter()
        out = draw(*args, **kwargs)
        sampling[-1] += time.perf_counter() - t0
        return out

    def after(i):
        torch.manual_seed(seeds[i])
        sampling.append(0.0)
        return g_run.generate(gen, target, want, tc)

    g_run.generate(gen, target, 1, tc)  # the per-row projections of the target: once per target
    target.sample_indices = timed_draw
    try:
        tb, ta, outs = interleaved(before, after, runs)
    finally:
        del target.sample_indices
    for (archs, decoded), res in outs:
        if archs != res.archs or decoded != res.decoded:
            sys.exit(f"{label}: before and after differ for the same seed")
    rank = []
    for (_, _), res in outs:
        t0 = time.perf_counter()
        p_run.score(pred, target, res.archs, tc.pred_num_sets)
        rank.append(time.perf_counter() - t0)
    # --fast-resampling (docs/fidelity.md#fast-resampling): the same seeds, other sets, so other archives
    fast_target = replace(target, fast_resampling=True)
    tc_fast = replace(tc, fast_resampling=True)
    fast_s, fast_rank_s, fast_decoded = [], [], []
    phases = {"encode": [], "decode": []}  # per fast run: seconds in the set encoder and in decoding

    def timed(name, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            phases[name][-1] += time.perf_counter() - t0
            return out
        return run

    gen.set_encode_projected, gen.decode = timed("encode", gen.set_encode_projected), timed("decode", gen.decode)
    for i in range(runs):
        torch.manual_seed(seeds[i])
        phases["encode"].append(0.0)
        phases["decode"].append(0.0)
        t0 = time.perf_counter()
        res_f = g_run.generate(gen, fast_target, want, tc_fast)
        fast_s.append(time.perf_counter() - t0)
        if len(res_f.archs) != want:
            sys.exit(f"{label}: --fast-resampling found {len(res_f.archs)} of {want}")
        t0 = time.perf_counter()
        p_run.score(pred, fast_target, res_f.archs, tc.pred_num_sets)
        fast_rank_s.append(time.perf_counter() - t0)
        fast_decoded.append(res_f.decoded)
    del gen.set_encode_projected, gen.decode  # the instance attributes: back to the class's methods
    res = [o[1] for o in outs]
    return {"label": label, "before_s": tb, "after_s": ta, "rank_s": rank, "sampling_s": sampling,
            "decoded": [r.decoded for r in res], "valid": [r.valid for r in res],
            "unique": [len(r.archs) for r in res], "fast_s": fast_s, "fast_rank_s": fast_rank_s,
            "fast_decoded": fast_decoded, "fast_encode_s": phases["encode"], "fast_decode_s": phases["decode"]}


def constrained_vs_free(label: str, gen, pred, hs_pred: int, target: TargetDataset, runs: int, want: int,
                        table) -> list[dict]:
    g_run, p_run = runners(hs_pred)
    rows = []
    for constrained in (False, True):
        tc = MetaTestConfig(data_names=("cifar10",), num_gen_arch=want, constrained_decoding=constrained)
        dec = val = uni = 0
        scores, accs, top1, best30, secs = [], [], [], [], []
        for k in range(runs):
            torch.manual_seed(2000 + k)
            res = g_run.generate(gen, target, want, tc)
            s = p_run.score(pred, target, res.archs, tc.pred_num_sets).tolist() if res.archs else []
            dec, val, uni = dec + res.decoded, val + res.valid, uni + len(res.archs)
            secs.append(res.seconds)
            scores += s
            order = sorted(range(len(s)), key=lambda i: -s[i])
            if table is not None and res.archs:
                a = [table.lookup("cifar10", x) for x in res.archs]
                accs += [x for x in a if x is not None]
                top1.append(a[order[0]])
                best30.append(max(a[i] for i in order[:30]))
        rows.append({"label": label, "constrained": constrained, "decoded": dec, "valid": val, "unique": uni,
                     "seconds": secs, "scores": scores, "accs": accs, "top1": top1, "best30": best30})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/metad2a-bench-search-nb201")
    ap.add_argument("--quick", action="store_true", help="3 runs instead of 10, 1 predictor epoch")
    ap.add_argument("--gen-epochs", type=int, default=10, help="epochs of both generators")
    ap.add_argument("--weak-tasks", type=int, default=600, help="tasks of the weak generator's database")
    ap.add_argument("--pred-epochs", type=int, default=2)
    ap.add_argument("--want", type=int, default=500, help="unique architectures per run (README: 500)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    runs = 3 if a.quick else 10
    pred_epochs = 1 if a.quick else a.pred_epochs
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    source = bench_nb201.build_data(work / "data")
    small = weak_data(work / "data", a.weak_tasks)
    weak_dir = work / f"weak-{a.weak_tasks}"
    model_dir = paths.model_dir(weak_dir, "generator")
    if not (model_dir / f"ckpt_{a.gen_epochs}.pt").is_file():
        main_py(FRONT, work, "--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", str(a.gen_epochs),
                "--save-epoch", str(a.gen_epochs), "--resume", "--data-path", str(small),
                "--save-path", str(weak_dir), threads=a.threads)
    if not (paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt").is_file():
        main_py(FRONT, work, "--model", "predictor", "--hs", "512", "--nz", "56", "--max-epoch", str(pred_epochs),
                "--save-epoch", str(pred_epochs), "--resume", threads=a.threads)
    full_dir = paths.model_dir(work / "results", "generator")
    if not (full_dir / f"ckpt_{a.gen_epochs}.pt").is_file():
        main_py(FRONT, work, "--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", str(a.gen_epochs),
                "--save-epoch", str(a.gen_epochs), "--resume", threads=a.threads)
    weak, _ = load("generator", model_dir / f"ckpt_{a.gen_epochs}.pt", 56)
    trained, _ = load("generator", full_dir / f"ckpt_{a.gen_epochs}.pt", 56)
    pred, _ = load("predictor", paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt", 512)
    table = None
    if TABLE.is_file():
        from metad2a.search_spaces.nasbench201.table import read_nb201_csv
        table = read_nb201_csv(TABLE)
    target = TargetDataset("cifar10", read_bylabel(paths.bylabel(work / "data", "cifar10")),
                           DatasetInfo(10, runs=10, top_n=30, table_column="cifar10"), 20)
    weak_label = f"weak: {a.gen_epochs} epochs, {a.weak_tasks} tasks"
    trained_label = f"trained: {a.gen_epochs} epochs, all tasks"
    speed = [protocol(weak_label, weak, pred, 512, target, runs, a.want),
             protocol(trained_label, trained, pred, 512, target, runs, a.want)]
    quality = (constrained_vs_free(weak_label, weak, pred, 512, target, max(1, runs // 3), a.want, table)
               + constrained_vs_free(trained_label, trained, pred, 512, target, max(1, runs // 3), a.want, table))

    cmd = ("python benchmarks/bench_search_nb201.py" + (" --quick" if a.quick else "")
           + (f" --threads {a.threads}" if a.threads != 2 else ""))
    lines = [f"```bash\n{cmd}\n```", "",
             f"Measured on {machine()}; torch {torch.__version__}, {a.threads} thread(s); data: {source}. "
             f"Before and after ran back to back per run (same seed, same architectures checked); figures are "
             f"medians (min–max) over {runs} runs.", "",
             "| generator | yield (valid / decoded) | graphs decoded per run | generator step per run, before | "
             "after | before / after | of which drawing the sets' rows | ranking 500 archs | after + ranking | "
             "`--fast-resampling`: generator step | of which set encoder / decoding | before / fast | "
             "fast + ranking |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in speed:
        ratio = median(r["before_s"]) / median(r["after_s"])
        lines.append(f"| {r['label']} | {sum(r['valid']) / sum(r['decoded']):.1%} | {median(r['decoded']):,.0f} | "
                     f"{spread(r['before_s'])} s | **{spread(r['after_s'])} s** | {ratio:.1f}x | "
                     f"{spread(r['sampling_s'])} s | {spread(r['rank_s'])} s | "
                     f"{median([x + y for x, y in zip(r['after_s'], r['rank_s'])]):.2f} s | "
                     f"**{spread(r['fast_s'])} s** | {median(r['fast_encode_s']):.2f} / {median(r['fast_decode_s']):.2f} s | "
                     f"{median(r['before_s']) / median(r['fast_s']):.1f}x | "
                     f"{median([x + y for x, y in zip(r['fast_s'], r['fast_rank_s'])]):.2f} s |")
    lines += ["", f"Constrained vs unconstrained decoding, {max(1, runs // 3)} run(s) x {a.want} per generator "
              "(same seeds). Scores: the predictor's normalised output; accuracy: NB201 CIFAR-10 test accuracy "
              "(200 epochs) of the kept cells from the real table" + ("" if table else " (table absent: skipped)")
              + "; mean / median / p90 / max.", "",
              "| generator | decoding | valid rate | unique rate | generator s/run | predictor scores of kept "
              "archs | CIFAR-10 acc of kept archs (%) | top-1 by predictor (%) | best of top 30 (%) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in quality:
        lines.append(f"| {r['label']} | {'constrained' if r['constrained'] else 'unconstrained'} | "
                     f"{r['valid'] / max(r['decoded'], 1):.1%} | {r['unique'] / max(r['decoded'], 1):.1%} | "
                     f"{median(r['seconds']):.2f} | {dist(r['scores'], '{:.4f}')} | {dist(r['accs'])} | "
                     f"{dist(r['top1'])} | {dist(r['best30'])} |")
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"speed": speed, "quality": [{k: v for k, v in r.items() if k not in ("scores", "accs")}
                                                  for r in quality]}, default=str)[:4000])
    if not a.no_write:
        write_section("bench_search_nb201", "### NB201: weak and trained generator, before/after; constrained "
                                            "decoding\n\n" + text)


if __name__ == "__main__":
    main()
