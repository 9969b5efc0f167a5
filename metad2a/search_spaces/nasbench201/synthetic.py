"""A small NB201 data directory in the original formats, generated from a seed.

For tests, benchmarks and the offline quick start: features are Gaussian clusters, accuracies a
simple, learnable function of the cell plus noise (made up; nothing here claims to be real data).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import torch

from metad2a import paths
from metad2a.checkpoint import save_data
from metad2a.data.formats import MetaTrainFile, write_bylabel, write_meta_train
from metad2a.data.synthetic import synthetic_features
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.table import NASBENCH201_FILE

DEFAULT_TARGETS = {"cifar10": 10, "cifar100": 100, "mnist": 10}


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
                  root / NASBENCH201_FILE)
    return root


def write_synthetic_released_checkpoints(save_path: str | Path, feature_dim: int = 512, seed: int = 0) -> Path:
    """Stand-ins for the released ``ckpt_400.pt`` and ``ckpt_max_corr.pt`` under ``save_path``: a
    generator that decodes only valid cells (uniform operations) and a random predictor."""
    from metad2a.data.synthetic import write_synthetic_checkpoints
    from metad2a.search_spaces.nasbench201.space import NASBENCH201

    return write_synthetic_checkpoints(save_path, nvt=nb.NVT, max_n=nb.MAX_N, vertex_types=range(2, nb.NVT),
                                       generator_epoch=NASBENCH201.released_generator_epoch,
                                       feature_dim=feature_dim, seed=seed)
