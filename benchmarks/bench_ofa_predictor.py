"""OFA/MobileNetV3 predictor benchmark against Once-for-All's accuracy predictor as an oracle.

    python benchmarks/bench_ofa_predictor.py [--work /tmp/metad2a-bench-ofa] [--entries 1200] [--epochs 8]

About 4 minutes on 2 idle CPU cores with the defaults (meta-training: about 25 s per epoch).

ImageNet evaluation of subnets is impossible offline, so OFA's own MobileNetV3 accuracy predictor
(``../shared/data/ofa/ofa_mbv3_acc_predictor.pth``, docs/data.md#ofa-acc-predictor) stands in for ImageNet top-1. A
synthetic OFA meta-training database is written in the original collected-database format: tasks
are random class subsets (``--ways``) of a *synthetic* 512-d feature file, each with one random
subnet whose accuracy is ``100 * oracle(subnet) - difficulty(way) + noise`` (percent). Our predictor
is meta-trained on it with ``MetaD2A_ofa/main.py --model predictor --hs 512 --nz 56`` (CPU), then:

* **ranking quality**: Spearman and Pearson correlation between its predictions and the oracle on
  ``--heldout`` random subnets never seen in training, for each of ``--tasks`` new tasks (mean over
  tasks); the same for a trivial baseline (number of active layers);
* **selection**: per task, the oracle accuracy of the subnet the predictor ranks first among
  ``--candidates`` random subnets (the predictor's role in the search, without the generator, which
  cannot be meta-trained to valid decodes in this time budget), against the mean random subnet and
  the oracle's own best of the same candidates.

The features carry no information about the oracle (it is task-independent apart from the
difficulty term), so this measures how well the graph side of the predictor learns the accuracy
landscape. Prints a JSON summary and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORACLE = REPO.parent / "shared" / "data" / "ofa" / "ofa_mbv3_acc_predictor.pth"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from metad2a import paths  # noqa: E402
from metad2a.data.formats import read_bylabel  # noqa: E402
from metad2a.data.sets import sample_batch  # noqa: E402
from metad2a.models.factory import load_trained  # noqa: E402
from metad2a.models.predictor import score_sets  # noqa: E402
from metad2a.nn.graph_batch import GraphBatch  # noqa: E402
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.collected_database import collected_database  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.oracle import load_ofa_accuracy_predictor, predict_accuracy  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3  # noqa: E402
from metad2a.search_spaces.ofa_mbv3.synthetic import write_synthetic_ofa  # noqa: E402


def difficulty(way: int) -> float:
    """Percent points lost with more classes (a made-up, monotone task effect)."""
    return 2.0 * math.log2(max(way, 1) / 5.0)


def graphs(nets: list[dict]) -> GraphBatch:
    sp = OFA_MBV3
    return GraphBatch.from_lists([sp.arch_types(n) for n in nets], [sp.arch_edges(n) for n in nets], sp.max_n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/metad2a-bench-ofa")
    ap.add_argument("--classes", type=int, default=200, help="classes of the synthetic feature file")
    ap.add_argument("--ways", default="2,3,4,5",
                    help="classes per task (small: cheap sets, more steps in the budget)")
    ap.add_argument("--entries", type=int, default=1200, help="meta-training database entries (tasks)")
    ap.add_argument("--epochs", type=int, default=8, help="predictor meta-training epochs")
    ap.add_argument("--batch-size", type=int, default=8,
                    help="meta-training batch (main.py's default is 32; smaller gives more steps in few epochs)")
    ap.add_argument("--noise", type=float, default=0.3, help="sd of the accuracy noise (percent points)")
    ap.add_argument("--heldout", type=int, default=300, help="held-out subnets per task")
    ap.add_argument("--tasks", type=int, default=3, help="held-out tasks")
    ap.add_argument("--candidates", type=int, default=100, help="random candidates ranked per task")
    ap.add_argument("--sets", type=int, default=3, help="feature draws averaged per prediction")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not ORACLE.is_file():
        sys.exit(f"{ORACLE} not found: this benchmark needs OFA's accuracy predictor from ../shared/data/ofa")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = work / f"data-{args.entries}-{args.seed}"
    oracle = load_ofa_accuracy_predictor(ORACLE)
    ways = [int(w) for w in args.ways.split(",")]

    def accuracy(net: dict, way: int) -> float:
        return 100.0 * predict_accuracy(oracle, [net])[0] - difficulty(way)

    t0 = time.time()
    if not collected_database(data, "predictor").is_file():
        write_synthetic_ofa(data, num_source_classes=args.classes, ways=ways, num_predictor_entries=args.entries,
                            num_generator_entries=0, targets={}, accuracy=accuracy, noise=args.noise, seed=args.seed)
    t_data = time.time() - t0

    run = work / f"run-{args.entries}-{args.epochs}-{args.batch_size}-{args.seed}"
    if run.exists():
        shutil.rmtree(run)  # always meta-train afresh (main.py would append to its logs)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    p = subprocess.run([sys.executable, str(REPO / "MetaD2A_ofa" / "main.py"), "--gpu", "cpu", "--model", "predictor",
                        "--hs", "512", "--nz", "56", "--max-epoch", str(args.epochs),
                        "--save-epoch", str(args.epochs),
                        "--batch_size", str(args.batch_size),
                        "--data-path", str(data), "--save-path", str(run), "--seed", str(args.seed)],
                       env=env, capture_output=True, text=True, check=False)
    t_train = time.time() - t0
    if p.returncode:
        sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
    epochs = [json.loads(x) for x in (run / "predictor" / "results.jsonl").read_text().splitlines()]

    sp = OFA_MBV3
    ckpt = paths.model_dir(run, "predictor") / "ckpt_max_corr.pt"
    model, _ = load_trained("predictor", ckpt, nvt=sp.nvt, max_n=sp.max_n, hs=512, nz=56, num_sample=20)
    feats = read_bylabel(paths.bylabel(data, paths.IMAGENET32))
    rng = random.Random(args.seed + 1)
    gen = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.time()
    rows = []
    for _ in range(args.tasks):
        way = rng.choice(ways)
        classes = sorted(rng.sample(range(args.classes), way))
        sets = sample_batch(feats, [classes] * args.sets, 20, gen)
        nets = [ofa.random_arch_dict(rng) for _ in range(args.heldout)]
        truth = np.array([100.0 * a - difficulty(way) for a in predict_accuracy(oracle, nets)])
        pred = score_sets(model, sets, graphs(nets)).numpy()
        layers = np.array([sum(n["d"]) for n in nets], dtype=float)
        cands = [ofa.random_arch_dict(rng) for _ in range(args.candidates)]
        cand_truth = np.array([100.0 * a - difficulty(way) for a in predict_accuracy(oracle, cands)])
        cand_pred = score_sets(model, sets, graphs(cands)).numpy()
        pick = int(np.argmax(cand_pred))
        rows.append({"way": way, "spearman": stats.spearmanr(pred, truth)[0],
                     "pearson": stats.pearsonr(pred, truth)[0],
                     "layers_spearman": stats.spearmanr(layers, truth)[0],
                     "picked": cand_truth[pick], "random_mean": cand_truth.mean(), "oracle_best": cand_truth.max(),
                     "picked_percentile": 100.0 * (cand_truth < cand_truth[pick]).mean()})
    t_eval = time.time() - t0

    def mean(k: str) -> float:
        return float(statistics.mean(float(r[k]) for r in rows))

    summary = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
                          f"{args.threads} threads", "args": vars(args),
               "seconds": {"data": round(t_data, 1), "meta_train": round(t_train, 1), "eval": round(t_eval, 1)},
               "epochs": [{k: e.get(k) for k in ("epoch", "train_corr", "valid_corr", "train_seconds")}
                          for e in epochs],
               "per_task": rows, "spearman": mean("spearman"), "pearson": mean("pearson"),
               "layers_spearman": mean("layers_spearman"), "picked": mean("picked"),
               "random_mean": mean("random_mean"), "oracle_best": mean("oracle_best"),
               "picked_percentile": mean("picked_percentile")}
    print(json.dumps(summary, indent=2, default=float))
    print()
    print(f"OFA/MobileNetV3 predictor vs the OFA accuracy oracle ({args.entries} synthetic tasks, {args.epochs} "
          f"epochs, batch {args.batch_size}, hs 512, CPU {args.threads} threads; {args.tasks} held-out tasks)")
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| meta-training time ({args.epochs} epochs, {args.entries} entries) | {t_train:.0f} s |")
    print(f"| validation Pearson (original split, last epoch) | {epochs[-1].get('valid_corr', float('nan')):.3f} |")
    print(f"| Spearman, predictor vs oracle ({args.heldout} held-out subnets) | {summary['spearman']:.3f} |")
    print(f"| Pearson, predictor vs oracle | {summary['pearson']:.3f} |")
    print(f"| Spearman, baseline: active layers vs oracle | {summary['layers_spearman']:.3f} |")
    print(f"| oracle top-1 of the predictor's pick among {args.candidates} random subnets | "
          f"{summary['picked']:.2f} % "
          f"(percentile {summary['picked_percentile']:.1f}) |")
    print(f"| oracle top-1, mean random subnet | {summary['random_mean']:.2f} % |")
    print(f"| oracle top-1, best of the {args.candidates} (oracle pick) | {summary['oracle_best']:.2f} % |")


if __name__ == "__main__":
    main()
