"""The meta-training epoch loop shared by both models: Adam, ReduceLROnPlateau on the training
loss, periodic ``ckpt_<epoch>.pt``, best-metric checkpoint, JSON-lines summaries, and ``--resume``.

A run directory (``<save-path>/<model>``) belongs to one training at a time (docs/fidelity.md#run-dir):
:func:`claim_run_dir` locks it, refuses to train into a finished or used one unless ``--resume``
continues it or ``--overwrite`` clears it first, and removes the temporary files a killed run left.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a import paths
from metad2a.checkpoint import check_state_dict, checkpoint_files, read_training_state, training_state_bytes
from metad2a.config import TrainConfig
from metad2a.errors import MetaD2AError
from metad2a.files import make_dirs, output_error, to_json, write_files, write_text
from metad2a.log import append_jsonl

log = logging.getLogger("metad2a")

RESUME_FILE = "resume_state.pt"
RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".lock"
# what a resumed run must share with the saved state, and the flag that sets each
RESUME_KEYS = {"model": "--model", "space": "the search space", "hs": "--hs", "nz": "--nz", "nvt": "--nvt",
               "num_sample": "--num-sample", "feature_dim": "the feature dimension (--data-path)",
               "step_per_sample": "the loop style (a space flag)"}


class TrainingDiverged(MetaD2AError):
    """The training loss or the weights became NaN or infinite."""


@dataclass
class EpochResult:
    loss: float  # the value the scheduler follows
    metrics: dict[str, float]
    lines: list[str]  # log lines in the original format


# --------------------------------------------------------------------------- the run directory
def _training_files(save_path: Path, model_name: str) -> list[Path]:
    """The files a meta-training run writes (what ``--overwrite`` deletes)."""
    mdir, rdir = paths.model_dir(save_path, model_name), paths.run_dir(save_path, model_name)
    found = [p for p in (mdir.iterdir() if mdir.is_dir() else [])
             if p.name == RESUME_FILE or (p.name.startswith("ckpt_") and p.suffix in (".pt", ".json"))]
    others = (rdir / RESULTS_FILE, paths.train_log(save_path, model_name), rdir / "config_train.json")
    found += [p for p in others if p.is_file()]
    return sorted(found)


def _stale_temporaries(save_path: Path, model_name: str) -> list[Path]:
    """Temporary files of this run's outputs that a killed run left behind (``.<name>.<random>.tmp``)."""
    mdir, rdir = paths.model_dir(save_path, model_name), paths.run_dir(save_path, model_name)
    prefixes = (f".{RESUME_FILE}.", ".ckpt_", f".{RESULTS_FILE}.", ".config_train.json.")
    return sorted(p for d in (mdir, rdir) if d.is_dir() for p in d.iterdir()
                  if p.name.startswith(prefixes) and p.name.endswith(".tmp") and p.is_file())


def _describe_run(save_path: Path, model_name: str) -> str:
    """What a used run directory holds, for messages: epochs done, checkpoints."""
    mdir, rdir = paths.model_dir(save_path, model_name), paths.run_dir(save_path, model_name)
    parts = []
    epochs = [r["epoch"] for r in _read_results(rdir / RESULTS_FILE)]
    if epochs:
        parts.append(f"epochs {min(epochs)}-{max(epochs)} in {RESULTS_FILE}")
    ckpts = sorted(p.name for p in (mdir.iterdir() if mdir.is_dir() else [])
                   if p.name.startswith("ckpt_") and p.suffix == ".pt")
    if ckpts:
        parts.append(f"{len(ckpts)} checkpoint(s) such as {ckpts[0]}")
    if (mdir / RESUME_FILE).is_file():
        parts.append(RESUME_FILE)
    return ", ".join(parts)


