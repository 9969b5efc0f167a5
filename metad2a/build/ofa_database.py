"""The OFA/MobileNetV3 meta-training databases from an ImageNet-layout folder (docs/fidelity.md#ofa-database-builder).

One run builds one shard ``--index`` of the predictor or generator database, as the original's
``build_database.py``; ``--collect`` merges the shards into the file ``main.py`` reads
(:func:`collect_database`). Each shard:

1. **Plan** (seeded by ``--seed`` and the shard index, saved in ``<data>/<model>/build/plan_<i>.json``;
   a rerun with the same settings resumes it, other settings are refused). ``num_tasks`` tasks, each
   ``way`` classes with ``way`` uniform over ``way_min, way_min + way_step, ..., way_max`` (the
   original: 10..990; values above the folder's class count are dropped), sorted 0-based class
   indices (sorted wnids of ``val/``), and random subnets (OFA's ``sample_active_subnet`` rule):
   one per task for the predictor database, ``candidates`` (10) for the generator database. The
   task images are ``val_per_class`` (10) images per class and the BN re-calibration images
   ``bn_images`` (2000) training images, both seeded samples shared by every task and shard.

   Generator mode: the trained predictor (``<save>/predictor/model/ckpt_max_corr.pt``) scores each
   task's candidates at planning time, on ``num_sample`` rows per class of ``<data>/imgnet32bylabel.pt``
   for the task's classes (the features the predictor was meta-trained on), averaged over
   ``pred_num_sets`` draws; the best-scored candidate is the task's entry. The original scored
   ResNet-18 features of the 224-px task images, 10 per class regrouped into sets of 20 rows (two
   classes merged per "class", docs/fidelity.md#ofa-db-ranking); the choice never depended on the measured
   accuracies, so scoring first changes nothing else. By default every candidate is still measured
   (``eval_candidates="all"``, as the original, but each with BN re-calibration: the original skipped
   it for the first candidate); ``"chosen"`` measures only the entry (``candidates`` times cheaper).
2. **Evaluate** every task as a Ray job (:func:`evaluate_task`, through :class:`RayPool`, with the
   journal, resume and failure rules of :mod:`metad2a.build.jobs`): the supernet (ImageNet
   weights, or a seeded random initialisation for tests) gives each subnet with its weights; the
   1000-way head is cut to the task's rows; parameters and MFLOPs are counted at 3x224x224 with that
   head; BN statistics are re-estimated on the BN images (the original's training transform, seeded
   per task, so every candidate of a task sees the same crops); loss, top-1 and top-5 are measured on
   the task images (validation transform).
3. **Write** ``<data>/<model>/database_<i>.pt`` in the original format (a list of dicts ``loss``,
   ``top1``, ``top5``, ``net`` ``{'wid': None, 'ks', 'e', 'd'}``, ``class`` (sorted LongTensor),
   ``params``, ``flops``, ``test_transform``), rewritten every ``save_every`` finished tasks and at
   the end, with the original's progress lines in ``txt_<i>.txt``; failed tasks are left out and
   listed in ``build/summary_<i>.json``.
"""

from __future__ import annotations

import logging
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from metad2a import paths
from metad2a.build.imagenet_folder import ImagenetFolder, choose_train_files, choose_val_files, val_transform
from metad2a.build.jobs import load_or_save_plan, pending_keys, run_journaled, warn_stray
from metad2a.build.ray_pool import RayPool, RayPoolConfig
from metad2a.build.results_journal import ResultsJournal
from metad2a.checkpoint import TRANSFORM_GLOBALS, load_data, save_data
from metad2a.config import require_positive
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.files import append_text, file_sha256, write_json
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.collected_database import collected_database, collected_split
from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET
from metad2a.seeding import stable_seed
from metad2a.version import __version__

log = logging.getLogger("metad2a")


