"""``make demo``: an NB201 search end to end, offline, with the committed NB201 prior.

The prior (``metad2a.priors.nb201_prior()``, docs/data.md#nb201-prior) is a generator and a predictor
meta-trained by this repository's ``main.py`` on the original MetaD2A's 4,630 real (ImageNet-32 task,
NB201 cell, accuracy) triples, with synthetic class features in the offline extractor's width. The
search target is scikit-learn's 8x8 digits through EfficientNet-Lite0 (``demo/data/digitsbylabel.pt``,
committed; ``demo/build.sh`` regenerates it). The demo runs the README's two search commands with the
prior's ranking and prints the chosen cell, the predictor's value for it and what that value means,
and the cell's predicted rank among random NB201 cells; given ``--nb201-table`` also its accuracies in
the NB201 table. It then runs ``metad2a search digits`` (features of the digits' images, search,
random baseline, export, report; no training) and says where its report is. ``--data-path``/``--data-name``
search any other EfficientNet-Lite0 feature file the same way (without the report). Since the prior's features are synthetic, dataset conditioning is inactive: the choice
reflects what worked on real ImageNet-32 tasks, not anything about digits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from metad2a.cli import main as cli_main
from metad2a.errors import user_command
from metad2a.priors import Prior, nb201_prior

DEMO = Path(__file__).resolve().parents[1] / "demo"
TARGET = "digits"
NUM_GEN_ARCH = 500  # the README's CIFAR search size
NUM_RANDOM = 1000  # random cells the chosen one is ranked against
REPORT_IMAGES_PER_CLASS = 30  # digits images per class for the report's search (extraction time)
TABLE_COLUMNS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16_120": "ImageNet16-120"}


def search(work: Path, quiet: bool = False, prior: Prior | None = None, num_gen_arch: int = NUM_GEN_ARCH,
           data_path: Path = DEMO / "data", data_name: str = TARGET) -> dict:
    """Run the generator and predictor search on ``<data_path>/<data_name>bylabel.pt`` with the prior;
    returns its ``result.json``."""
    prior = prior or nb201_prior()
    results = work / "results"
    for kind, src in (("generator", prior.generator), ("predictor", prior.predictor)):
        dst = results / kind / "model"
        dst.mkdir(parents=True, exist_ok=True)
        for f in (src, src.with_suffix(".json")):
            shutil.copyfile(f, dst / f.name)
    common = ["--gpu", "cpu", "--data-path", str(data_path), "--save-path", str(results), "--test",
              "--data-name", data_name, "--num-gen-arch", str(num_gen_arch), "--load-epoch", str(prior.generator_epoch)]
    steps = [["--model", "generator", "--hs", str(prior.generator_hs), "--nz", str(prior.nz)],
             ["--model", "predictor", "--hs", str(prior.predictor_hs), "--nz", str(prior.nz), "--train-arch", "false",
              *prior.search_flags]]
    for s in steps:
        if not quiet:
            print(f"\n$ python MetaD2A_nas_bench_201/main.py {' '.join(s + common)}")
        if cli_main(s + common, space="nasbench201"):
            raise SystemExit(2)
    return json.loads((results / "meta_test" / data_name / "best_arch" / "result.json").read_text())


def random_rank(arch: str, prior: Prior | None = None, num_random: int = NUM_RANDOM, seed: int = 0,
                data_path: Path = DEMO / "data", data_name: str = TARGET) -> tuple[int, int]:
    """How many of ``num_random`` random NB201 cells (seeded; ``arch`` left out) the prior's ranking
    places below ``arch`` on resampled sets of the target: (below, compared)."""
    from metad2a.data.catalog import DatasetInfo
    from metad2a.data.meta_test import load_target
    from metad2a.engine.predictor_runner import rank_scores
    from metad2a.nn.graph_batch import GraphBatch
    from metad2a.search_spaces.nasbench201 import cell as nb

    prior = prior or nb201_prior()
    gen, pred = prior.load_models()
    g = torch.Generator().manual_seed(seed)
    cells = sorted(nb.all_arch_strs())
    others = [cells[i] for i in torch.randperm(len(cells), generator=g)[:num_random].tolist() if cells[i] != arch]
    archs = others + [arch]
    graphs = GraphBatch.from_lists([nb.arch_str_to_types(a) for a in archs], [nb.CANONICAL_EDGES] * len(archs),
                                   nb.MAX_N)
    target = load_target(data_path, data_name, pred.num_sample, DatasetInfo(0), pred.feature_dim)
    sets = target.sample(prior.ranking.get("pred_num_sets", 10), g)
    scores = rank_scores([pred], sets, graphs, gen, prior.ranking.get("likelihood_weight", 0.0))[0]
    return int((scores[:-1] < scores[-1]).sum()), len(others)


def report(out: Path) -> dict:
    """``metad2a search digits --out OUT`` with the prior (no training): the report of the digits;
    returns its ``summary.json``."""
    from metad2a.search_cmd import build_parser
    from metad2a.search_cmd import run as run_search

    args = build_parser().parse_args([TARGET, "--out", str(out), "--max-per-class", str(REPORT_IMAGES_PER_CLASS),
                                      "--num-archs", str(NUM_GEN_ARCH)])
    return run_search(args)


@user_command("interrupted")
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m metad2a.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("work", nargs="?", default="demo_run", help="output folder (default demo_run)")
    ap.add_argument("--nb201-table", type=Path, default=None,
                    help="NB201 CSV table (arch_str, <dataset>_test_200ep): also print the chosen cell's accuracies")
    ap.add_argument("--data-path", type=Path, default=DEMO / "data",
                    help="folder with <data-name>bylabel.pt (process_dataset.py; default: the demo's digits)")
    ap.add_argument("--data-name", default=TARGET,
                    help="target to search for, with EfficientNet-Lite0 (1280-d) features (default digits)")
    ap.add_argument("--likelihood-weight", type=float, default=None,
                    help="the ranking's generator log-likelihood weight (default: the prior's, 0.5; 0: the original "
                         "ranking, docs/fidelity.md#prior-ranking)")
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    work = Path(a.work).resolve()
    t0 = time.time()
    prior = nb201_prior()
    if a.likelihood_weight is not None:
        prior = prior.with_likelihood_weight(a.likelihood_weight)
    what = "scikit-learn's digits" if a.data_name == TARGET else a.data_name
    print(f"==> MetaD2A demo (offline): search an NB201 cell for {what}; outputs in {work}")
    print(f"    prior: {prior.description}")
    print(f"    ranking: {prior.ranking_text}")
    result = search(work, prior=prior, data_path=a.data_path.resolve(), data_name=a.data_name)
    top = result["runs"][0]
    arch = top["top1_arch"]
    print(f"\n==> chosen cell: {arch}")
    if top["top1_predicted_acc"] is not None:
        print(f"    predicted accuracy on a 20-class ImageNet-32 task, with the meta-database's training recipe: "
              f"{top['top1_predicted_acc']:.2f} % (what the predictor learnt about the cell from real tasks; "
              f"not a prediction for {what})")
    below, compared = random_rank(arch, prior, data_path=a.data_path.resolve(), data_name=a.data_name)
    print(f"    predicted rank: above {below:,} of {compared:,} random NB201 cells (the same ranking)")
    if a.nb201_table is not None:
        from metad2a.search_spaces.nasbench201.table import read_nb201_csv

        table = read_nb201_csv(a.nb201_table)
        parts = []
        for col, label in TABLE_COLUMNS.items():
            if table.has(col) and (acc := table.lookup(col, arch)) is not None:
                values = list(table.acc[col].values())
                pct = 100 * sum(v <= acc for v in values) / len(values)
                parts.append(f"{label} {acc:.2f} % ({pct:.1f}th percentile)")
        print(f"    measured in the NB201 table (200-epoch test accuracy): {'; '.join(parts)}")
    if a.data_name == TARGET and a.data_path.resolve() == (DEMO / "data").resolve():
        print(f"\n==> metad2a search {TARGET} --out {work / 'report'} (features of {REPORT_IMAGES_PER_CLASS} images "
              "per class, search, random baseline, export, report)")
        report(work / "report")
        print(f"==> report: {work / 'report' / 'report.md'}")
    print(f"==> done in {time.time() - t0:.0f}s; main.py results in {work / 'results/meta_test' / a.data_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
