"""A NB201 meta-training database from any labelled images (``metad2a build-database``).

The original meta-trains on ImageNet-32 tasks (docs/fidelity.md#nb201-database-builder): 20-class subsets of the
ImageNet-32 classes, NB201 architectures trained on them, their accuracies. Only the finished files
were published. This module makes files of the same formats from any source
(:func:`metad2a.data.image_sources.build_source`: a torchvision name, an image folder, scikit-learn
``digits``), so that ``main.py --data-path OUT`` meta-trains on them unchanged:

1. **Plan** (seeded, :func:`make_plan`): ``num_tasks`` tasks, each ``classes_per_task`` distinct classes
   of the source; ``archs_per_task`` distinct NB201 cells per task, uniformly from all 15,625. Every
   (task, architecture) pair is one job with a seed of its own. The plan is saved to
   ``build_plan.json``; a later run with the same settings resumes it, other settings are refused.
2. **Train** every job as a Ray task (:mod:`metad2a.build.ray_pool`): ``TinyNetwork(C, N)`` with the
   original recipe shortened (:data:`DEFAULT_RECIPE`) on ``images_per_class`` training images of each
   of the task's classes (labels 0..k-1 in the task's class order); the accuracy is the top-1 accuracy
   (%) on ``test_images_per_class`` test images per class after the last epoch. Images are decoded
   and resized to 32x32 once, in this process, and shipped to the workers as one uint8 tensor. Each
   finished job (success or final failure) is appended to ``build_results.jsonl`` at once, so a killed
   build resumes where it stopped and no finished job is trained again; failures are retried
   (``max_retries``) and then recorded with their error (``--retry-failed`` tries them again later).
3. **Write** (docs/data.md#nb201-inputs, :mod:`metad2a.data.formats`):

   - ``meta_train_task_lst.pt``: the tasks as lists of **1-based** class ids (the original's convention);
   - ``meta_train_tasks_predictor.pt`` + ``_idx.pt``: every successful job (plan order), seeded permutation;
   - ``meta_train_tasks_generator.pt`` + ``_idx.pt``: each task's ``top_k`` most accurate architectures;
   - ``imgnet32bylabel.pt``: features of the source's training images, one key per source class
     (0-based), by :func:`metad2a.data.features.process_dataset`. The name is the one ``main.py`` reads
     for meta-training; the file does **not** hold ImageNet-32, as its sidecar
     ``imgnet32bylabel.json`` says;
   - ``build_summary.json``: counts, failed pairs, timings.

Test splits: a source's own test split (torchvision, FGVC, Pets, ``train/``+``test/`` folders) or a
seeded hold-out of 20% per class (flat folders, ``digits``); see :mod:`metad2a.data.image_sources`.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from metad2a import paths
from metad2a.build.jobs import (
    load_or_save_plan,
    pending_keys,
    run_journaled,
    warn_stray,
)
from metad2a.build.ray_pool import RayPool, RayPoolConfig
from metad2a.build.results_journal import ResultsJournal
from metad2a.checkpoint import save_data, sidecar_path
from metad2a.config import require_positive
from metad2a.data.arch_data import load_pixels, normalise_pixels
from metad2a.data.formats import MetaTrainFile, top_k_per_task, write_meta_train
from metad2a.data.image_sources import ImageSource, build_source
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.files import write_json
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.train import TrainRecipe, train_arch
from metad2a.seeding import stable_seed
from metad2a.version import __version__

log = logging.getLogger("metad2a")

BUILD_PLAN = "build_plan.json"
BUILD_RESULTS = "build_results.jsonl"
BUILD_SUMMARY = "build_summary.json"
FEATURES_NAME = paths.IMAGENET32  # main.py reads <data-path>/imgnet32bylabel.pt for meta-training
META_TRAIN_NUM_SAMPLE = 20  # feature rows per class main.py draws by default (--num-sample)
# NAS-Bench-201's short schedule (12 epochs) with the original optimiser, batch and network size
DEFAULT_RECIPE = TrainRecipe(epochs=12)


@dataclass(frozen=True)
class BuildConfig:
    """What to build.

    Attributes:
        dataset: image source: a torchvision name, ``digits``, or an image folder.
        out: output folder (give it to ``main.py --data-path``).
        data_path: data root of named sources (``<data_path>/raw-data/<name>/``).
        num_tasks: tasks to sample.
        classes_per_task: classes per task (original: 20).
        archs_per_task: distinct NB201 architectures trained per task.
        top_k: architectures per task in the generator database (the task's most accurate).
        images_per_class: training images per class (seeded subset; None: all).
        test_images_per_class: test images per class (seeded subset; None: all).
        recipe: how each architecture is trained.
        seed: seeds the plan, the image subsets, every job, and the split permutations.
        extractor: feature extractor of :data:`metad2a.data.features.EXTRACTORS`.
        features_per_class: images per class in the feature file (seeded subset; None: all).
        feature_image_size: extractor input side (None: the extractor's).
        feature_batch_size: extractor batch.
        feature_device: where the extractor runs.
        retry_failed: train again the jobs recorded as failed in an earlier run.
    """

    dataset: str
    out: Path
    data_path: Path = Path("data")
    num_tasks: int = 100
    classes_per_task: int = 20
    archs_per_task: int = 10
    top_k: int = 1
    images_per_class: int | None = 100
    test_images_per_class: int | None = 50
    recipe: TrainRecipe = field(default_factory=lambda: DEFAULT_RECIPE)
    seed: int = 0
    extractor: str = "efficientnet_lite0"
    features_per_class: int | None = None
    feature_image_size: int | None = None
    feature_batch_size: int = 64
    feature_device: str = "cpu"
    retry_failed: bool = False

    def __post_init__(self) -> None:
        require_positive(self, "num_tasks", "classes_per_task", "archs_per_task", "top_k", "feature_batch_size")
        require_positive(self, "images_per_class", "test_images_per_class", "features_per_class",
                         "feature_image_size", allow_none=True)
        if self.archs_per_task > nb.NUM_ARCHS:
            raise MetaD2AError(f"--archs-per-task is at most {nb.NUM_ARCHS} (the NB201 cells)")
        if self.top_k > self.archs_per_task:
            raise MetaD2AError(f"--top-k {self.top_k} exceeds --archs-per-task {self.archs_per_task}")

    def source_id(self) -> str:
        """The dataset as recorded: a folder's absolute path (any spelling of it resumes), else the name."""
        p = Path(self.dataset)
        return str(p.resolve()) if p.is_dir() else self.dataset

    def plan_settings(self) -> dict[str, Any]:
        """The settings that define the jobs and their results (a resumed build must repeat them)."""
        return {"dataset": self.source_id(), "num_tasks": self.num_tasks, "classes_per_task": self.classes_per_task,
                "archs_per_task": self.archs_per_task, "images_per_class": self.images_per_class,
                "test_images_per_class": self.test_images_per_class, "recipe": asdict(self.recipe),
                "seed": self.seed}

    def feature_settings(self) -> dict[str, Any]:
        """The settings that define the feature file (it is extracted again when they change)."""
        return {"dataset": self.source_id(), "extractor": self.extractor, "features_per_class": self.features_per_class,
                "feature_image_size": self.feature_image_size, "seed": self.seed}


@dataclass(frozen=True)
class Plan:
    """Tasks (0-based source class ids) and jobs ``(task index, arch string)``, in plan order."""

    num_classes: int
    class_names: list[str]
    tasks: list[list[int]]
    jobs: list[tuple[int, str]]

    @staticmethod
    def key(task: int, arch: str) -> str:
        """The journal key of a job: ``"<task>|<arch string>"``."""
        return f"{task}|{arch}"


def job_seed(seed: int, task: int, arch: str) -> int:
    """The training seed of one job: a stable hash of (build seed, task, architecture)."""
    return stable_seed(seed, task, arch)


def make_plan(cfg: BuildConfig, num_classes: int, class_names: list[str]) -> Plan:
    """The seeded tasks and jobs of a build.

    Raises:
        MetaD2AError: the source has fewer classes than ``classes_per_task``.
    """
    if cfg.classes_per_task > num_classes:
        raise MetaD2AError(f"--classes-per-task {cfg.classes_per_task} exceeds the {num_classes} classes of "
                           f"{cfg.dataset!r}; lower it")
    rng = random.Random(cfg.seed)
    archs = list(nb.all_arch_strs())
    tasks, jobs = [], []
    for t in range(cfg.num_tasks):
        tasks.append(sorted(rng.sample(range(num_classes), cfg.classes_per_task)))
        jobs.extend((t, a) for a in rng.sample(archs, cfg.archs_per_task))
    return Plan(num_classes, list(class_names), tasks, jobs)


def load_or_make_plan(cfg: BuildConfig, source: ImageSource) -> tuple[Plan, bool]:
    """The plan saved in ``out`` (checked against ``cfg``) or a new one, saved. Returns (plan, resumed).

    Raises:
        MetaD2AError: ``out`` holds a build made with other settings.
    """

    def make() -> dict[str, Any]:
        plan = make_plan(cfg, source.num_classes, source.class_names)
        return {"num_classes": plan.num_classes, "class_names": plan.class_names, "tasks": plan.tasks,
                "jobs": [list(j) for j in plan.jobs]}

    path = Path(cfg.out) / BUILD_PLAN
    saved, resumed = load_or_save_plan(path, cfg.plan_settings(), make, owner=str(cfg.out),
                                       fresh_hint="choose another --out")
    try:
        plan = Plan(saved["num_classes"], saved["class_names"], saved["tasks"], [tuple(j) for j in saved["jobs"]])
    except (KeyError, TypeError) as e:
        raise DataFileError(f"{path}: unreadable build plan ({e}); delete --out to start afresh") from e
    if resumed and plan.class_names != list(source.class_names):
        raise MetaD2AError(f"{cfg.dataset!r} now has other classes than when {cfg.out} was started; "
                           "choose another --out")
    return plan, resumed


# --------------------------------------------------------------------------- one job (runs in a Ray worker)
def _task_subset(x: torch.Tensor, y: torch.Tensor, classes: list[int], key: str | None) -> TensorDataset:
    """The images of ``classes`` with labels 0..k-1 in that order, normalised for training."""
    size = max([int(y.max()) if len(y) else 0, *classes]) + 1
    lut = torch.full((size,), -1, dtype=torch.long)
    lut[torch.tensor(classes)] = torch.arange(len(classes))
    labels = lut[y]
    keep = labels >= 0
    return TensorDataset(normalise_pixels(x[keep], key), labels[keep])


def train_job(payload: dict[str, Any], context: dict[str, Any], device: str) -> dict[str, Any]:
    """Train one (task, architecture) job; the default ``job_fn`` of :func:`build_database`.

    Args:
        payload: ``{"task", "arch", "seed", "classes"}``.
        context: ``{"key", "recipe", "train_x", "train_y", "test_x", "test_y"}`` (uint8 images
            ``[N, 3, 32, 32]`` and source class ids) shared by all jobs.
        device: ``cpu`` or ``cuda``.

    Returns:
        ``{"acc", "train_losses", "train_acc", "param", "flop", "train_seconds", "device", "host"}``.
    """
    recipe: TrainRecipe = context["recipe"]
    classes = list(payload["classes"])
    train = _task_subset(context["train_x"], context["train_y"], classes, context["key"])
    test = _task_subset(context["test_x"], context["test_y"], classes, context["key"])
    if len(train) == 0 or len(test) == 0:
        raise DataFileError(f"task {payload['task']}: no {'training' if len(train) == 0 else 'test'} images")
    r = train_arch(payload["arch"], train, {"test": test}, len(classes), recipe, payload["seed"], device,
                   progress=False, eval_every_epoch=False)
    epochs = range(r["total_epoch"])
    return {"acc": r["final_acc"]["test"], "train_losses": [r["train_losses"][e] for e in epochs],
            "train_acc": [r["train_acc1es"][e] for e in epochs], "param": r["param"], "flop": r["flop"],
            "train_seconds": r["seconds"], "device": device, "host": platform.node()}


# --------------------------------------------------------------------------- the build
def _images(source: ImageSource, classes: list[int], per_class: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and class ids of a seeded subset of ``classes`` (``per_class`` each; None: all)."""
    from metad2a.data.features import select_indices

    per = select_indices(source.targets, source.num_classes, per_class, seed)
    idx = [i for c in classes for i in per[c]]
    y = torch.tensor([source.targets[i] for i in idx], dtype=torch.long)
    return load_pixels(source, idx), y


def write_database(out: Path, plan: Plan, records: dict[str, dict[str, Any]], top_k: int, seed: int) -> dict[str, int]:
    """Write the task list and both meta-train files (with ``_idx``) from the finished jobs.

    Returns:
        ``{"predictor": entries, "generator": entries}``.

    Raises:
        DataFileError: no job succeeded.
    """
    ok = [(t, a, float(records[Plan.key(t, a)]["acc"])) for t, a in plan.jobs
          if records.get(Plan.key(t, a), {}).get("status") == "ok"]
    if not ok:
        raise DataFileError(f"{out}: no architecture was trained successfully (see {BUILD_RESULTS}); "
                            "nothing to write")
    save_data([[c + 1 for c in task] for task in plan.tasks], Path(out) / paths.META_TRAIN_TASK_LST)
    perm = torch.randperm(len(ok), generator=torch.Generator().manual_seed(seed)).tolist()
    pred = MetaTrainFile(acc=[e[2] for e in ok], task=[e[0] for e in ok],
                         graphs=[nb.arch_str_to_igraph(e[1]) for e in ok], perm=perm)
    counts = {}
    for kind, mt in (("predictor", pred), ("generator", top_k_per_task(pred, top_k, seed))):
        write_meta_train(mt, *paths.meta_train_tasks(out, kind))
        counts[kind] = len(mt.acc)
    return counts


def _features_current(path: Path, settings: dict[str, Any]) -> bool:
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return False
    try:
        return json.loads(side.read_text()).get("build_database", {}).get("feature_settings") == settings
    except (OSError, ValueError):
        return False


def write_features(cfg: BuildConfig, source: ImageSource, progress: bool = True) -> Path:
    """``imgnet32bylabel.pt`` from the source's training images, and a sidecar saying what it holds;
    kept when a file made with the same settings is already there."""
    from metad2a.data.features import process_dataset

    path = paths.bylabel(cfg.out, FEATURES_NAME)
    settings = cfg.feature_settings()
    if _features_current(path, settings):
        log.info(f"==> features up to date: {path}")
        return path
    process_dataset(cfg.dataset, FEATURES_NAME, cfg.extractor, cfg.data_path, cfg.features_per_class,
                    cfg.feature_batch_size, cfg.feature_device, cfg.seed, cfg.feature_image_size, workers=0,
                    min_rows=META_TRAIN_NUM_SAMPLE, progress=progress, split="train", out=path)
    info = json.loads(sidecar_path(path).read_text())
    info["holds"] = (f"features of {source.description} -- NOT Downsampled ImageNet-32: written by `metad2a "
                     f"build-database` under the name main.py reads for meta-training")
    info["build_database"] = {"feature_settings": settings,
                              "class_ids": "key c = class c of the source (class_names[c]); "
                                           "meta_train_task_lst.pt holds c + 1"}
    write_json(sidecar_path(path), info)
    return path


def build_database(cfg: BuildConfig, pool: RayPoolConfig | None = None, *,
                   job_fn: Callable[[Any, Any, str], Any] = train_job,
                   progress: bool = True) -> dict[str, Any]:
    """Plan, train (resuming), and write a meta-training database into ``cfg.out``.

    Args:
        cfg: what to build.
        pool: where the jobs run (default: a local Ray instance on all CPUs, 2 retries).
        job_fn: the job body (default :func:`train_job`; tests inject failures here).
        progress: tqdm bars.

    Returns:
        The summary also written to ``build_summary.json``.

    Raises:
        MetaD2AError: bad settings, a missing source, an ``out`` with other settings, or no job succeeded.
    """
    from metad2a.data.features import get_extractor

    t0 = time.time()
    pool = pool if pool is not None else RayPoolConfig()
    get_extractor(cfg.extractor)  # an unknown extractor fails before any work
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_src = build_source(cfg.dataset, cfg.data_path, split="train")
    plan, resumed = load_or_make_plan(cfg, train_src)
    journal = ResultsJournal(out / BUILD_RESULTS)
    done = journal.load()
    keys = {Plan.key(t, a): (t, a) for t, a in plan.jobs}
    warn_stray(journal, done, keys)
    todo = [keys[k] for k in pending_keys(keys, done, cfg.retry_failed)]
    log.info(f"==> {'resume' if resumed else 'new'} build in {out}: {len(plan.tasks)} tasks x "
             f"{cfg.archs_per_task} architectures = {len(plan.jobs)} jobs; {len(plan.jobs) - len(todo)} already "
             f"done, {len(todo)} to train")
    trained = 0
    if todo:
        used = sorted({c for t, _ in todo for c in plan.tasks[t]})
        test_src = build_source(cfg.dataset, cfg.data_path, split="test")
        train_x, train_y = _images(train_src, used, cfg.images_per_class, cfg.seed)
        test_x, test_y = _images(test_src, used, cfg.test_images_per_class, cfg.seed + 1)
        log.info(f"==> images: {len(train_y)} training and {len(test_y)} test images of {len(used)} classes "
                 f"({train_src.description}; {test_src.description})")
        context = {"key": train_src.key, "recipe": cfg.recipe, "train_x": train_x, "train_y": train_y,
                   "test_x": test_x, "test_y": test_y}
        fields = {Plan.key(t, a): {"task": t, "arch": a, "seed": job_seed(cfg.seed, t, a)} for t, a in todo}
        jobs = [(k, {**f, "classes": plan.tasks[f["task"]]}) for k, f in fields.items()]
        with RayPool(pool) as rp:
            trained = run_journaled(rp, journal, jobs, fields, job_fn, context, total=len(plan.jobs),
                                    desc="build-database", progress=progress)
    records = {k: v for k, v in journal.load().items() if k in keys}
    counts = write_database(out, plan, records, cfg.top_k, cfg.seed)
    feats = write_features(cfg, train_src, progress)
    failed = [{"task": r["task"], "arch": r["arch"], "attempts": r.get("attempts"), "error": r.get("error")}
              for r in records.values() if r.get("status") == "failed"]
    accs = [float(r["acc"]) for r in records.values() if r.get("status") == "ok"]
    summary = {"format": "metad2a-build-summary", "metad2a_version": __version__, "out": str(out.resolve()),
               "source": train_src.description, "settings": cfg.plan_settings(), "top_k": cfg.top_k,
               "feature_settings": cfg.feature_settings(), "ray": asdict(pool), "jobs": len(plan.jobs),
               "ok": len(accs), "failed": len(failed), "trained_this_run": trained, "failed_jobs": failed,
               "entries": counts, "acc": {"mean": statistics.mean(accs), "min": min(accs), "max": max(accs)},
               "features": feats.name, "seconds_this_run": round(time.time() - t0, 1)}
    write_json(out / BUILD_SUMMARY, summary)
    log.info(f"==> wrote {counts['predictor']} predictor and {counts['generator']} generator entries, "
             f"{paths.META_TRAIN_TASK_LST} and {feats.name} to {out} (accuracy mean {summary['acc']['mean']:.2f}%)")
    if failed:
        log.warning(f"warning: {len(failed)} job(s) failed after {pool.max_retries} retries and are left out; "
                    f"they are listed in {BUILD_SUMMARY} (rerun with --retry-failed to try them again)")
    return summary