@contextmanager
def claim_run_dir(save_path: str | Path, model_name: str, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Hold the run directory ``<save_path>/<model_name>`` for one meta-training.

    Takes an exclusive lock (``fcntl.flock`` on ``.lock``; released when the block ends or the process
    dies), refuses a directory that already holds a run unless ``resume`` (continue it) or
    ``overwrite`` (delete its checkpoints, ``resume_state.pt``, ``results.jsonl``, log and
    ``config_train.json`` first), and removes temporary files a killed run left behind.

    Raises:
        MetaD2AError: the lock is held by another training, both flags are given, or the directory
            holds a run and neither flag is.
    """
    import fcntl

    save_path = Path(save_path)
    rdir = paths.run_dir(save_path, model_name)
    if resume and overwrite:
        raise MetaD2AError("--resume continues the run in --save-path and --overwrite deletes it: give one of "
                           "them")
    make_dirs(paths.model_dir(save_path, model_name))
    lock = rdir / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise output_error(e, lock) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip()
            pid = f" (pid {other})" if other else ""
            raise MetaD2AError(f"{rdir} is in use by another meta-training{pid}; wait for it to finish or "
                               "choose another --save-path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for tmp in _stale_temporaries(save_path, model_name):
            tmp.unlink(missing_ok=True)
            log.info(f"==> removed {tmp}, a temporary file an interrupted run left behind")
        used = _describe_run(save_path, model_name)
        if overwrite:
            files = _training_files(save_path, model_name)
            for p in files:
                p.unlink(missing_ok=True)
            if files:
                log.info(f"==> --overwrite: deleted {len(files)} file(s) of the earlier run in {rdir}")
        elif used and not resume:
            raise MetaD2AError(f"{rdir} already holds a meta-training run ({used}); pass --resume to continue "
                               "it, --overwrite to delete it and train from scratch, or choose another --save-path")
        elif used and resume and not (paths.model_dir(save_path, model_name) / RESUME_FILE).is_file():
            raise MetaD2AError(f"--resume: {rdir} holds a run ({used}) but no {RESUME_FILE} to continue it "
                               "from; pass --overwrite instead of --resume to train from scratch")
        yield rdir
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- results.jsonl
def _read_results(path: Path) -> list[dict[str, Any]]:
    """The epoch records of ``results.jsonl``; a line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int):
            out.append(rec)
    return out


def _truncate_results(path: Path, last_epoch: int) -> None:
    """Keep the records of epochs 1..``last_epoch`` (a killed run may have written a later one)."""
    if not path.is_file():
        return
    keep = [r for r in _read_results(path) if r["epoch"] <= last_epoch]
    text = "".join(to_json(r, sort_keys=True) + "\n" for r in keep)
    if text != path.read_text(errors="replace"):
        write_text(path, text)
        log.info(f"==> {path}: kept the records of epochs 1-{last_epoch} (the resumed state's)")


# --------------------------------------------------------------------------- resume
def _check_resumable(st: dict[str, Any], meta: dict[str, Any], model: nn.Module, state_file: Path) -> None:
    """A saved state must come from the same model configuration: name the flag that differs."""
    saved = st.get("meta") or {}
    for key, flag in RESUME_KEYS.items():
        if key in saved and key in meta and saved[key] != meta[key]:
            shown = f"{flag} {saved[key]}" if flag.startswith("--") else f"{flag} {saved[key]!r}"
            raise MetaD2AError(f"{state_file} was saved with {shown}, this run has {meta[key]!r}; repeat the "
                               f"earlier run's flags to resume it, or pass --overwrite to train from scratch")
    problems = check_state_dict(model, st["model"])
    if problems:  # a state written before the configuration was saved with it
        raise MetaD2AError(f"{state_file} does not fit this model ({'; '.join(problems[:3])}); resume with "
                           f"the --hs/--nz it was saved with, or pass --overwrite to train from scratch")