def shard_file(data_path: str | Path, model: str, index: int) -> Path:
    """One database shard (the original's name): ``<data>/<model>/database_<index>.pt``."""
    return Path(data_path) / model / f"database_{index}.pt"


def shard_log(data_path: str | Path, model: str, index: int) -> Path:
    """The original's progress lines of a shard: ``<data>/<model>/txt_<index>.txt``."""
    return Path(data_path) / model / f"txt_{index}.txt"


def build_file(data_path: str | Path, model: str, index: int, kind: str) -> Path:
    """Our bookkeeping of a shard build, ``<data>/<model>/build/<kind>_<index>.<ext>``: ``plan``
    (.json), ``results`` (the journal, .jsonl) and ``summary`` (.json)."""
    ext = "jsonl" if kind == "results" else "json"
    return Path(data_path) / model / "build" / f"{kind}_{index}.{ext}"

MODELS = ("predictor", "generator")
EVAL_CANDIDATES = ("all", "chosen")
RANDOM_INIT = "random-init"


@dataclass(frozen=True)
class OfaBuildConfig:
    """One shard of an OFA database.

    Attributes:
        model: ``predictor`` or ``generator`` (which database).
        index: the shard id (``--index``).
        imgnet: ImageNet-layout folder (``train/<wnid>/``, ``val/<wnid>/``).
        data_path: data root; shards go to ``<data>/<model>/``; generator mode reads
            ``<data>/imgnet32bylabel.pt``.
        save_path: results root; generator mode reads ``<save>/predictor/model/ckpt_max_corr.pt``.
        num_tasks: tasks in this shard (the original looped until killed).
        way_min, way_max, way_step: the classes-per-task choices ``range(way_min, way_max + 1, way_step)``.
        val_per_class: task images per class (from ``val/``).
        bn_images: training images for BN re-calibration (the original: 2000).
        image_size: side of the images the subnets see (224; smaller only for quick tests).
        batch_size: evaluation batch.
        bn_batch_size: BN re-calibration batch (it changes the estimate slightly; the original: 200).
        workers: DataLoader worker processes per job.
        candidates: subnets per task in generator mode (the original: 10).
        eval_candidates: generator mode: ``all`` candidates are measured, or only the ``chosen`` one.
        hs, nz, num_sample, pred_num_sets: the predictor's sizes, feature rows per class, and draws.
        weights: supernet weights file (downloaded when missing); ignored with ``random_init``.
        random_init: a seeded random supernet instead of the ImageNet weights (tests).
        download: fetch missing weights through :mod:`metad2a.download`.
        seed: seeds everything (with the index for the tasks).
        retry_failed: evaluate again the tasks an earlier run recorded as failed.
        save_every: rewrite the shard after this many finished tasks (the original: 10).
    """

    model: str
    index: int
    imgnet: Path
    data_path: Path = Path("data")
    save_path: Path = Path("results")
    num_tasks: int = 100
    way_min: int = 10
    way_max: int = 990
    way_step: int = 10
    val_per_class: int = 10
    bn_images: int = 2000
    image_size: int = 224
    batch_size: int = 32
    bn_batch_size: int = 200
    workers: int = 0
    candidates: int = 10
    eval_candidates: str = "all"
    hs: int = 512
    nz: int = 56
    num_sample: int = 20
    pred_num_sets: int = 1
    weights: Path | None = Path(OFA_SUPERNET_TARGET)
    random_init: bool = False
    download: bool = True
    seed: int = 333
    retry_failed: bool = False
    save_every: int = 10

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise MetaD2AError(f"--model_name must be predictor or generator to build a database, got {self.model!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise MetaD2AError(f"--index must be a shard number >= 0, got {self.index!r}")
        require_positive(self, "num_tasks", "way_min", "way_max", "way_step", "val_per_class", "bn_images",
                         "image_size", "batch_size", "bn_batch_size", "candidates", "hs", "nz", "num_sample",
                         "pred_num_sets", "save_every")
        if self.workers < 0:
            raise MetaD2AError(f"--workers must be >= 0, got {self.workers}")
        if self.way_max < self.way_min:
            raise MetaD2AError(f"--way-max {self.way_max} is below --way-min {self.way_min}")
        if self.eval_candidates not in EVAL_CANDIDATES:
            raise MetaD2AError(f"--eval-candidates must be one of {', '.join(EVAL_CANDIDATES)}")
        if not self.random_init and self.weights is None:
            raise MetaD2AError("give --ofa-weights PATH or --random-init")

    @property
    def candidates_per_task(self) -> int:
        return self.candidates if self.model == "generator" else 1

    def ways(self, num_classes: int) -> list[int]:
        """The classes-per-task choices that fit ``num_classes``.

        Raises:
            MetaD2AError: none fits.
        """
        ways = [w for w in range(self.way_min, self.way_max + 1, self.way_step) if w <= num_classes]
        if not ways:
            raise MetaD2AError(f"--way-min {self.way_min} exceeds the {num_classes} classes of {self.imgnet}; "
                               "lower it")
        return ways

    def shard_name(self) -> str:
        return f"{self.model} database shard {self.index} ({shard_file(self.data_path, self.model, self.index)})"


# --------------------------------------------------------------------------- planning

def make_tasks(cfg: OfaBuildConfig, num_classes: int) -> list[dict[str, Any]]:
    """The shard's seeded tasks: ``{"task", "classes" (sorted), "nets" (candidates), "seed"}``."""
    ways = cfg.ways(num_classes)
    rng = random.Random(stable_seed(cfg.seed, cfg.model, cfg.index, "tasks"))
    tasks = []
    for t in range(cfg.num_tasks):
        way = rng.choice(ways)
        classes = sorted(rng.sample(range(num_classes), way))
        nets = [ofa.random_arch_dict(rng) for _ in range(cfg.candidates_per_task)]
        tasks.append({"task": t, "classes": classes, "nets": nets, "seed": stable_seed(cfg.seed, cfg.model, cfg.index, t)})
    return tasks


def predictor_checkpoint(save_path: str | Path) -> Path:
    return paths.model_dir(save_path, "predictor") / "ckpt_max_corr.pt"


def score_candidates(cfg: OfaBuildConfig, tasks: Sequence[dict[str, Any]], device: torch.device | str = "cpu"
                     ) -> tuple[list[list[float]], dict[str, Any]]:
    """Predicted (normalised) accuracy of every candidate of every task, by the trained predictor on
    ``num_sample`` imgnet32 feature rows per task class (``pred_num_sets`` draws, seeded per task).

    Returns:
        (scores per task, what was used: predictor file and sizes, feature file).

    Raises:
        CheckpointError / DataFileError: the predictor or the feature file is missing or does not fit.
    """
    from metad2a.data.formats import read_bylabel
    from metad2a.data.sets import check_rows, sample_batch
    from metad2a.models.factory import load_trained
    from metad2a.models.predictor import score_sets
    from metad2a.nn.graph_batch import GraphBatch
    from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3 as space

    ckpt = predictor_checkpoint(cfg.save_path)
    hint = ("the generator database ranks candidates with the trained predictor: meta-train it first "
            "(python main.py --model predictor --hs 512 --nz 56) or download it "
            f"(`{space.get_files.predictor_checkpoint}`)")
    model, _ = load_trained("predictor", paths.require(ckpt, hint), nvt=space.nvt, max_n=space.max_n, hs=cfg.hs,
                            nz=cfg.nz, num_sample=cfg.num_sample, hint=hint, device=device)
    feat_file = paths.bylabel(cfg.data_path, paths.IMAGENET32)
    feats = read_bylabel(feat_file, hint=f"download it with `{space.get_files.preprocessed}`")
    used = sorted({c for t in tasks for c in t["classes"]})
    if used and used[-1] >= len(feats):
        raise DataFileError(f"{feat_file}: {len(feats)} classes, but the tasks use class {used[-1]}; the "
                            "ImageNet folder has more classes than the feature file")
    check_rows(feats, used, cfg.num_sample, str(feat_file))
    scores = []
    for t in tasks:
        g = torch.Generator().manual_seed(t["seed"])
        sets = sample_batch(feats, [t["classes"]] * cfg.pred_num_sets, cfg.num_sample, g).to(device)
        graphs = GraphBatch.from_lists([space.arch_types(n) for n in t["nets"]],
                                       [space.arch_edges(n) for n in t["nets"]], space.max_n).to(device)
        scores.append([float(s) for s in score_sets(model, sets, graphs)])
    used_info = {"checkpoint": str(ckpt.resolve()), "hs": cfg.hs, "nz": cfg.nz, "num_sample": cfg.num_sample,
                 "pred_num_sets": cfg.pred_num_sets, "features": str(feat_file.resolve())}
    return scores, used_info


def plan_settings(cfg: OfaBuildConfig, folder: ImagenetFolder, supernet_id: str) -> dict[str, Any]:
    """What defines a shard's tasks and results (a resumed build must repeat it)."""
    s: dict[str, Any] = {"model": cfg.model, "index": cfg.index, "imgnet": str(folder.root),
                         "num_tasks": cfg.num_tasks, "ways": cfg.ways(folder.num_classes),
                         "val_per_class": cfg.val_per_class, "bn_images": cfg.bn_images,
                         "bn_batch_size": cfg.bn_batch_size, "image_size": cfg.image_size, "seed": cfg.seed,
                         "supernet": supernet_id}
    if cfg.model == "generator":
        s.update(candidates=cfg.candidates, eval_candidates=cfg.eval_candidates, num_sample=cfg.num_sample,
                 pred_num_sets=cfg.pred_num_sets)
    return s


def load_or_make_plan(cfg: OfaBuildConfig, folder: ImagenetFolder, supernet_id: str,
                      device: torch.device | str = "cpu") -> tuple[dict[str, Any], bool]:
    """The shard's saved plan (checked against ``cfg``) or a new one, saved. Returns (plan, resumed)."""

    def make() -> dict[str, Any]:
        tasks = make_tasks(cfg, folder.num_classes)
        scorer = None
        if cfg.model == "generator":
            scores, scorer = score_candidates(cfg, tasks, device)
            for t, s in zip(tasks, scores):
                t["scores"] = s
                t["chosen"] = max(range(len(s)), key=lambda i: (s[i], -i))  # the first of equal scores
        else:
            for t in tasks:
                t["scores"], t["chosen"] = None, 0
        return {"wnids": folder.wnids, "val_files": choose_val_files(folder, cfg.val_per_class, cfg.seed),
                "bn_files": choose_train_files(folder, cfg.bn_images, cfg.seed), "scorer": scorer, "tasks": tasks}

    path = build_file(cfg.data_path, cfg.model, cfg.index, "plan")
    plan, resumed = load_or_save_plan(path, plan_settings(cfg, folder, supernet_id), make, owner=cfg.shard_name(),
                                      fresh_hint="choose another --index (or delete the shard and its build/ files)")
    if resumed and plan.get("wnids") != folder.wnids:
        raise MetaD2AError(f"{folder.root} now has other classes than when {cfg.shard_name()} was started; "
                           "choose another --index")
    return plan, resumed


def evaluated(cfg: OfaBuildConfig, task: dict[str, Any]) -> list[int]:
    """The candidates a task's job measures."""
    return [task["chosen"]] if cfg.eval_candidates == "chosen" else list(range(len(task["nets"])))


# --------------------------------------------------------------------------- one job (runs in a Ray worker)
_SUPERNET: dict[str, Any] = {}  # per worker process: the last supernet built, reused by later jobs


def _supernet(spec: dict[str, Any], device: str) -> torch.nn.Module:
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet

    key = (spec["id"], device)
    if _SUPERNET.get("key") != key:
        _SUPERNET.clear()
        state = spec.get("state")
        if state is not None and type(state).__name__ == "ObjectRef":  # shipped through Ray's object store
            import ray

            state = ray.get(state)
        _SUPERNET.update(key=key, net=build_supernet(state, spec.get("seed"), source=spec["id"]).to(device))
    return _SUPERNET["net"]


def evaluate_task(payload: dict[str, Any], context: dict[str, Any], device: str) -> dict[str, Any]:
    """Measure a task's subnets; the default ``job_fn`` of :func:`build_shard`.

    Args:
        payload: ``{"task", "seed", "classes", "val_files" (per class), "candidates" (indices), "nets"}``.
        context: ``{"root", "supernet" ({"id", "state", "seed"}), "bn_files", "image_size", "batch_size",
            "bn_batch_size", "workers"}``.
        device: ``cpu`` or ``cuda``.

    Returns:
        ``{"results": [{"candidate", "loss", "top1", "top5", "params", "flops"}], "eval_seconds", "device", "host"}``.
    """
    from torch.utils.data import DataLoader

    from metad2a.build.imagenet_folder import FileImages, bn_transform
    from metad2a.search_spaces.ofa_mbv3.supernet import (
        evaluate,
        extract_subnet,
        net_size,
        recalibrate_bn,
        restrict_classifier,
    )

    t0 = time.time()
    supernet = _supernet(context["supernet"], device)
    subnets = [restrict_classifier(extract_subnet(supernet, net), payload["classes"]) for net in payload["nets"]]
    sizes = [net_size(s) for s in subnets]
    size, workers = context["image_size"], context["workers"]
    bn_items = [(f, 0) for f in context["bn_files"]]
    val_items = [(f, label) for label, files in enumerate(payload["val_files"]) for f in files]
    torch.manual_seed(payload["seed"])  # the BN crops: the same for every candidate of the task
    bn = DataLoader(FileImages(context["root"], bn_items, bn_transform(size)), batch_size=context["bn_batch_size"],
                    num_workers=workers, generator=torch.Generator().manual_seed(payload["seed"]))
    val = DataLoader(FileImages(context["root"], val_items, val_transform(size)), batch_size=context["batch_size"],
                     num_workers=workers)
    recalibrate_bn(subnets, bn)
    metrics = evaluate(subnets, val)
    results = [{"candidate": c, **m, "params": p, "flops": f}
               for c, m, (p, f) in zip(payload["candidates"], metrics, sizes)]
    return {"results": results, "eval_seconds": round(time.time() - t0, 3), "device": device,
            "host": platform.node()}


# --------------------------------------------------------------------------- writing
def entry(task: dict[str, Any], result: dict[str, Any], transform: Any) -> dict[str, Any]:
    """A database entry in the original format."""
    return {"loss": float(result["loss"]), "top1": float(result["top1"]), "top5": float(result["top5"]),
            "net": {"wid": None, **ofa.canonical_arch_dict(task["nets"][task["chosen"]])},
            "class": torch.tensor(sorted(task["classes"]), dtype=torch.long),
            "params": float(result["params"]), "flops": float(result["flops"]), "test_transform": transform}


def chosen_result(task: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in record["results"] if r["candidate"] == task["chosen"])


def write_shard(cfg: OfaBuildConfig, plan: dict[str, Any], records: dict[str, dict[str, Any]], t0: float) -> int:
    """Write ``database_<index>.pt`` from the successful records (plan order) and append the original's
    progress line to ``txt_<index>.txt``. Returns the number of entries."""
    transform = val_transform(plan["settings"]["image_size"])
    entries = [entry(t, chosen_result(t, records[str(t["task"])]), transform) for t in plan["tasks"]
               if records.get(str(t["task"]), {}).get("status") == "ok"]
    path = shard_file(cfg.data_path, cfg.model, cfg.index)
    save_data(entries, path)
    append_text(shard_log(cfg.data_path, cfg.model, cfg.index),
                f"{(time.time() - t0) / 60:.2f}(min) save {len(entries)} database, {cfg.index} id\n")
    return len(entries)


# --------------------------------------------------------------------------- the build
def supernet_identity(cfg: OfaBuildConfig, progress: bool = True) -> tuple[str, Path | None]:
    """``(id, weights file)``: ``random-init`` or ``sha256:<hex>`` of the weights (downloaded when missing)."""
    from metad2a.search_spaces.ofa_mbv3.supernet import ensure_supernet_weights

    if cfg.random_init:
        return RANDOM_INIT, None
    path = ensure_supernet_weights(cfg.weights, cfg.download, progress)
    return f"sha256:{file_sha256(path)}", path


def build_shard(cfg: OfaBuildConfig, pool: RayPoolConfig | None = None, *,
                job_fn: Callable[[Any, Any, str], Any] = evaluate_task,
                progress: bool = True, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Plan, evaluate (resuming) and write one shard.

    Args:
        cfg: what to build.
        pool: where the jobs run (default: a local Ray instance, 2 retries).
        job_fn: the job body (tests inject failures here).
        progress: progress bars.
        device: where the predictor scores the generator's candidates (planning only).

    Returns:
        The summary also written to ``build/summary_<index>.json``.

    Raises:
        MetaD2AError: bad settings or files, a shard with other settings, or no task succeeded.
    """
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet, read_supernet_weights, require_ofa

    t0 = time.time()
    pool = pool if pool is not None else RayPoolConfig()
    require_ofa()
    folder = ImagenetFolder.open(cfg.imgnet)
    supernet_id, weights = supernet_identity(cfg, progress)
    plan, resumed = load_or_make_plan(cfg, folder, supernet_id, device)
    tasks = {str(t["task"]): t for t in plan["tasks"]}
    journal = ResultsJournal(build_file(cfg.data_path, cfg.model, cfg.index, "results"))
    done = journal.load()
    warn_stray(journal, done, tasks)
    todo = pending_keys(tasks, done, cfg.retry_failed)
    n_eval = sum(len(evaluated(cfg, t)) for t in plan["tasks"])
    log.info(f"==> {'resume' if resumed else 'new'} {cfg.shard_name()}: {len(tasks)} tasks, {n_eval} subnets to "
             f"measure on {folder.root}; {len(tasks) - len(todo)} tasks already done, {len(todo)} to do")
    records = {k: v for k, v in done.items() if k in tasks}
    evaluated_now = 0
    if todo:
        state = None
        if weights is not None:
            state = read_supernet_weights(weights)
            build_supernet(state, source=str(weights))  # fails here, before any job, if they do not fit
        fields = {k: {"task": tasks[k]["task"], "seed": tasks[k]["seed"], "way": len(tasks[k]["classes"])}
                  for k in todo}
        jobs = []
        for k in todo:
            t = tasks[k]
            cand = evaluated(cfg, t)
            jobs.append((k, {**fields[k], "classes": t["classes"], "candidates": cand,
                             "nets": [t["nets"][c] for c in cand],
                             "val_files": [plan["val_files"][c] for c in t["classes"]]}))
        since_save = 0

        def on_record(rec: dict[str, Any]) -> None:
            nonlocal since_save
            records[rec["key"]] = rec
            since_save += 1
            if rec["status"] == "ok":
                r = chosen_result(tasks[rec["key"]], rec)
                log.info(f"[{cfg.index}] class={rec['way']}, loss={r['loss']:.3f}, top1={r['top1']:.2f}, "
                         f"top5={r['top5']:.2f}")
            if since_save >= cfg.save_every:
                write_shard(cfg, plan, records, t0)
                since_save = 0

        with RayPool(pool) as rp:
            import ray

            spec = {"id": supernet_id, "seed": cfg.seed if cfg.random_init else None,
                    "state": ray.put(state) if state is not None else None}
            context = {"root": str(folder.root), "supernet": spec, "bn_files": plan["bn_files"],
                       "image_size": cfg.image_size, "batch_size": cfg.batch_size,
                       "bn_batch_size": cfg.bn_batch_size, "workers": cfg.workers}
            evaluated_now = run_journaled(rp, journal, jobs, fields, job_fn, context, total=len(tasks),
                                          desc=f"build_database {cfg.model} {cfg.index}", progress=progress,
                                          on_record=on_record)
    ok = [k for k in tasks if records.get(k, {}).get("status") == "ok"]
    if not ok:
        raise DataFileError(f"{cfg.shard_name()}: no task was evaluated successfully (see {journal.path}); "
                            "nothing to write")
    count = write_shard(cfg, plan, records, t0)
    failed = [{"task": records[k]["task"], "attempts": records[k].get("attempts"), "error": records[k].get("error")}
              for k in tasks if records.get(k, {}).get("status") == "failed"]
    top1 = [chosen_result(tasks[k], records[k])["top1"] for k in ok]
    summary = {"format": "metad2a-ofa-build-summary", "metad2a_version": __version__,
               "shard": str(shard_file(cfg.data_path, cfg.model, cfg.index).resolve()),
               "settings": plan["settings"], "scorer": plan.get("scorer"), "ray": asdict(pool), "tasks": len(tasks),
               "ok": len(ok), "failed": len(failed), "evaluated_this_run": evaluated_now, "failed_tasks": failed,
               "entries": count, "top1": {"mean": statistics.mean(top1), "min": min(top1), "max": max(top1)},
               "seconds_this_run": round(time.time() - t0, 1)}
    write_json(build_file(cfg.data_path, cfg.model, cfg.index, "summary"), summary)
    log.info(f"==> wrote {count} entries to {summary['shard']} (top-1 mean {summary['top1']['mean']:.2f}%)")
    if failed:
        log.warning(f"warning: {len(failed)} task(s) failed after {pool.max_retries} retries and are left out; "
                    "they are listed in the build summary (rerun with --retry-failed to try them again)")
    return summary


# --------------------------------------------------------------------------- collect
_SHARD = re.compile(r"^database_(\d+)\.pt$")


def collect_database(data_path: str | Path, model: str) -> tuple[Path, int]:
    """Merge ``<data>/<model>/database_<i>.pt`` (in index order) into
    ``<data>/<model>/processed/collected_database.pt``; stale split files of an earlier collection
    are removed (``main.py`` splits the new file on first use). Returns (path, entries).

    Raises:
        DataFileError: no shard, or a shard that is not a list of database entries.
    """
    from metad2a.search_spaces.ofa_mbv3.collected_database import ENTRY_KEYS

    folder = Path(data_path) / model
    shards = sorted((int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else [])
                    if (m := _SHARD.match(p.name)))
    if not shards:
        raise DataFileError(f"{folder}: no database_<index>.pt shards to collect; build them first "
                            f"(bash create_database.sh <gpus> <first index> <last index> {model})")
    merged: list[Any] = []
    for _, p in shards:
        part = load_data(p, allow=TRANSFORM_GLOBALS)
        if not isinstance(part, list) or not all(isinstance(e, dict) and all(k in e for k in ENTRY_KEYS)
                                                 for e in part):
            raise DataFileError(f"{p}: not a database shard (a list of dicts with {', '.join(ENTRY_KEYS)})")
        merged.extend(part)
    out = collected_database(data_path, model)
    save_data(merged, out)
    for split in ("train", "valid", "test"):
        stale = collected_split(data_path, model, split)
        if stale.is_file():
            stale.unlink()
            log.info(f"==> removed the stale split {stale}")
    log.info(f"The number of database: {len(merged)}")
    return out, len(merged)
