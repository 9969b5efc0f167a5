"""The selected architecture trained with three seeds, in the original's files (docs/data.md#seed-files).

What the original's ``train_single_model`` leaves in ``results/meta_test/<data>/best_arch/``:

- ``seed-0777.pth``, ``seed-0888.pth``, ``seed-0999.pth`` (``seed-{seed:04d}.pth``): a dict
  ``{'info': <machine info>, '<data>': {flop, param, channel, num_cells, config, total_epoch,
  train_losses, train_acc1es, train_acc5es, train_times, valid_losses, valid_acc1es, valid_acc5es,
  valid_times, net_state_dict, net_string, finish-train: True}, 'all_dataset_keys': ['<data>']}``;
  per-epoch values keyed by epoch, evaluation values by ``"<loader>@<epoch>"``. We add ``arch_str``
  and ``seed`` to the ``'<data>'`` dict (the original kept only ``net_string``);
- ``seed-0-T-<dd-Mon-at-HH-MM-SS>.log``: the training log (UTC time, as the original).

A seed whose file exists is read instead of trained again (the original's reuse). Unlike the
original, a file for another architecture or another number of epochs is refused with a one-line
error rather than silently reported. The accuracy of a seed is ``valid_acc1es["x-test@<last epoch>"]``.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metad2a.checkpoint import read_record, save_data
from metad2a.data.arch_data import REPORTED_LOADER, ArchTrainingData, load_arch_training_data
from metad2a.errors import DataFileError
from metad2a.search_spaces.nasbench201.train import TrainRecipe, train_arch

ORIGINAL_SEEDS = (777, 888, 999)
log = logging.getLogger("metad2a.nb201_seeds")


def seed_file(out_dir: str | Path, seed: int) -> Path:
    """``<out>/seed-0777.pth`` for seed 777 (``seed-{:04d}.pth``, the original's name)."""
    return Path(out_dir) / f"seed-{seed:04d}.pth"


def log_file(out_dir: str | Path, when: float | None = None) -> Path:
    """``<out>/seed-0-T-<dd-Mon-at-HH-MM-SS>.log`` (UTC), the original logger's file name."""
    stamp = time.strftime("%d-%b-at-%H-%M-%S", time.gmtime(time.time() if when is None else when))
    return Path(out_dir) / f"seed-0-T-{stamp}.log"


def machine_info() -> str:
    """The ``'info'`` string of a seed file: Python, PyTorch, cuDNN and CUDA versions."""
    cuda = torch.cuda.is_available()
    return "\n".join([
        f"Python  Version  : {platform.python_version()}",
        f"PyTorch Version  : {torch.__version__}",
        f"cuDNN   Version  : {torch.backends.cudnn.version() if cuda else None}",
        f"CUDA available   : {cuda}",
        f"CUDA GPU numbers : {torch.cuda.device_count() if cuda else 0}",
        f"Platform         : {platform.platform()}",
    ])


def seed_record(data_name: str, result: dict[str, Any], recipe: TrainRecipe) -> dict[str, Any]:
    """A :func:`train_arch` result in the original ``seed-XXXX.pth`` layout."""
    keys = ("train_losses", "train_acc1es", "train_acc5es", "train_times",
            "valid_losses", "valid_acc1es", "valid_acc5es", "valid_times")
    entry = {"flop": result["flop"], "param": result["param"], "channel": recipe.channel,
             "num_cells": recipe.num_cells, "config": recipe.config_dict(result["num_classes"]),
             "total_epoch": result["total_epoch"], **{k: result[k] for k in keys},
             "net_state_dict": result["net_state_dict"], "net_string": result["net_string"],
             "finish-train": True, "arch_str": result["arch_str"], "seed": result["seed"]}
    return {"info": machine_info(), data_name: entry, "all_dataset_keys": [data_name]}


def reported_accuracy(record: dict[str, Any], data_name: str) -> float:
    """``valid_acc1es["x-test@<total_epoch - 1>"]``: the accuracy the original reports for a seed."""
    entry = record[data_name]
    return float(entry["valid_acc1es"][f"{REPORTED_LOADER}@{entry['total_epoch'] - 1}"])


@dataclass(frozen=True)
class SeedRun:
    """One seed of the selected architecture: its file, x-test accuracy (%), and whether it was reused."""

    seed: int
    path: Path
    acc: float
    reused: bool
    total_epoch: int
    param: float
    flop: float


def _read_existing(path: Path, data_name: str, arch_str: str, recipe: TrainRecipe) -> dict[str, Any]:
    record = read_record(path, "delete it to train this seed again")
    if not isinstance(record, dict) or data_name not in record:
        raise DataFileError(f"{path}: not a seed file of {data_name!r} (keys {sorted(map(str, record))[:5]}); "
                            "delete it to train this seed again")
    entry = record[data_name]
    stored = entry.get("arch_str")
    if stored is not None and stored != arch_str:
        raise DataFileError(f"{path}: holds another architecture ({stored}) than the selected {arch_str}; "
                            "move or delete the seed-*.pth files to train the new one")
    if entry.get("total_epoch") != recipe.epochs:
        raise DataFileError(f"{path}: was trained for {entry.get('total_epoch')} epochs, not "
                            f"{recipe.epochs}; pass --epochs {entry.get('total_epoch')} to report it, "
                            "or move or delete it to train again")
    return record


def missing_seeds(out_dir: str | Path, seeds: tuple[int, ...] = ORIGINAL_SEEDS) -> list[int]:
    """Seeds whose ``seed-XXXX.pth`` is not in ``out_dir`` (those would be trained)."""
    return [s for s in seeds if not seed_file(out_dir, s).is_file()]


def train_selected_arch(arch_str: str, data_name: str, data_path: str | Path, out_dir: str | Path,
                        recipe: TrainRecipe, seeds: tuple[int, ...] = ORIGINAL_SEEDS,
                        device: str | torch.device = "cpu", progress: bool = True) -> list[SeedRun]:
    """Train (or reuse) ``arch_str`` on ``data_name`` once per seed; write the original's files.

    Raw images are read from ``<data_path>/raw-data/<data_name>/`` only when a seed has to be trained.

    Args:
        arch_str: the selected NB201 architecture.
        data_name: mnist, svhn, aircraft, pets, or the name of your image folder under raw-data/.
        data_path: data root.
        out_dir: ``results/meta_test/<data>/best_arch``.
        recipe: training recipe (see :class:`TrainRecipe`).
        seeds: one run per seed (original: 777, 888, 999).
        device: where to train.
        progress: tqdm bars over the epochs.

    Returns:
        One :class:`SeedRun` per seed, in order.

    Raises:
        DataFileError: missing raw data, or an existing seed file for another architecture/epochs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file(out_dir), mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
    level = log.level
    log.setLevel(logging.INFO)  # the file gets the whole log even when logging is not configured
    log.addHandler(handler)
    data: ArchTrainingData | None = None
    runs: list[SeedRun] = []
    try:
        log.info(f"Start train-evaluate {arch_str} on {data_name}")
        log.info(f"arch_config : {{'channel': {recipe.channel}, 'num_cells': {recipe.num_cells}}}; "
                 f"recipe : {recipe}")
        for i, seed in enumerate(seeds):
            path = seed_file(out_dir, seed)
            log.info(f"The {i:02d}/{len(seeds):02d}-th seed is {seed} ----------------------<.>----------------------")
            if path.is_file():
                log.info(f"Find the existing file {path}, directly load!")
                record, reused = _read_existing(path, data_name, arch_str, recipe), True
            else:
                log.info(f"Does not find the existing file {path}, train and evaluate!")
                if data is None:
                    data = load_arch_training_data(data_name, data_path)
                    log.info(f"Evaluate ||||||| {data_name} ||||||| {data.description}; "
                             f"{data.num_classes} classes; loaders {', '.join(data.test_sets)}")

                def on_epoch(epoch: int, m: dict[str, Any], seed: int = seed) -> None:
                    valid = " ".join(f"{k} [loss={v[0]:.5f}, acc@1={v[1]:.2f}%, acc@5={v[2]:.2f}%]"
                                     for k, v in m["valid"].items())
                    log.info(f"seed={seed} epoch={epoch:03d}/{recipe.epochs:03d} :: Train [loss="
                             f"{m['train_loss']:.5f}, acc@1={m['train_acc1']:.2f}%, acc@5={m['train_acc5']:.2f}%] "
                             f"{valid}")

                result = train_arch(arch_str, data.train, data.test_sets, data.num_classes, recipe, seed, device,
                                    progress=progress, on_epoch=on_epoch)
                record, reused = seed_record(data_name, result, recipe), False
                save_data(record, path)
            entry = record[data_name]
            acc = reported_accuracy(record, data_name)
            log.info(f"Flops = {entry['flop']} MB, Params = {entry['param']} MB; "
                     f"{REPORTED_LOADER}@{entry['total_epoch'] - 1} accuracy {acc:.2f}% (seed {seed})")
            runs.append(SeedRun(seed, path, acc, reused, int(entry["total_epoch"]), float(entry["param"]),
                                float(entry["flop"])))
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()
    return runs
