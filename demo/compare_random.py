"""Measure how the demo's chosen NB201 cell compares with random cells on the target dataset.

Trains the cell ``make demo`` chooses and ``--random`` random cells on scikit-learn's digits (its
seeded 80/20 hold-out split) with the meta-database's short recipe, for ``--seeds`` seeds each, and
writes ``demo/target_accuracies.json``.

    python demo/compare_random.py [--random 10] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metad2a import demo  # noqa: E402
from metad2a.data.arch_data import load_pixels, normalise_pixels  # noqa: E402
from metad2a.data.image_sources import build_source  # noqa: E402
from metad2a.search_spaces.nasbench201 import cell as nb  # noqa: E402
from metad2a.search_spaces.nasbench201.train import TrainRecipe, train_arch  # noqa: E402

RECIPE = TrainRecipe(epochs=4, batch_size=64, channel=8, num_cells=1)  # as demo/build.sh's database


def dataset(split: str) -> torch.utils.data.TensorDataset:
    src = build_source("digits", split=split)
    x = load_pixels(src, range(len(src.targets)))
    return torch.utils.data.TensorDataset(normalise_pixels(x, src.key), torch.tensor(src.targets))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        chosen = demo.search(Path(tmp), quiet=True)["runs"][0]["top1_arch"]
    rng = random.Random(0)
    all_strs = list(nb.all_arch_strs())
    randoms = [a_ for a_ in rng.sample(all_strs, a.random + 1) if a_ != chosen][: a.random]
    train, test = dataset("train"), dataset("test")
    accs = {}
    for arch in [chosen, *randoms]:
        seeds = [train_arch(arch, train, {"test": test}, 10, RECIPE, seed, "cpu", progress=False,
                            eval_every_epoch=False)["final_acc"]["test"] for seed in range(a.seeds)]
        accs[arch] = {"mean": statistics.mean(seeds), "seeds": seeds}
        print(f"{'chosen' if arch == chosen else 'random'} {statistics.mean(seeds):6.2f}  {arch}")
    rand = [accs[r]["mean"] for r in randoms]
    summary = {"chosen_arch": chosen, "chosen_mean": accs[chosen]["mean"], "num_random": len(rand),
               "random_mean": statistics.mean(rand), "random_best": max(rand), "random_worst": min(rand),
               "beats_random": sum(accs[chosen]["mean"] > r for r in rand)}
    out = {"dataset": "scikit-learn digits, seeded 80/20 hold-out", "recipe":
           f"{RECIPE.epochs} epochs, batch {RECIPE.batch_size}, C={RECIPE.channel}, N={RECIPE.num_cells}, 32x32",
           "seeds": list(range(a.seeds)), "accuracies": accs, "summary": summary}
    (REPO / "demo" / "target_accuracies.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
