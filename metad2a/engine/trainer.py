"""The meta-training epoch loop shared by both models: Adam, ReduceLROnPlateau on the training
loss, periodic ``ckpt_<epoch>.pt``, best-metric checkpoint, JSON-lines summaries, and ``--resume``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a import paths
from metad2a.checkpoint import read_training_state, save_checkpoint, save_training_state
from metad2a.config import TrainConfig
from metad2a.log import append_jsonl

log = logging.getLogger("metad2a")

RESUME_FILE = "resume_state.pt"


@dataclass
class EpochResult:
    loss: float  # the value the scheduler follows
    metrics: dict[str, float]
    lines: list[str]  # log lines in the original format


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
) -> dict[str, Any]:
    """Run meta-training.

    Args:
        best_metric: key of ``valid_epoch``'s metrics to maximise; the best model is saved as
            ``ckpt_max_corr.pt`` (predictor). NaN never counts as an improvement.
        on_best: returns the log lines for a new best.

    Returns:
        a summary dict (best epoch/metric, seconds).
    """
    mdir = paths.model_dir(save_path, model_name)
    mdir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=0.1, patience=10)
    start, best, best_epoch, elapsed = 1, float("-inf"), 0, 0.0
    state_file = mdir / RESUME_FILE
    if resume and state_file.is_file():
        st = read_training_state(state_file)
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng"])
        start, best, best_epoch, elapsed = st["epoch"] + 1, st["best"], st["best_epoch"], st["elapsed"]
        log.info(f"==> resume from epoch {st['epoch']} ({state_file})")
    elif resume:
        log.info(f"==> --resume: no {state_file}, starting from scratch")
    jsonl = paths.run_dir(save_path, model_name) / "results.jsonl"
    t_start = time.time() - elapsed
    for epoch in range(start, cfg.max_epoch + 1):
        t_ep = time.time()
        model.train()
        tr = train_epoch(epoch, optimizer)
        t_tr = time.time() - t_ep
        model.eval()
        with torch.no_grad():
            va = valid_epoch(epoch)
        t_va = time.time() - t_ep - t_tr
        scheduler.step(tr.loss)
        lines = [f"[total {time.time() - t_start:6.2f}s (ep {time.time() - t_ep:6.2f}s)] epoch {epoch:3d}"]
        value = va.metrics.get(best_metric, float("nan")) if best_metric else float("nan")
        improved = best_metric is not None and value == value and value > best
        if improved:
            best, best_epoch = value, epoch
            save_checkpoint(model, mdir / "ckpt_max_corr.pt", {**meta, "epoch": epoch, best_metric: value})
        lines += tr.lines + va.lines
        if improved and on_best:
            lines += on_best(epoch, va)
        for ln in lines:
            log.info(ln)
        if epoch % cfg.save_epoch == 0:
            log.info("==> save current model...")
            save_checkpoint(model, paths.ckpt(save_path, model_name, epoch), {**meta, "epoch": epoch})
        append_jsonl(jsonl, {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                             "train_seconds": round(t_tr, 3), "valid_seconds": round(t_va, 3),
                             **{f"train_{k}": v for k, v in tr.metrics.items()},
                             **{f"valid_{k}": v for k, v in va.metrics.items()}})
        save_training_state(state_file, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
            "best": best, "best_epoch": best_epoch, "elapsed": time.time() - t_start,
        })
    total = time.time() - t_start
    log.info(f"({total:6.2f}s) meta-training phase done")
    return {"best": best, "best_epoch": best_epoch, "seconds": total}
