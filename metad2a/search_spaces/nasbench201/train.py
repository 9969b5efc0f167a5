"""Training one NAS-Bench-201 architecture with the original recipe (docs/fidelity.md#train-arch).

The recipe of the original's ``configs/nas-benchmark/{mnist,svhn,aircraft,pets}.config`` (the
NAS-Bench-201 one): SGD with learning rate 0.1, momentum 0.9, Nesterov, weight decay 5e-4; cosine
annealing to 0 over the epochs with no warm-up; cross-entropy; batch 256; 200 epochs (50 for mnist);
network ``TinyNetwork(C=16, N=5)``. The original scheduler updates the rate before every
iteration with the fraction of the epoch done, but that fraction only matters during warm-up, and
the original's warm-up is 0 epochs; the rate is then constant within an epoch,
``lr(e) = eta_min + (lr - eta_min) * (1 + cos(pi * e / epochs)) / 2``, which is torch's
``CosineAnnealingLR`` stepped once per epoch (used here).

Every epoch the network is evaluated on each loader of ``test_sets`` (the original's ``ori-test``,
``x-valid`` and ``x-test``); the results use the original's names (``train_losses``,
``valid_acc1es["x-test@199"]``, ...). Deterministic on the CPU for a given seed: the seed fixes the
initial weights and the shuffling (a generator of its own), and nothing else draws random numbers.
On CUDA, cuDNN runs in deterministic mode as in the original.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from metad2a.config import require_positive
from metad2a.errors import MetaD2AError
from metad2a.evaluation.metrics import topk_correct
from metad2a.search_spaces.nasbench201.network import TinyNetwork, count_parameters_and_flops
from metad2a.seeding import seed_everything

__all__ = ["TrainRecipe", "make_scheduler", "train_arch"]

INPUT_SHAPE = (1, 3, 32, 32)


@dataclass(frozen=True)
class TrainRecipe:
    """How a NB201 architecture is trained; the defaults are the original's (aircraft/pets/svhn).

    Attributes:
        epochs: training epochs (original: 200; 50 for mnist, see :meth:`original`).
        batch_size: images per step, also for evaluation (original: 256).
        lr: initial learning rate (``LR``).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty (``decay``).
        eta_min: final learning rate of the cosine schedule.
        channel: ``C`` of TinyNetwork (original: 16).
        num_cells: ``N`` of TinyNetwork, cells per stage (original: 5).
        workers: DataLoader worker processes (0 = load in the training process).
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    eta_min: float = 0.0
    channel: int = 16
    num_cells: int = 5
    workers: int = 0

    def __post_init__(self) -> None:
        require_positive(self, "epochs", "batch_size", "channel", "num_cells", label="training recipe: {name}")
        if self.workers < 0 or self.lr <= 0:
            raise MetaD2AError("training recipe: workers must be >= 0 and lr > 0")

    @classmethod
    def original(cls, data_name: str) -> TrainRecipe:
        """The original recipe for a dataset: 50 epochs for mnist, 200 for everything else."""
        return cls(epochs=50 if data_name == "mnist" else 200)

    def with_epochs(self, epochs: int | None) -> TrainRecipe:
        """The same recipe with ``epochs`` (unchanged when None)."""
        return self if epochs is None else replace(self, epochs=epochs)

    def config_dict(self, num_classes: int) -> dict[str, Any]:
        """The recipe under the original config's key names (stored in ``seed-XXXX.pth``)."""
        return {"scheduler": "cos", "eta_min": self.eta_min, "epochs": self.epochs, "warmup": 0,
                "optim": "SGD", "LR": self.lr, "decay": self.weight_decay, "momentum": self.momentum,
                "nesterov": self.nesterov, "criterion": "Softmax", "batch_size": self.batch_size,
                "class_num": num_classes, "xshape": list(INPUT_SHAPE)}


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: TrainRecipe) -> torch.optim.lr_scheduler.LRScheduler:
    """The original's learning-rate schedule: cosine annealing from ``recipe.lr`` to ``eta_min``
    over ``epochs``, constant within an epoch (step it once per epoch)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs, eta_min=recipe.eta_min)


def _loader(ds: Dataset, batch_size: int, workers: int, shuffle: bool, seed: int, device: torch.device) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=False)


def _run_epoch(net: nn.Module, loader: DataLoader, criterion: nn.Module, device: torch.device,
               optimizer: torch.optim.Optimizer | None = None) -> tuple[float, float, float, float]:
    """One pass: (mean loss, top-1 %, top-5 %, seconds); trains when ``optimizer`` is given."""
    train = optimizer is not None
    net.train(train)
    t0 = time.time()
    loss_sum, n, c1, c5 = 0.0, 0, 0.0, 0.0
    with torch.set_grad_enabled(train):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = net(x)
            loss = criterion(logits, y)
            if train:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            b = y.size(0)
            loss_sum += float(loss.detach()) * b
            n += b
            a1, a5 = topk_correct(logits.detach(), y)
            c1, c5 = c1 + a1, c5 + a5
    if n == 0:
        raise MetaD2AError("an empty dataset was given to train or evaluate the architecture")
    return loss_sum / n, 100.0 * c1 / n, 100.0 * c5 / n, time.time() - t0


def train_arch(arch_str: str, train_set: Dataset, test_sets: Mapping[str, Dataset], num_classes: int,
               recipe: TrainRecipe = TrainRecipe(), seed: int = 0, device: str | torch.device = "cpu",
               progress: bool = True, on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
               eval_every_epoch: bool = True) -> dict[str, Any]:
    """Train ``TinyNetwork(arch_str, recipe.channel, recipe.num_cells, num_classes)`` and evaluate it.

    Args:
        arch_str: NB201 architecture string.
        train_set: items ``(float tensor [3, 32, 32], label)``.
        test_sets: evaluation sets by name (the original: ``ori-test``, ``x-valid``, ``x-test``).
        num_classes: classifier outputs; labels must lie in ``0..num_classes-1``.
        recipe: the optimisation recipe (default: the original's 200-epoch one).
        seed: seeds python/numpy/torch (weights) and the shuffling.
        device: where to train.
        progress: a tqdm bar over the epochs.
        on_epoch: called after every epoch with ``(epoch, {"train_loss", "train_acc1", "train_acc5",
            "valid": {name: (loss, acc1, acc5)}})`` (``valid`` empty on epochs without evaluation).
        eval_every_epoch: evaluate after every epoch (the original); False = only after the last one.

    Returns:
        ``{"arch_str", "num_classes", "seed", "device", "recipe", "total_epoch", "train_losses",
        "train_acc1es", "train_acc5es", "train_times"`` (per epoch), ``"valid_losses", "valid_acc1es",
        "valid_acc5es", "valid_times"`` (keyed ``"<name>@<epoch>"``), ``"final_acc"`` (top-1 % per
        name after the last epoch), ``"num_params"``, ``"param"`` (millions), ``"flop"`` (MFLOPs per
        32x32 image), ``"net_state_dict"`` (CPU tensors), ``"net_string"``, ``"seconds"``}``.

    Raises:
        ArchStringError: ``arch_str`` does not parse.
        MetaD2AError: an empty dataset or a bad recipe.
    """
    from tqdm import tqdm

    device = torch.device(device)
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    t_start = time.time()
    try:
        seed_everything(seed)
        net = TinyNetwork(arch_str, C=recipe.channel, N=recipe.num_cells, num_classes=num_classes)
        num_params, mflops = count_parameters_and_flops(net, INPUT_SHAPE)
        net.to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                    weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
        scheduler = make_scheduler(optimizer, recipe)
        criterion = nn.CrossEntropyLoss()
        train_loader = _loader(train_set, recipe.batch_size, recipe.workers, True, seed, device)
        eval_loaders = {k: _loader(ds, recipe.batch_size, recipe.workers, False, seed, device)
                        for k, ds in test_sets.items()}
        out: dict[str, Any] = {k: {} for k in ("train_losses", "train_acc1es", "train_acc5es", "train_times",
                                               "valid_losses", "valid_acc1es", "valid_acc5es", "valid_times")}
        total = recipe.epochs
        bar = tqdm(range(total), desc=f"train {arch_str[:40]}", unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            loss, a1, a5, secs = _run_epoch(net, train_loader, criterion, device, optimizer)
            scheduler.step()
            for key, v in zip(("train_losses", "train_acc1es", "train_acc5es", "train_times"), (loss, a1, a5, secs)):
                out[key][epoch] = v
            valid: dict[str, tuple[float, float, float]] = {}
            if eval_every_epoch or epoch == total - 1:
                for name, loader in eval_loaders.items():
                    vl, v1, v5, vt = _run_epoch(net, loader, criterion, device)
                    tag = f"{name}@{epoch}"
                    out["valid_losses"][tag], out["valid_acc1es"][tag] = vl, v1
                    out["valid_acc5es"][tag], out["valid_times"][tag] = v5, vt
                    valid[name] = (vl, v1, v5)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{a1:.1f}")
            if on_epoch is not None:
                on_epoch(epoch, {"train_loss": loss, "train_acc1": a1, "train_acc5": a5, "valid": valid})
        last = total - 1
        out.update(
            arch_str=arch_str, num_classes=num_classes, seed=seed, device=str(device), recipe=asdict(recipe),
            total_epoch=total, final_acc={k: out["valid_acc1es"][f"{k}@{last}"] for k in test_sets},
            num_params=num_params, param=num_params / 1e6, flop=mflops,
            net_state_dict={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            net_string=str(net), seconds=time.time() - t_start,
        )
        return out
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
