"""Fine-tune a searched MobileNetV3 subnet on a target dataset (docs/fidelity.md#ofa-evaluation): the logic of
``MetaD2A_ofa/evaluation/main.py``.

1. **Architecture.** ``--model-config search`` (default) reads
   ``<save>/meta_test/<data>/<num-gen-arch>/generated_arch/run_1.txt`` (sorted by predicted score)
   and takes the first architecture, or with ``--bound B`` the first whose MFLOPs are at most B.
   MFLOPs are counted as once-for-all counts them (multiply-accumulates of convolutions and linear
   layers, no bias terms) for one 3x224x224 image with the 1000-class head. The original measured
   MACs with ``torchprofile``, which also counts element-wise products (SE, h-swish) and BN, so its
   figures are a few percent higher and a bound here admits slightly larger subnets. New:
   ``--bound-latency-ms MS`` also requires the subnet's latency, at ``--img-size`` with the
   dataset's head, from the per-layer latency table of ``--latency-device`` (measured when the
   cache lacks it, docs/fidelity.md#budget-ofa), to be at most MS.
   ``--model-config flops@N`` reads NSGANetV2's ``searched-architectures/<dataset>/net-flops@N/net.subnet``.
2. **Network.** The subnet with its ImageNet weights is extracted from the once-for-all supernet
   (``--ofa-weights``); its head is replaced by a fresh ``LinearLayer(1280, classes)`` with dropout
   ``--drop``. NSGANetV2's drop-connect (``--drop-path``) is **not** applied (accepted and ignored).
3. **Data.** cifar10, cifar100 (torchvision), aircraft100 (FGVC-Aircraft, variant level, 100 classes,
   ``trainval``/``test``), pets (the original's ``train85.pth``/``test15.pth`` or torchvision's
   Oxford-IIIT Pet), or any image folder with ``train/`` and ``test/`` sub-folders. Train transform:
   Resize((s, s), bicubic), horizontal flip, AutoAugment with torchvision's CIFAR-10 policy (the
   original used its own copy of that policy), ToTensor, Cutout(16), Normalize (per dataset, docs/fidelity.md#ofa-evaluation
   values; ImageNet's for folders). Test: Resize bicubic, ToTensor, Normalize.
4. **Training** (the original recipe): SGD(lr 0.01, momentum 0.9, weight decay 4e-5), cross-entropy
   without label smoothing, cosine schedule over ``--epochs`` (150) stepped per epoch, gradient
   clipping at norm 5, batch 96 (test batch 200). After every epoch the test accuracy is logged.
   **Selection on the test set:** like the original (docs/fidelity.md#test-set-selection) we keep the checkpoint with
   the best *test* accuracy, which is an optimistic estimate; the last epoch's accuracy, the unbiased
   figure, is kept and reported too.

Outputs in ``<save>/evaluation/<data>-metaD2A-<bound>-<seed>/`` (original name): ``log.txt``
(``"%(asctime)s %(message)s"`` lines as the original), ``results.jsonl`` (one line per epoch),
``net_flops@<N>.config`` (ofa's JSON config of the fine-tuned subnet), ``subnet.json`` (ks/e/d,
MFLOPs and parameters), ``net_flops@<N>.best`` and ``.last`` (``{"state_dict": ...}``) and
``summary.json`` (best and last test accuracy).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from metad2a import paths
from metad2a.config import Budget, require_positive
from metad2a.data.imaging import IMAGENET_NORM, image_error, image_read_errors, item_location, to_rgb
from metad2a.errors import DataFileError, MetaD2AError, user_command
from metad2a.evaluation.metrics import topk_correct
from metad2a.files import append_text, atomic_write, to_json, write_json
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET

log = logging.getLogger("metad2a")

# docs/fidelity.md#ofa-evaluation: Normalize() of the original evaluation per dataset (ImageNet's for image folders)
EVAL_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "aircraft100": ((0.48933587508932375, 0.5183537408957618, 0.5387914411673883),
                    (0.22388883112804625, 0.21641635409388751, 0.24615605842636115)),
    "pets": ((0.4828895122298728, 0.4448394893850807, 0.39566558230789783),
             (0.25925664613996574, 0.2532760018681693, 0.25981017205097917)),
}
# where the original evaluation found each dataset (relative to --data-path), then our raw-data/ layout;
# the marker is what the folder holds when the dataset is there
DATA_ROOTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cifar10": (("cifar10", "raw-data/cifar10"), ("cifar-10-batches-py",)),
    "cifar100": (("cifar100", "raw-data/cifar100"), ("cifar-100-python",)),
    "aircraft100": ((".", "raw-data/aircraft"), ("fgvc-aircraft-2013b",)),
    "pets": (("pets", "raw-data/pets"), ("train85.pth", "oxford-iiit-pet")),
}
NSGANET_DIRS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "aircraft100": "Aircraft", "pets": "Pets"}
BOUND_RESOLUTION = 224


@dataclass(frozen=True)
class FinetuneConfig:
    """The evaluation flags (docs/fidelity.md#ofa-evaluation) plus ours.

    Attributes mirror the flags; ``max_steps`` caps training steps per epoch (smoke tests),
    ``weights``/``random_init`` choose the supernet, ``download`` lets torchvision fetch datasets.
    """

    data_name: str
    save_path: Path = Path("../results")
    data_path: Path = Path("../data")
    num_gen_arch: int = 200
    bound: int | None = None
    bound_latency_ms: float | None = None
    latency_device: str = "cpu"
    latency_batch: int = 1
    latency_threads: int = 1
    latency_cache: Path | None = None  # None: <save_path>/latency
    seed: int = -1
    batch_size: int = 96
    test_batch_size: int = 200
    num_workers: int = 2
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 4e-5
    report_freq: int = 50
    epochs: int = 150
    grad_clip: float = 5.0
    cutout: bool = True
    cutout_length: int = 16
    autoaugment: bool = True
    drop: float = 0.2
    drop_path: float = 0.2
    img_size: int = 224
    model_config: str = "search"
    weights: Path = Path("..") / OFA_SUPERNET_TARGET
    random_init: bool = False
    max_steps: int | None = None
    download: bool = False

    def __post_init__(self) -> None:
        require_positive(self, "num_gen_arch", "batch_size", "test_batch_size", "epochs", "img_size", "cutout_length")
        require_positive(self, "max_steps", allow_none=True)
        b = self.bound_latency_ms
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0):
            raise MetaD2AError(f"--bound-latency-ms must be a positive number, got {b!r}")
        Budget(latency_device=self.latency_device, latency_batch=self.latency_batch,
               latency_threads=self.latency_threads)  # their one-line errors
        if not 0.0 <= self.drop < 1.0:
            raise MetaD2AError(f"--drop must be in [0, 1), got {self.drop}")
        if self.model_config != "search" and not self.model_config.startswith("flops@"):
            raise MetaD2AError(f"--model-config must be 'search' or 'flops@<N>', got {self.model_config!r}")


# --------------------------------------------------------------------------- architecture choice
def read_candidates(save_path: str | Path, data_name: str,
                    num_gen_arch: int) -> tuple[Path, list[dict[str, list[int]]]]:
    """The architectures of ``run_1.txt`` of the search, in file order (best predicted first).

    Raises:
        DataFileError: the file is missing or holds no valid architecture line.
    """
    from metad2a.data.archive import read_archive

    name = Path(data_name).name if Path(data_name).is_dir() else data_name
    path = paths.generated_arch_file(paths.meta_test_dir(save_path, name, num_gen_arch), 1)
    hint = (f"run the search first: python main.py --gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 120 "
            f"--num-gen-arch {num_gen_arch} --data-name {name} (from MetaD2A_ofa/)")
    _, lines = read_archive(path, first_token=False, hint=hint)
    try:
        archs = [ofa.arch_str_to_dict(ln) for ln in lines]
    except ofa.ArchDictError as e:
        raise DataFileError(f"{path}: {e}") from e
    if not archs:
        raise DataFileError(f"{path}: no architecture in the file; {hint}")
    return path, archs


def choose_architecture(supernet: nn.Module, archs: Sequence[dict[str, list[int]]], bound: float | None,
                        limit: int | None = None, latency: tuple[Any, int, float] | None = None
                        ) -> tuple[int, dict[str, list[int]], float]:
    """``(line index, architecture, MFLOPs)``: the first one, or the first within ``bound`` MFLOPs
    (1000-class head, 3x224x224) among the first ``limit`` lines.

    Args:
        latency: ``(meter, num_classes, bound_ms)``: also require the table latency (the meter's
            device and input size, a ``num_classes`` head) to be at most ``bound_ms``.

    Raises:
        MetaD2AError: no architecture within the bounds.
    """
    from metad2a.search_spaces.ofa_mbv3.latency_table import subnet_latencies
    from metad2a.search_spaces.ofa_mbv3.supernet import extract_subnet, net_size

    scan = list(archs[:limit] if limit else archs)
    lat = subnet_latencies(scan, latency[1], latency[0]) if latency else [0.0] * len(scan)
    smallest, fastest = math.inf, math.inf
    for i, a in enumerate(scan):
        mflops = net_size(extract_subnet(supernet, a), BOUND_RESOLUTION)[1]
        smallest, fastest = min(smallest, mflops), min(fastest, lat[i])
        if (bound is None or mflops <= bound) and (latency is None or lat[i] <= latency[2]):
            return i, a, mflops
    if latency is None:
        raise MetaD2AError(f"no architecture among the {len(scan)} searched ones has at most {bound} MFLOPs (the "
                           f"smallest has {smallest:.1f}); raise --bound or search more architectures "
                           f"(--num-gen-arch)")
    raise MetaD2AError(f"no architecture among the {len(scan)} searched ones has at most {bound} MFLOPs and "
                       f"{latency[2]:g} ms (the smallest has {smallest:.1f} MFLOPs, the fastest {fastest:.2f} ms); "
                       f"raise --bound/--bound-latency-ms or search under the budget (--max-latency-ms)")


def nsganet_architecture(model_config: str, data_name: str,
                         root: str | Path = "searched-architectures") -> dict[str, list[int]]:
    """``--model-config flops@N``: NSGANetV2's ``<root>/<dataset>/net-flops@N/net.subnet`` (JSON with ks/e/d).

    Raises:
        DataFileError: the file is missing or not a subnet.
    """
    folder = NSGANET_DIRS.get(data_name)
    if folder is None:
        raise MetaD2AError(f"--model-config {model_config}: NSGANetV2 architectures exist for "
                           f"{', '.join(NSGANET_DIRS)} only")
    path = Path(root) / folder / f"net-{model_config}" / "net.subnet"
    if not path.is_file():
        raise DataFileError(f"{path}: file not found; put NSGANetV2's released searched-architectures folder here")
    try:
        d = json.loads(path.read_text())
        return ofa.canonical_arch_dict({k: d[k] for k in ofa.ARCH_KEYS})
    except (ValueError, KeyError, TypeError) as e:
        raise DataFileError(f"{path}: not an OFA subnet with ks/e/d ({e})") from e


# --------------------------------------------------------------------------- data
class Cutout:
    """Zero one ``length`` x ``length`` square at a random centre of a [C, H, W] tensor (clipped at the
    borders), as DARTS/NSGANetV2's Cutout; drawn from torch's RNG."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        y, x = int(torch.randint(h, ())), int(torch.randint(w, ()))
        half = self.length // 2
        img = img.clone()
        img[..., max(0, y - half):min(h, y + half), max(0, x - half):min(w, x + half)] = 0.0
        return img

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def make_transforms(norm: tuple[tuple[float, ...], tuple[float, ...]], img_size: int, autoaugment: bool,
                    cutout: int | None) -> tuple[Any, Any]:
    """(train, test) transforms of the original evaluation (see the module docstring)."""
    from torchvision import transforms as T

    resize = T.Resize((img_size, img_size), interpolation=T.InterpolationMode.BICUBIC)
    train = [resize, T.RandomHorizontalFlip()]
    if autoaugment:
        train.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    train.append(T.ToTensor())
    if cutout:
        train.append(Cutout(cutout))
    train.append(T.Normalize(*norm))
    return T.Compose(train), T.Compose([resize, T.ToTensor(), T.Normalize(*norm)])


class _Images(Dataset):
    """Items ``(image, label)`` of an :class:`~metad2a.data.image_sources.ImageSource`, as RGB through a transform."""

    def __init__(self, source: Any, transform: Any) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            img, _ = self.source.dataset[i]
            return self.transform(to_rgb(img)), self.source.targets[i]
        except image_read_errors() as e:
            raise image_error(e, item_location(self.source.dataset, i, f"item {i}")) from e


def dataset_root(data_name: str, data_path: str | Path) -> Path:
    """Where a named dataset is: the first candidate folder of :data:`DATA_ROOTS` holding it, else the
    original's location (where ``--download`` puts it)."""
    roots, markers = DATA_ROOTS[data_name]
    for r in roots:
        if any((Path(data_path) / r / m).exists() for m in markers):
            return Path(data_path) / r
    return Path(data_path) / roots[0]


def load_datasets(cfg: FinetuneConfig) -> tuple[Dataset, Dataset, int, str, str]:
    """(train, test, classes, description, output name) for ``cfg.data_name``.

    Raises:
        DataFileError: unknown name, or dataset files missing.
    """
    from metad2a.data.image_sources import SOURCES, has_split_folders, image_folder

    if Path(cfg.data_name).is_dir():
        if not has_split_folders(cfg.data_name):
            raise DataFileError(f"{cfg.data_name}: an image folder to fine-tune on needs train/<class>/ and "
                                "test/<class>/ sub-folders")
        train_src, test_src = image_folder(cfg.data_name, "train"), image_folder(cfg.data_name, "test")
        norm, name = IMAGENET_NORM, Path(cfg.data_name).resolve().name
    elif cfg.data_name in DATA_ROOTS:
        build = SOURCES[cfg.data_name][0]
        root = dataset_root(cfg.data_name, cfg.data_path)
        train_src, test_src = build(root, cfg.download, "train"), build(root, cfg.download, "test")
        norm, name = EVAL_NORMS[cfg.data_name], cfg.data_name
    else:
        raise DataFileError(f"--data-name {cfg.data_name!r}: use one of {', '.join(DATA_ROOTS)} or an image "
                            "folder with train/ and test/ sub-folders (mnist and svhn are not supported, as in "
                            "the original)")
    train_t, test_t = make_transforms(norm, cfg.img_size, cfg.autoaugment, cfg.cutout_length if cfg.cutout else None)
    desc = f"{train_src.description}; {test_src.description}"
    return _Images(train_src, train_t), _Images(test_src, test_t), train_src.num_classes, desc, name


# --------------------------------------------------------------------------- training
def _file_logger(path: Path) -> logging.Logger:
    """``log.txt`` with the original's ``"%(asctime)s %(message)s"`` lines (plus the console)."""
    from metad2a.log import setup_logging

    logger = setup_logging()
    fh = logging.FileHandler(path, mode="a")
    fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%m/%d %I:%M:%S %p"))
    logger.addHandler(fh)
    return logger


def _save_state(net: nn.Module, path: Path, **meta: Any) -> None:
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_write(path, lambda f: torch.save({"state_dict": state, **meta}, f))


def train_epoch(net: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, cfg: FinetuneConfig,
                device: torch.device) -> tuple[float, float]:
    """One epoch (at most ``max_steps`` steps): mean loss and top-1 accuracy (%)."""
    net.train()
    crit = nn.CrossEntropyLoss()
    total, correct, n = 0.0, 0, 0
    for step, (x, y) in enumerate(loader):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        out = net(x)
        loss = crit(out, y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.item() * y.size(0)
        correct += topk_correct(out, y, (1,))[0]
        n += y.size(0)
        if step % cfg.report_freq == 0:
            log.info(f"train {step:03d} {total / n:e} {100.0 * correct / n:f}")
    return total / max(n, 1), 100.0 * correct / max(n, 1)


@torch.no_grad()
def test_epoch(net: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean loss and top-1 accuracy (%) on the whole loader."""
    net.eval()
    total, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = net(x)
        total += nn.functional.cross_entropy(out, y, reduction="sum").item()
        correct += topk_correct(out, y, (1,))[0]
        n += y.size(0)
    if n == 0:
        raise DataFileError("the test set is empty")
    return total / n, 100.0 * correct / n


def run_dir_name(cfg: FinetuneConfig, data_label: str, seed: int) -> str:
    if cfg.model_config == "search" and cfg.bound_latency_ms is not None:
        return f"{data_label}-metaD2A-{cfg.bound}-{cfg.bound_latency_ms:g}ms-{seed}"
    if cfg.model_config == "search":
        return f"{data_label}-metaD2A-{cfg.bound}-{seed}"
    return f"{data_label}-nsganetV2-{cfg.model_config}-{seed}"


def finetune(cfg: FinetuneConfig, device: torch.device, argv: Sequence[str] = ()) -> dict[str, Any]:
    """Choose, build and fine-tune the subnet; write the run folder. Returns the summary.

    Raises:
        MetaD2AError: missing files, no architecture within the bound, bad flags.
    """
    from metad2a.search_spaces.ofa_mbv3.supernet import (
        build_supernet,
        ensure_supernet_weights,
        extract_subnet,
        net_size,
        new_classifier,
        read_supernet_weights,
        require_ofa,
    )
    from metad2a.seeding import seed_everything

    require_ofa()
    seed = cfg.seed if cfg.seed >= 0 else random.randint(1, 100000)  # the original's rule for --seed -1
    train_ds, test_ds, num_classes, desc, data_label = load_datasets(cfg)
    if cfg.model_config == "search":
        arch_file, archs = read_candidates(cfg.save_path, cfg.data_name, cfg.num_gen_arch)
    else:
        arch_file, archs = None, [nsganet_architecture(cfg.model_config, cfg.data_name)]
    if cfg.random_init:
        supernet, weights_desc = build_supernet(seed=0), "random initialisation (seed 0; --random-init)"
    else:
        weights = ensure_supernet_weights(cfg.weights, download=False)
        supernet, weights_desc = build_supernet(read_supernet_weights(weights), source=str(weights)), str(weights)
    latency = None
    if cfg.bound_latency_ms is not None:
        from metad2a.latency import LatencyMeter

        meter = LatencyMeter.open("ofa_mbv3", cfg.latency_device, cfg.latency_batch, cfg.latency_threads,
                                  cfg.img_size, cfg.latency_cache or paths.latency_cache(cfg.save_path))
        latency = (meter, num_classes, cfg.bound_latency_ms)
    line, arch, mflops_1000 = choose_architecture(supernet, archs, cfg.bound, cfg.num_gen_arch, latency)
    out = Path(cfg.save_path) / "evaluation" / run_dir_name(cfg, data_label, seed)
    out.mkdir(parents=True, exist_ok=True)
    logger = _file_logger(out / "log.txt")
    logger.info(f"args = {asdict(cfg)}")
    seed_everything(seed)
    logger.info(f"seed {seed}; device {device}; data {desc}; supernet weights {weights_desc}")
    if cfg.drop_path > 0:
        logger.info(f"note: --drop-path {cfg.drop_path} is not applied (NSGANetV2's drop-connect is omitted)")
    src = f"line {line + 1} of {arch_file}" if arch_file else cfg.model_config
    logger.info(f"architecture ({src}, {mflops_1000:.1f} MFLOPs with the 1000-class head at 224): {arch}")

    params_1000 = net_size(extract_subnet(supernet, arch), BOUND_RESOLUTION)[0]
    net = new_classifier(extract_subnet(supernet, arch), num_classes, cfg.drop).to(device)
    params, mflops = net_size(net, cfg.img_size)
    logger.info(f"#params {params:.2f}M, #flops {mflops:.0f}M")
    tag = f"net_flops@{round(mflops)}"
    write_json(out / f"{tag}.config", net.config, indent=4)
    info = {**ofa.canonical_arch_dict(arch), "mflops_1000_classes_224": mflops_1000,
            "params_m_1000_classes": params_1000, "num_classes": num_classes, "img_size": cfg.img_size,
            "mflops": mflops, "params_m": params, "source": src, "flops_rule": "multiply-accumulates of "
            "conv and linear layers without biases (once-for-all's count)"}
    if latency is not None:
        from metad2a.search_spaces.ofa_mbv3.latency_table import subnet_latencies

        info["latency_ms"] = subnet_latencies([arch], num_classes, latency[0])[0]
        info["latency"] = latency[0].describe()
    write_json(out / "subnet.json", info)

    g = torch.Generator().manual_seed(seed)
    train = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                       generator=g, drop_last=False, pin_memory=device.type == "cuda")
    test = DataLoader(test_ds, batch_size=cfg.test_batch_size, shuffle=False, num_workers=cfg.num_workers)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    best = {"epoch": None, "test_acc": -1.0}
    last: dict[str, Any] = {}
    t0 = time.time()
    for epoch in range(cfg.epochs):
        lr = opt.param_groups[0]["lr"]
        logger.info(f"epoch {epoch} lr {lr:e}")
        train_loss, train_acc = train_epoch(net, train, opt, cfg, device)
        logger.info(f"train acc {train_acc:f}")
        test_loss, test_acc = test_epoch(net, test, device)
        logger.info(f"valid acc {test_acc:f}")
        sched.step()
        last = {"epoch": epoch, "test_acc": test_acc, "test_loss": test_loss, "train_acc": train_acc,
                "train_loss": train_loss, "lr": lr, "seconds": round(time.time() - t0, 1)}
        append_text(out / "results.jsonl", to_json(last) + "\n")
        if test_acc > best["test_acc"]:
            best = {"epoch": epoch, "test_acc": test_acc}
            _save_state(net, out / f"{tag}.best", epoch=epoch, test_acc=test_acc)
    _save_state(net, out / f"{tag}.last", epoch=last["epoch"], test_acc=last["test_acc"])
    summary = {"data": data_label, "arch": ofa.canonical_arch_dict(arch), "source": src, "seed": seed,
               "epochs": cfg.epochs, "mflops": mflops, "params_m": params, "mflops_1000_classes_224": mflops_1000,
               "best": best, "last": {"epoch": last["epoch"], "test_acc": last["test_acc"]},
               "argv": list(argv), "note": "best is selected on the test set, as the original does "
               "(optimistic); last is the accuracy after the final epoch"}
    write_json(out / "summary.json", summary)
    logger.info(f"best test acc {best['test_acc']:.2f} (epoch {best['epoch']}, selected on the test set as the "
                f"original); last epoch test acc {last['test_acc']:.2f}; outputs in {out}")
    return summary


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The original ``evaluation/parser.py`` flags (same names and defaults) plus ours (marked new)."""
    p = argparse.ArgumentParser(prog="main.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                allow_abbrev=False,
                                description="Fine-tune the searched MobileNetV3 subnet "
                                            "(run from MetaD2A_ofa/evaluation/)")
    a = p.add_argument
    a("--save-path", "--save_path", dest="save_path", default="../results", help="results root of the search")
    a("--data-path", "--data_path", dest="data_path", default="../data", help="data root")
    a("--data-name", "--data_name", dest="data_name", default=None,
      help="cifar10, cifar100, aircraft100, pets, or an image folder with train/ and test/")
    a("--num-gen-arch", "--num_gen_arch", dest="num_gen_arch", type=int, default=200,
      help="selects results/meta_test/<data>/<N>/generated_arch/")
    a("--bound", type=int, default=None, help="MFLOPs upper bound (1000-class head, 3x224x224)")
    a("--seed", type=int, default=-1, help="random seed (-1: random in 1..100000)")
    a("--batch-size", "--batch_size", dest="batch_size", type=int, default=96, help="training batch")
    a("--num_workers", "--num-workers", dest="num_workers", type=int, default=2, help="DataLoader workers")
    a("--gpu", default="0", help="CUDA device (sets CUDA_VISIBLE_DEVICES); cpu forces the CPU")
    a("--lr", type=float, default=0.01, help="initial learning rate")
    a("--momentum", type=float, default=0.9, help="SGD momentum")
    a("--weight_decay", "--weight-decay", dest="weight_decay", type=float, default=4e-5, help="weight decay")
    a("--report_freq", "--report-freq", dest="report_freq", type=float, default=50, help="log every N steps")
    a("--epochs", type=int, default=150, help="training epochs (cosine schedule length)")
    a("--grad_clip", "--grad-clip", dest="grad_clip", type=float, default=5, help="gradient norm clipping")
    a("--cutout", action="store_true", default=True, help="Cutout (always on, as the original)")
    a("--cutout_length", "--cutout-length", dest="cutout_length", type=int, default=16, help="Cutout side")
    a("--autoaugment", action="store_true", default=True,
      help="AutoAugment CIFAR-10 policy (always on, as the original)")
    a("--topk", type=int, default=10, help="accepted; only the best and the last checkpoints are kept")
    a("--evaluate", action="store_true", help="accepted and unused (as in the original)")
    a("--model", default="resnet101", help="accepted and unused (as in the original)")
    a("--model-config", "--model_config", dest="model_config", default="search",
      help="search (the MetaD2A architecture) or flops@<N> (an NSGANetV2 architecture)")
    a("--initial-checkpoint", "--initial_checkpoint", dest="initial_checkpoint", default="",
      help="accepted and unused (as in the original)")
    a("--drop", type=float, default=0.2, help="classifier dropout")
    a("--drop-path", "--drop_path", dest="drop_path", type=float, default=0.2,
      help="NSGANetV2's drop-connect rate: accepted but not applied")
    a("--img-size", "--img_size", dest="img_size", type=int, default=224, help="image side")
    g = p.add_argument_group("new")
    g.add_argument("--no-cutout", action="store_true", help="turn Cutout off")
    g.add_argument("--no-autoaugment", action="store_true", help="turn AutoAugment off")
    g.add_argument("--test-batch-size", type=int, default=200, help="test batch")
    g.add_argument("--max-steps", type=int, default=None,
                   help="at most this many training steps per epoch (smoke tests)")
    g.add_argument("--ofa-weights", default=str(Path("..") / OFA_SUPERNET_TARGET), help="supernet ImageNet weights")
    g.add_argument("--random-init", action="store_true", help="random supernet weights instead (smoke tests only)")
    g.add_argument("--download", action="store_true", help="let torchvision download cifar/aircraft/pets")
    g.add_argument("--bound-latency-ms", dest="bound_latency_ms", type=float, default=None, metavar="MS",
                   help="also at most MS milliseconds (latency table of --latency-device at --img-size, the "
                        "dataset's head)")
    g.add_argument("--latency-device", dest="latency_device", default="cpu", help="cpu, cuda or cuda:<index>")
    g.add_argument("--latency-batch", dest="latency_batch", type=int, default=1, help="images per timed pass")
    g.add_argument("--latency-threads", dest="latency_threads", type=int, default=1,
                   help="torch intra-op threads while timing")
    g.add_argument("--latency-cache", dest="latency_cache", default=None,
                   help="latency cache folder or file (default <save-path>/latency, where the search keeps it)")
    return p


@user_command("interrupted")
def main(argv: list[str] | None = None) -> int:
    """``evaluation/main.py``: user errors become one line on stderr and exit status 2."""
    from metad2a.log import setup_logging
    from metad2a.runtime import select_device

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging()
    if not args.data_name:
        raise MetaD2AError("--data-name is required (cifar10, cifar100, aircraft100, pets or an image folder)")
    cfg = FinetuneConfig(
        data_name=args.data_name, save_path=Path(args.save_path), data_path=Path(args.data_path),
        num_gen_arch=args.num_gen_arch, bound=args.bound, seed=args.seed, batch_size=args.batch_size,
        test_batch_size=args.test_batch_size, num_workers=args.num_workers, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, report_freq=max(1, int(args.report_freq)), epochs=args.epochs,
        grad_clip=args.grad_clip, cutout=not args.no_cutout, cutout_length=args.cutout_length,
        autoaugment=not args.no_autoaugment, drop=args.drop, drop_path=args.drop_path, img_size=args.img_size,
        model_config=args.model_config, weights=Path(args.ofa_weights), random_init=args.random_init,
        max_steps=args.max_steps, download=args.download, bound_latency_ms=args.bound_latency_ms,
        latency_device=args.latency_device, latency_batch=args.latency_batch, latency_threads=args.latency_threads,
        latency_cache=Path(args.latency_cache) if args.latency_cache else None)
    finetune(cfg, select_device(args.gpu), argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
