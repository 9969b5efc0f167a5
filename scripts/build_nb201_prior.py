"""Regenerate the committed NB201 prior, ``metad2a/priors/nasbench201/`` (docs/data.md#nb201-prior).

    nice -n 10 python scripts/build_nb201_prior.py [--shared ../shared/data] [--work /tmp/metad2a-nb201-prior]

1. **Data** (``<work>/data``, in the original formats): the real task list and predictor database
   (``<shared>/metad2a``: 5,000 tasks of 20 ImageNet-32 classes; 4,630 (task, cell, accuracy) triples
   with the original ``_idx.pt`` split); the generator database derived from it, each task's best cell
   (``top_k_per_task``: 3,031 tasks, a fresh split permutation from seed 0); and **synthetic** class
   features for the 600 ImageNet-32 classes in the offline extractor's width (1280-d, EfficientNet-Lite0;
   ``data.synthetic.synthetic_features``), since the real ``imgnet32bylabel.pt`` cannot be obtained here.
2. **Meta-training** through ``MetaD2A_nas_bench_201/main.py``, the README's commands with the sizes and
   epochs of ``RECIPE`` (resumable: run the script again after an interruption).
3. **Install**: copies the checkpoints and their sidecars into the package and writes ``prior.json``
   (what they were trained on, the commands, the training seconds). These are exactly the committed files.

Because the features are synthetic, dataset conditioning is inactive: the prior knows which NB201 cells
did well on real ImageNet-32 tasks, but nothing about a target dataset. Results depend on the CPU's math
libraries: another machine regenerates equivalent, not necessarily bit-identical, files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from metad2a import paths  # noqa: E402
from metad2a.checkpoint import save_data  # noqa: E402
from metad2a.data.formats import (  # noqa: E402
    read_meta_train,
    read_task_list,
    top_k_per_task,
    write_bylabel,
    write_meta_train,
)
from metad2a.data.synthetic import synthetic_features  # noqa: E402
from metad2a.files import file_sha256, write_json  # noqa: E402
from metad2a.priors import NB201_PRIOR_DIR, PRIOR_FILE, ranking_note  # noqa: E402

SHARED_DATA = Path(os.environ.get("METAD2A_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_FILES = ("meta_train_task_lst.pt", "meta_train_tasks_predictor.pt", "meta_train_tasks_predictor_idx.pt")


@dataclass(frozen=True)
class PriorRecipe:
    """Everything the committed prior is a function of (besides the shared files and the machine)."""

    feature_dim: int = 1280  # EfficientNet-Lite0, the offline extractor (process_dataset.py)
    num_classes: int = 600  # ImageNet-32 classes the task list uses (ids 1..600)
    rows_per_class: int = 40  # synthetic rows per class (tasks sample num_sample=20 of them)
    feature_seed: int = 0
    generator_db_seed: int = 0  # split permutation of the derived generator database
    seed: int = 333  # main.py --seed (the original default)
    gen_hs: int = 56
    gen_epochs: int = 30  # validation loss is flat from epoch ~11 (BENCHMARKS.md#nb201-prior)
    pred_hs: int = 128  # the README's 512 makes a 16 MB file; 128 keeps it near 2.5 MB
    pred_epochs: int = 40  # ckpt_max_corr: the best validation Pearson r within these epochs
    pred_extra: tuple[str, ...] = field(default_factory=tuple)  # further main.py flags of the predictor
    nz: int = 56
    # the ranking the prior is searched with (MetaTestConfig, docs/fidelity.md#prior-ranking): half the
    # predictor, half the generator's log-likelihood; BENCHMARKS.md#nb201-prior measures every option
    pred_num_sets: int = 10
    likelihood_weight: float = 0.5


RECIPE = PriorRecipe()


def prepare_data(shared: Path, data: Path, recipe: PriorRecipe = RECIPE) -> dict:
    """Write the meta-training data directory; returns what it holds (kept in ``<data>/prepared.json``,
    which also makes a second call a no-op)."""
    done = data / "prepared.json"
    if done.is_file():
        return json.loads(done.read_text())
    missing = [f for f in SHARED_FILES if not (shared / f).is_file()]
    if missing:
        sys.exit(f"{shared}: missing {', '.join(missing)} (the original MetaD2A meta-training files)")
    data.mkdir(parents=True, exist_ok=True)
    tasks = read_task_list(shared / SHARED_FILES[0])
    save_data(tasks, data / paths.META_TRAIN_TASK_LST)
    pred = read_meta_train(shared / SHARED_FILES[1], shared / SHARED_FILES[2])
    write_meta_train(pred, *paths.meta_train_tasks(data, "predictor"))
    gen = top_k_per_task(pred, 1, recipe.generator_db_seed)
    write_meta_train(gen, *paths.meta_train_tasks(data, "generator"))
    classes = max(c for t in tasks for c in t)
    if classes > recipe.num_classes:
        sys.exit(f"the task list uses class ids up to {classes}, more than {recipe.num_classes}")
    feats = synthetic_features(recipe.num_classes, recipe.rows_per_class, recipe.feature_dim,
                               torch.Generator().manual_seed(recipe.feature_seed))
    write_bylabel(feats, paths.bylabel(data, paths.IMAGENET32))
    write_json(data / f"{paths.IMAGENET32}bylabel.json", {
        "format": "metad2a-bylabel", "synthetic": True, "extractor": "none (synthetic)",
        "feature_dim": recipe.feature_dim, "num_classes": recipe.num_classes,
        "rows_per_class": recipe.rows_per_class, "seed": recipe.feature_seed,
        "note": "Gaussian class clusters (metad2a.data.synthetic.synthetic_features) standing in for the "
                "ImageNet-32 features of the original, which cannot be obtained here"})
    info = {"shared": {f: file_sha256(shared / f) for f in SHARED_FILES},
            "tasks": len(tasks), "predictor_entries": len(pred.acc), "predictor_tasks": len(set(pred.task)),
            "generator_entries": len(gen.acc), "accuracy_range": [min(pred.acc), max(pred.acc)]}
    write_json(done, info)
    return info


def main_py(work: Path, args: list[str], threads: int) -> float:
    """Run ``MetaD2A_nas_bench_201/main.py`` in ``work``; returns the CPU seconds it used."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(REPO / "MetaD2A_nas_bench_201" / "main.py"), "--gpu", "cpu", *args]
    print("$", " ".join(cmd[1:]), flush=True)
    before = os.times()
    subprocess.run(cmd, cwd=work, env=env, check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def generator_args(data: Path, save: Path, recipe: PriorRecipe = RECIPE) -> list[str]:
    return ["--model", "generator", "--hs", str(recipe.gen_hs), "--nz", str(recipe.nz), "--seed", str(recipe.seed),
            "--max-epoch", str(recipe.gen_epochs), "--save-epoch", "10", "--data-path", str(data),
            "--save-path", str(save), "--resume"]


def predictor_args(data: Path, save: Path, recipe: PriorRecipe = RECIPE, seed: int | None = None,
                   epochs: int | None = None, extra: tuple[str, ...] | None = None) -> list[str]:
    return ["--model", "predictor", "--hs", str(recipe.pred_hs), "--nz", str(recipe.nz),
            "--seed", str(recipe.seed if seed is None else seed),
            "--max-epoch", str(recipe.pred_epochs if epochs is None else epochs), "--save-epoch", "10",
            "--data-path", str(data), "--save-path", str(save), "--resume",
            *(recipe.pred_extra if extra is None else extra)]


def train(work: Path, threads: int, recipe: PriorRecipe = RECIPE) -> dict[str, float]:
    """Meta-train the generator and the predictor (each skipped when its results are complete);
    returns the CPU seconds of each, summed over the calls (``<work>/cpu_seconds.json``)."""
    data, save = work / "data", work / "results"
    record = work / "cpu_seconds.json"
    seconds = json.loads(record.read_text()) if record.is_file() else {}
    for kind, args, epochs in (("generator", generator_args(data, save, recipe), recipe.gen_epochs),
                               ("predictor", predictor_args(data, save, recipe), recipe.pred_epochs)):
        if _epochs_done(save, kind) < epochs:
            seconds[kind] = round(seconds.get(kind, 0.0) + main_py(work, args, threads), 1)
            write_json(record, seconds)
    return seconds


def _epochs_done(save: Path, kind: str) -> int:
    f = paths.run_dir(save, kind) / "results.jsonl"
    return len(f.read_text().splitlines()) if f.is_file() else 0


def _wall_seconds(save: Path, kind: str, epochs: int) -> float:
    f = paths.run_dir(save, kind) / "results.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines()][:epochs]
    return round(sum(r["train_seconds"] + r["valid_seconds"] for r in rows), 1)


TRAINED_ON = ("the 4,630 real (ImageNet-32 task, NB201 cell, accuracy) triples of the original MetaD2A "
              "meta-training files, with synthetic class features (1280-d, the width of the offline "
              "EfficientNet-Lite0 extractor) in place of the unavailable ImageNet-32 features")
CONDITIONING = "inactive: the features are synthetic, so the prior is dataset-agnostic"
PREDICTED_VALUE = ("the predicted accuracy of the cell on a 20-class ImageNet-32 task trained with the original "
                   "meta-database's recipe (a property of the cell, not an accuracy on your dataset)")


def install(work: Path, dest: Path, recipe: PriorRecipe = RECIPE, prepared: dict | None = None) -> dict:
    """Copy the trained checkpoints into ``dest`` with sidecars that say what they were trained on,
    and write ``prior.json``; ``dest`` then holds exactly these files."""
    save = work / "results"
    files = {"generator": paths.ckpt(save, "generator", recipe.gen_epochs),
             "predictor": paths.model_dir(save, "predictor") / "ckpt_max_corr.pt"}
    cpu = json.loads((work / "cpu_seconds.json").read_text()) if (work / "cpu_seconds.json").is_file() else {}
    if dest.exists():
        shutil.rmtree(dest)
    out = {}
    for kind, src in files.items():
        sidecar = {**json.loads(src.with_suffix(".json").read_text()), "trained_on": TRAINED_ON,
                   "dataset_conditioning": CONDITIONING}
        if kind == "predictor":
            sidecar["predicted_value"] = PREDICTED_VALUE
        (dest / kind).mkdir(parents=True)
        shutil.copyfile(src, dest / kind / src.name)
        write_json(dest / kind / src.with_suffix(".json").name, sidecar, sort_keys=True)
        epochs = recipe.gen_epochs if kind == "generator" else recipe.pred_epochs
        out[kind] = {"file": f"{kind}/{src.name}", "sha256": file_sha256(src), "sidecar": sidecar,
                     "meta_train_wall_seconds": _wall_seconds(save, kind, epochs),
                     "meta_train_cpu_seconds": cpu.get(kind)}
    ranking = {"pred_num_sets": recipe.pred_num_sets, "likelihood_weight": recipe.likelihood_weight}
    prior = {
        "name": "nb201-real-triples-synthetic-features",
        "search_space": "nasbench201",
        "trained_on": TRAINED_ON,
        "dataset_conditioning": CONDITIONING,
        "predicted_value": PREDICTED_VALUE,
        "data": {**(prepared or {}), "source": "../shared/data/metad2a",
                 "generator_database": "each task's most accurate cell (top_k_per_task, seed "
                                       f"{recipe.generator_db_seed})",
                 "features": f"synthetic_features({recipe.num_classes}, {recipe.rows_per_class}, "
                             f"{recipe.feature_dim}, seed {recipe.feature_seed})"},
        "recipe": asdict(recipe),
        "commands": {"generator": "python MetaD2A_nas_bench_201/main.py --gpu cpu "
                                  + " ".join(generator_args(Path("<work>/data"), Path("<work>/results"), recipe)),
                     "predictor": "python MetaD2A_nas_bench_201/main.py --gpu cpu "
                                  + " ".join(predictor_args(Path("<work>/data"), Path("<work>/results"), recipe))},
        "ranking": ranking,
        "ranking_note": ranking_note(recipe.likelihood_weight),
        "regenerate": "python scripts/build_nb201_prior.py",
        **out,
    }
    write_json(dest / PRIOR_FILE, prior)
    return prior


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=SHARED_DATA,
                    help="folder holding metad2a/ with the original meta-training files (default: "
                         "$METAD2A_SHARED_DATA, else ../shared/data)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/metad2a-nb201-prior"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the meta-training processes (the "
                    "committed files were trained with 1)")
    ap.add_argument("--dest", type=Path, default=NB201_PRIOR_DIR, help="where the prior is installed")
    a = ap.parse_args(argv)
    t0 = time.time()
    prepared = prepare_data(a.shared / "metad2a", a.work / "data")
    print(f"data: {json.dumps(prepared)}")
    train(a.work, a.threads)
    prior = install(a.work, a.dest, RECIPE, prepared)
    print(f"installed {a.dest} ({', '.join(prior[k]['file'] for k in ('generator', 'predictor'))}) "
          f"in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
