"""Small data directories in the original NB201 and OFA/MobileNetV3 formats, generated from a seed.

For tests, benchmarks and the offline quick start: the released files cannot be downloaded here.
Features are Gaussian clusters (one mean per class); accuracies follow a simple, learnable
function of the architecture plus noise. Nothing here claims to be real data.
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
from metad2a.data.formats import MetaTrainFile, write_bylabel, write_meta_train
from metad2a.search_spaces import nasbench201 as nb
from metad2a.search_spaces import ofa_mbv3 as ofa

DEFAULT_TARGETS = {"cifar10": 10, "cifar100": 100, "mnist": 10}


def synthetic_features(num_classes: int, rows: int, dim: int, gen: torch.Generator) -> list[torch.Tensor]:
    means = torch.randn(num_classes, dim, generator=gen)
    return [(means[c] + 0.5 * torch.randn(rows, dim, generator=gen)).relu() for c in range(num_classes)]


def synthetic_accuracy(arch_str: str, task: int = 0) -> float:
    """A made-up accuracy (%): convolutions help, 'none' hurts, plus a task offset."""
    ops = nb.arch_str_to_ops(arch_str)
    score = 3.0 * ops.count("nor_conv_3x3") + 1.5 * ops.count("nor_conv_1x1") - 2.0 * ops.count("none")
    return 60.0 + score + (task % 7) * 0.5


def write_synthetic_nb201(
    data_path: str | Path,
    *,
    num_source_classes: int = 40,
    classes_per_task: int = 20,
    rows_per_class: int = 24,
    feature_dim: int = 512,
    num_tasks: int = 60,
    num_predictor_entries: int = 200,
    targets: Mapping[str, int] = DEFAULT_TARGETS,
    with_nasbench201: bool = True,
    seed: int = 0,
) -> Path:
    """Write imgnet32bylabel.pt, the task list, both meta-train files with _idx, target
    ``<name>bylabel.pt`` files and (optionally) a nasbench201.pt over all 15,625 cells."""
    root = Path(data_path)
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    write_bylabel(synthetic_features(num_source_classes, rows_per_class, feature_dim, gen),
                  paths.bylabel(root, paths.IMAGENET32))
    tasks = [rng.sample(range(1, num_source_classes + 1), classes_per_task) for _ in range(num_tasks)]
    save_data(tasks, root / paths.META_TRAIN_TASK_LST)
    all_strs = list(nb.all_arch_strs())

    def noisy(a: str, t: int) -> float:
        return synthetic_accuracy(a, t) + rng.gauss(0, 0.5)

    pred = [(t, a) for t, a in ((rng.randrange(num_tasks), rng.choice(all_strs)) for _ in range(num_predictor_entries))]
    gen_entries = []
    for t in range(num_tasks):  # the generator database: each task's best of a few sampled cells
        cands = rng.sample(all_strs, 16)
        gen_entries.append((t, max(cands, key=lambda a: synthetic_accuracy(a, t))))
    for kind, entries in (("predictor", pred), ("generator", gen_entries)):
        perm = list(range(len(entries)))
        rng.shuffle(perm)
        mt = MetaTrainFile(acc=[noisy(a, t) for t, a in entries], task=[t for t, _ in entries],
                           graphs=[nb.arch_str_to_igraph(a) for _, a in entries], perm=perm)
        write_meta_train(mt, *paths.meta_train_tasks(root, kind))
    for name, c in targets.items():
        write_bylabel(synthetic_features(c, rows_per_class, feature_dim, gen), paths.bylabel(root, name))
    if with_nasbench201:
        save_data({"arch": {"str": all_strs, "igraph": [nb.arch_str_to_igraph(a) for a in all_strs]},
                   "test-acc": {d: [synthetic_accuracy(a) for a in all_strs] for d in ("cifar10", "cifar100")}},
                  root / paths.NASBENCH201)
    return root


# --------------------------------------------------------------------------- OFA / MobileNetV3
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
    """The database builder's validation transform (ORIGINAL.md §3.6), pickled into every entry
    as the original does; None when torchvision is not installed."""
    try:
        from torchvision import transforms
    except ImportError:
        return None
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


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
        save_data(entries, paths.collected_database(root, kind))
    for name, c in targets.items():
        write_bylabel(synthetic_features(c, rows_per_class, feature_dim, gen), paths.bylabel(root, name))
    return root