def _finite_model(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def fit(
    model: nn.Module,
    train_epoch: Callable[[int, torch.optim.Optimizer], EpochResult],
    valid_epoch: Callable[[int], EpochResult],
    cfg: TrainConfig,
    save_path: Path,
    model_name: str,
    meta: dict[str, Any],
    resume: bool,
    best_metric: str | None = None,
    on_best: Callable[[int, EpochResult], list[str]] | None = None,
    running: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run meta-training.

    Args:
        best_metric: key of ``valid_epoch``'s metrics to maximise; the best model is saved as
            ``ckpt_max_corr.pt`` (predictor). NaN never counts as an improvement.
        on_best: returns the log lines for a new best.
        running: the caller's running values (the best so far its log lines show); saved with the
            training state and restored on ``--resume``, so a resumed log matches an uninterrupted one.

    Returns:
        a summary dict (best epoch/metric, seconds, ``nothing_to_do`` when a resumed run was done).

    Raises:
        MetaD2AError: the saved state does not fit this run (the flag that differs is named).
        TrainingDiverged: the training loss or the weights became NaN or infinite; the files of the
            last good epoch are kept.
    """
    mdir = make_dirs(paths.model_dir(save_path, model_name))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=0.1, patience=10)
    start, best, best_epoch, elapsed = 1, float("-inf"), 0, 0.0
    state_file = mdir / RESUME_FILE
    jsonl = paths.run_dir(save_path, model_name) / RESULTS_FILE
    if resume and state_file.is_file():
        st = read_training_state(state_file)
        _check_resumable(st, meta, model, state_file)
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng"])
        start, best, best_epoch, elapsed = st["epoch"] + 1, st["best"], st["best_epoch"], st["elapsed"]
        if running is not None:
            running.update(st.get("running") or {})
        _truncate_results(jsonl, st["epoch"])
        log.info(f"==> resume from epoch {st['epoch']} ({state_file})")
        if start > cfg.max_epoch:  # docs/fidelity.md#run-dir: done already, exit status 0
            log.info(f"==> nothing to train: {state_file.name} is at epoch {st['epoch']} and --max-epoch is "
                     f"{cfg.max_epoch} (raise --max-epoch to train on)")
            return {"best": best, "best_epoch": best_epoch, "seconds": elapsed, "nothing_to_do": True}
    elif resume:
        log.info(f"==> --resume: no {state_file}, starting from scratch")
    t_start = time.time() - elapsed
    for epoch in range(start, cfg.max_epoch + 1):
        t_ep = time.time()
        model.train()
        tr = train_epoch(epoch, optimizer)
        t_tr = time.time() - t_ep
        if not math.isfinite(tr.loss) or not _finite_model(model):
            last = f"the files of epoch {epoch - 1} are kept" if epoch > 1 else "no checkpoint was written"
            raise TrainingDiverged(
                f"epoch {epoch}: the training loss is {tr.loss} (the weights are "
                f"{'finite' if _finite_model(model) else 'no longer finite'}); training stopped and {last}; "
                f"check the meta-training data for NaN/Inf accuracies or features")
        model.eval()
        with torch.no_grad():
            va = valid_epoch(epoch)
        t_va = time.time() - t_ep - t_tr
        scheduler.step(tr.loss)
        lines = [f"[total {time.time() - t_start:6.2f}s (ep {time.time() - t_ep:6.2f}s)] epoch {epoch:3d}"]
        value = va.metrics.get(best_metric, float("nan")) if best_metric else float("nan")
        improved = best_metric is not None and value == value and value > best
        outputs: dict[Path, bytes] = {}  # the epoch's files, written all or nothing at its end
        if improved:
            best, best_epoch = value, epoch
            outputs.update(checkpoint_files(model, mdir / "ckpt_max_corr.pt",
                                            {**meta, "epoch": epoch, best_metric: value}))
        lines += tr.lines + va.lines
        if improved and on_best:
            lines += on_best(epoch, va)
        for ln in lines:
            log.info(ln)
        if epoch % cfg.save_epoch == 0:
            log.info("==> save current model...")
            outputs.update(checkpoint_files(model, paths.ckpt(save_path, model_name, epoch),
                                            {**meta, "epoch": epoch}))
        size = jsonl.stat().st_size if jsonl.is_file() else 0
        append_jsonl(jsonl, {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                             "train_seconds": round(t_tr, 3), "valid_seconds": round(t_va, 3),
                             **{f"train_{k}": v for k, v in tr.metrics.items()},
                             **{f"valid_{k}": v for k, v in va.metrics.items()}})
        try:
            outputs[state_file] = training_state_bytes({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
                "best": best, "best_epoch": best_epoch, "elapsed": time.time() - t_start,
                "meta": dict(meta), "running": dict(running or {}),
            })
            # checkpoints, sidecars and resume_state.pt: all or nothing (docs/fidelity.md#atomic-outputs)
            write_files(outputs)
        except BaseException:  # the epoch is not done: results.jsonl must not say it is
            os.truncate(jsonl, size)
            raise
    total = time.time() - t_start
    log.info(f"({total:6.2f}s) meta-training phase done")
    return {"best": best, "best_epoch": best_epoch, "seconds": total}
