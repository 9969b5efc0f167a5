"""NB201 speed benchmark: meta-training epochs and the README's CIFAR-10 search, on this machine.

    python benchmarks/bench_nb201.py [--work /tmp/metad2a-bench] [--gen-epochs 20] [--threads 2]

Data: the real task list and predictor database from ../shared/data/metad2a when present (4,630 entries,
4,230 for training), with *synthetic* ImageNet-32-sized features (600 classes x 1,281 rows x 512, since
imgnet32bylabel.pt cannot be downloaded here) and a synthetic CIFAR-10 feature file (10 x 5,000 x 512).
The generator database is derived from the predictor database: each task's best architecture (3,031 tasks).
Everything is cached in --work. Prints a JSON summary and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("METAD2A_SHARED_DATA", REPO.parent / "shared" / "data")) / "metad2a"
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from metad2a import paths  # noqa: E402
from metad2a.checkpoint import load_data, save_data  # noqa: E402
from metad2a.data.formats import MetaTrainFile, read_meta_train, write_bylabel, write_meta_train  # noqa: E402
from metad2a.data.synthetic import synthetic_features  # noqa: E402
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201  # noqa: E402


def build_data(data: Path) -> str:
    if (data / "done").is_file():
        return (data / "done").read_text()
    data.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    if (SHARED / "meta_train_tasks_predictor.pt").is_file():
        source = "real task list and predictor database (../shared/data/metad2a)"
        save_data(load_data(SHARED / "meta_train_task_lst.pt"), data / paths.META_TRAIN_TASK_LST)
        mt = read_meta_train(SHARED / "meta_train_tasks_predictor.pt", SHARED / "meta_train_tasks_predictor_idx.pt")
        write_meta_train(mt, *paths.meta_train_tasks(data, "predictor"))
        best: dict[int, int] = {}
        for i, (t, a) in enumerate(zip(mt.task, mt.acc)):
            if t not in best or a > mt.acc[best[t]]:
                best[t] = i
        keep = sorted(best.values())
        perm = torch.randperm(len(keep), generator=gen).tolist()
        write_meta_train(MetaTrainFile([mt.acc[i] for i in keep], [mt.task[i] for i in keep],
                                       [mt.graphs[i] for i in keep], perm), *paths.meta_train_tasks(data, "generator"))
    else:
        source = "synthetic task list and databases (../shared/data absent)"
        write_synthetic_nb201(data, num_source_classes=600, num_tasks=5000, num_predictor_entries=4630,
                              targets={}, with_nasbench201=False)
    print("writing synthetic imgnet32bylabel.pt (600 x 1281 x 512) and cifar10bylabel.pt (10 x 5000 x 512)")
    write_bylabel(synthetic_features(600, 1281, 512, gen), paths.bylabel(data, paths.IMAGENET32))
    write_bylabel(synthetic_features(10, 5000, 512, gen), paths.bylabel(data, "cifar10"))
    (data / "done").write_text(source)
    return source


def main_py(work: Path, *args: str, threads: int) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    t = time.time()
    p = subprocess.run([sys.executable, str(REPO / "MetaD2A_nas_bench_201" / "main.py"), "--gpu", "cpu", *args],
                       cwd=work, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
    return time.time() - t, p.stdout


def epochs(work: Path, model: str) -> list[dict]:
    f = work / "results" / model / "results.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.is_file() else []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/metad2a-bench")
    ap.add_argument("--gen-epochs", type=int, default=20, help="generator epochs before the search benchmark")
    ap.add_argument("--pred-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    work = Path(a.work)
    source = build_data(work / "data")
    out: dict = {"loadavg_start": os.getloadavg(), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "torch": torch.__version__, "threads": a.threads, "data": source}
    # predictor meta-training epochs (hs 512)
    if len(epochs(work, "predictor")) < a.pred_epochs:
        main_py(work, "--model", "predictor", "--hs", "512", "--nz", "56", "--max-epoch", str(a.pred_epochs),
                "--save-epoch", str(a.pred_epochs), "--resume", threads=a.threads)
    pe = epochs(work, "predictor")
    # generator meta-training epochs (hs 56), resumed until --gen-epochs
    if len(epochs(work, "generator")) < a.gen_epochs:
        main_py(work, "--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", str(a.gen_epochs),
                "--save-epoch", str(a.gen_epochs), "--resume", threads=a.threads)
    ge = epochs(work, "generator")
    out["predictor_epoch_train_s"] = [e["train_seconds"] for e in pe]
    out["predictor_epoch_valid_s"] = [e["valid_seconds"] for e in pe]
    out["generator_epoch_train_s"] = [e["train_seconds"] for e in ge]
    out["generator_epoch_valid_s"] = [e["valid_seconds"] for e in ge]
    db = read_meta_train(*paths.meta_train_tasks(work / "data", "generator"))
    out["generator_db_entries"] = len(db.acc)
    # the README's CIFAR-10 search: 10 runs x 500 unique architectures, generator then predictor
    wall_g, log_g = main_py(work, "--model", "generator", "--hs", "56", "--nz", "56", "--test", "--load-epoch",
                            str(a.gen_epochs), "--num-gen-arch", "500", "--data-name", "cifar10", threads=a.threads)
    wall_p, _ = main_py(work, "--model", "predictor", "--hs", "512", "--nz", "56", "--test", "--num-gen-arch", "500",
                        "--data-name", "cifar10", "--train-arch", "false", threads=a.threads)
    gen_runs = [float(x) for x in re.findall(r"elapsed time:\s+([0-9.]+)s \(", log_g)]
    decoded = [int(x) for x in re.findall(r"valid of (\d+) decoded", log_g)]
    result = json.loads((work / "results/meta_test/cifar10/best_arch/result.json").read_text())
    pred_run = result["predictor_seconds_mean"]
    out.update(search_generator_s_per_run=gen_runs, search_decoded_per_run=decoded,
               search_predictor_s_per_run=pred_run,
               search_s_per_run=sum(gen_runs) / len(gen_runs) + pred_run,
               search_wall_generator_cmd_s=wall_g, search_wall_predictor_cmd_s=wall_p)
    print(json.dumps(out, indent=2))
    out["peak_rss_mb_children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps({k: out[k] for k in ("peak_rss_mb_children", "loadavg_end")}))
    mean = statistics.median  # epochs on a shared machine: the median is the robust figure
    print("\n(medians over epochs and runs)\n| measure | this repository | target |\n|---|---|---|")
    print(f"| predictor epoch, train pass over 4,230 tasks | {mean(out['predictor_epoch_train_s']):.1f} s "
          f"(+ {mean(out['predictor_epoch_valid_s']):.1f} s validation, 400 tasks) | ≤ 40 s (original 92 s) |")
    print(f"| generator epoch over {out['generator_db_entries']:,} tasks (train + valid) | "
          f"{mean([t + v for t, v in zip(out['generator_epoch_train_s'], out['generator_epoch_valid_s'])]):.1f} s "
          f"| ≤ 20 s (original 69 s) |")
    print(f"| CIFAR-10 search per run (500 unique archs, generator + predictor) | {out['search_s_per_run']:.2f} s "
          f"(generator {mean(gen_runs):.2f} s, {mean(decoded):.0f} graphs decoded; predictor {pred_run:.2f} s) "
          f"| ≤ 3 s (original generator alone 91 s) |")


if __name__ == "__main__":
    main()
