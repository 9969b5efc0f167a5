"""A small OFA/MobileNetV3 data directory in the original formats, generated from a seed.

For tests and benchmarks: features are Gaussian clusters, accuracies a simple function of the
subnet plus noise, or any accuracy function given (such as OFA's accuracy predictor).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from metad2a import paths
from metad2a.checkpoint import save_data
from metad2a.data.formats import write_bylabel
from metad2a.data.imaging import IMAGENET_MEAN, IMAGENET_STD
from metad2a.data.synthetic import synthetic_features
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.collected_database import collected_database

OFA_DEFAULT_TARGETS = {"cifar10": 10, "cifar100": 100, "aircraft100": 100, "pets": 37}


def synthetic_ofa_accuracy(net: Mapping[str, Any], way: int) -> float:
    """A made-up ImageNet-task top-1 (%): larger kernels, expand ratios and depths help (only the
    layers a stage uses count), tasks with more classes are harder."""
    a = ofa.canonical_arch_dict(net)
    score = 0.0
    for i in range(ofa.NUM_LAYERS):
        if i % ofa.SLOTS_PER_STAGE < a["d"][i // ofa.SLOTS_PER_STAGE]:
            score += 0.4 * ofa.KS.index(a["ks"][i]) + 0.6 * ofa.EXPANDS.index(a["e"][i]) + 0.5
    return 55.0 + score - 4.0 * math.log10(max(way, 1))


def _ofa_test_transform() -> Any:
    """The database builder's validation transform (docs/data.md#collected-database), pickled into every entry
    as the original does; None when torchvision is not installed."""
    try:
        from torchvision import transforms
    except ImportError:
        return None
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def synthetic_ofa_entry(net: Mapping[str, Any], classes: Sequence[int], top1: float,
                        transform: Any = None) -> dict[str, Any]:
    """One ``collected_database.pt`` entry with the original keys (made-up loss/top5/params/flops)."""
    a = ofa.canonical_arch_dict(net)
    active = [i for i in range(ofa.NUM_LAYERS) if i % ofa.SLOTS_PER_STAGE < a["d"][i // ofa.SLOTS_PER_STAGE]]
    flops = 100.0 + sum(a["ks"][i] ** 2 * a["e"][i] * 0.5 for i in active)
    return {"loss": round(5.0 - top1 / 25.0, 4), "top1": float(top1), "top5": float(min(100.0, top1 + 15.0)),
            "net": {"wid": None, **a}, "class": torch.tensor(sorted(classes), dtype=torch.long),
            "params": round(2.0 + len(active) * 0.2, 3), "flops": round(flops, 2), "test_transform": transform}


def write_synthetic_ofa(
    data_path: str | Path,
    *,
    num_source_classes: int = 30,
    rows_per_class: int = 24,
    feature_dim: int = 512,
    ways: Sequence[int] = (2, 3, 5, 8),
    num_predictor_entries: int = 60,
    num_generator_entries: int = 40,
    candidates_per_task: int = 10,
    targets: Mapping[str, int] = OFA_DEFAULT_TARGETS,
    accuracy: Callable[[Mapping[str, Any], int], float] | None = None,
    noise: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write a tiny OFA data directory in the original formats.

    - ``imgnet32bylabel.pt`` with ``num_source_classes`` classes;
    - ``predictor/processed/collected_database.pt``: one random subnet per task;
    - ``generator/processed/collected_database.pt``: per task, the best of ``candidates_per_task``
      random subnets (the original keeps the one its predictor scores highest);
    - ``<name>bylabel.pt`` for each target.

    Tasks draw their class count from ``ways`` (the original: 10..990 of 1000 ImageNet classes) and
    sorted 0-based class indices. ``accuracy(net, way)`` gives top-1 in percent (default
    ``synthetic_ofa_accuracy``; e.g. OFA's accuracy predictor for ImageNet-like ground truth), plus
    Gaussian noise of sd ``noise``. No split files are written: the loader makes them.
    """
    root = Path(data_path)
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    acc_fn = accuracy or synthetic_ofa_accuracy
    if max(ways) > num_source_classes:
        raise ValueError(f"ways up to {max(ways)} need at least that many source classes, got {num_source_classes}")
    write_bylabel(synthetic_features(num_source_classes, rows_per_class, feature_dim, gen),
                  paths.bylabel(root, paths.IMAGENET32))
    transform = _ofa_test_transform()

    def task() -> list[int]:
        return sorted(rng.sample(range(num_source_classes), rng.choice(list(ways))))

    pred = []
    for _ in range(num_predictor_entries):
        classes, net = task(), ofa.random_arch_dict(rng)
        pred.append(synthetic_ofa_entry(net, classes, acc_fn(net, len(classes)) + rng.gauss(0, noise), transform))
    gen_db = []
    for _ in range(num_generator_entries):
        classes = task()
        cands = [ofa.random_arch_dict(rng) for _ in range(candidates_per_task)]
        scored = [(acc_fn(n, len(classes)), n) for n in cands]
        top1, net = max(scored, key=lambda t: t[0])
        gen_db.append(synthetic_ofa_entry(net, classes, top1 + rng.gauss(0, noise), transform))
    for kind, entries in (("predictor", pred), ("generator", gen_db)):
        save_data(entries, collected_database(root, kind))
    for name, c in targets.items():
        write_bylabel(synthetic_features(c, rows_per_class, feature_dim, gen), paths.bylabel(root, name))
    return root


def write_synthetic_released_checkpoints(save_path: str | Path, feature_dim: int = 512, seed: int = 0) -> Path:
    """Stand-ins for the released ``ckpt_120.pt`` and ``ckpt_max_corr.pt`` under ``save_path``: a
    generator that decodes only valid subnets and a random predictor. Its vertices are the depth-2
    types (2..10: any kernel size and expand ratio), valid at every position since every stage then
    has depth 2; a generator emitting every type would break the per-stage depth rule."""
    from metad2a.data.synthetic import write_synthetic_checkpoints
    from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3

    return write_synthetic_checkpoints(save_path, nvt=ofa.NVT, max_n=ofa.MAX_N,
                                       vertex_types=range(2, 2 + len(ofa.KS) * len(ofa.EXPANDS)),
                                       generator_epoch=OFA_MBV3.released_generator_epoch,
                                       feature_dim=feature_dim, seed=seed)
