"""Synthetic files for tests, benchmarks and demos: feature files (Gaussian clusters, one mean per
class) and raw images in the formats the original's datasets come in.

The released files cannot be downloaded here. Each search space's ``synthetic.py`` builds a whole
data directory in that space's original formats on top of these features; ``write_raw_images``
writes tiny image datasets in the layouts of docs/data.md#raw-data (MNIST idx files, SVHN ``.mat``,
CIFAR pickles, FGVC-Aircraft folders, the original's pets pickles). Nothing here claims to be real
data: torchvision's checksums of the real files do not match these (tests switch that check off).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def synthetic_features(num_classes: int, rows: int, dim: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``num_classes`` classes of ``rows`` non-negative ``dim``-d feature rows (ReLU of a Gaussian)."""
    means = torch.randn(num_classes, dim, generator=gen)
    return [(means[c] + 0.5 * torch.randn(rows, dim, generator=gen)).relu() for c in range(num_classes)]


RAW_FORMATS = ("mnist", "svhn", "cifar10", "cifar100", "aircraft", "aircraft100", "pets")


def _images(n: int, classes: int, size: int, channels: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """``n`` uint8 images [n, size, size, channels] whose brightness depends on the label, and the labels."""
    labels = [i % classes for i in range(n)]
    base = np.array(labels, dtype=float)[:, None, None, None] * (200.0 / max(classes - 1, 1))
    img = (base + rng.uniform(0, 55, (n, size, size, channels))).clip(0, 255).astype(np.uint8)
    return img, labels


def write_raw_images(root: str | Path, fmt: str, *, classes: int = 3, train: int = 12, test: int = 6,
                     size: int = 32, seed: int = 0) -> Path:
    """A tiny labelled image dataset in the file layout torchvision (or the original) reads from ``root``.

    Args:
        root: the folder the dataset's reader gets (``data/raw-data/mnist`` for ``mnist``, ...).
        fmt: one of :data:`RAW_FORMATS`. ``aircraft`` and ``aircraft100`` write the same FGVC
            folder (manufacturer, family and variant files name ``classes`` classes each).
        classes: classes used by the labels (MNIST, SVHN and CIFAR keep their fixed class lists).
        train, test: images per split.
        size: image side (MNIST: grey, others RGB).
        seed: seed of the pixels.

    Returns:
        ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if fmt == "mnist":
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for part, n in (("train", train), ("t10k", test)):
            img, labels = _images(n, classes, size, 1, rng)
            (raw / f"{part}-images-idx3-ubyte").write_bytes(
                struct.pack(">4B3i", 0, 0, 8, 3, n, size, size) + img[..., 0].tobytes())
            (raw / f"{part}-labels-idx1-ubyte").write_bytes(
                struct.pack(">4Bi", 0, 0, 8, 1, n) + bytes(labels))
    elif fmt == "svhn":
        from scipy.io import savemat

        root.mkdir(parents=True, exist_ok=True)
        for part, n in (("train", train), ("test", test)):
            img, labels = _images(n, classes, size, 3, rng)
            y = np.array([[lab if lab else 10] for lab in labels], dtype=np.uint8)  # SVHN labels 0 as 10
            savemat(root / f"{part}_32x32.mat", {"X": img.transpose(1, 2, 3, 0), "y": y})
    elif fmt in ("cifar10", "cifar100"):
        c100 = fmt == "cifar100"
        folder = root / ("cifar-100-python" if c100 else "cifar-10-batches-py")
        folder.mkdir(parents=True, exist_ok=True)
        key = "fine_labels" if c100 else "labels"
        names = [f"class{i}" for i in range(100 if c100 else 10)]
        files = [("train", train), ("test", test)] if c100 else \
            [*((f"data_batch_{i}", train // 5 + (i <= train % 5)) for i in range(1, 6)), ("test_batch", test)]
        for name, n in files:
            img, labels = _images(n, classes, 32, 3, rng)
            with open(folder / name, "wb") as f:
                pickle.dump({"data": img.transpose(0, 3, 1, 2).reshape(n, -1), key: labels}, f)
        with open(folder / ("meta" if c100 else "batches.meta"), "wb") as f:
            pickle.dump({"fine_label_names" if c100 else "label_names": names}, f)
    elif fmt in ("aircraft", "aircraft100"):
        from PIL import Image

        data = root / "fgvc-aircraft-2013b" / "data"
        (data / "images").mkdir(parents=True, exist_ok=True)
        levels = {"manufacturer": "manufacturers", "family": "families", "variant": "variants"}
        for level, file in levels.items():
            (data / f"{file}.txt").write_text("".join(f"{level} {i}\n" for i in range(classes)))
        k = 0
        for part, n in (("trainval", train), ("test", test)):
            img, labels = _images(n, classes, size, 3, rng)
            rows = []
            for im, lab in zip(img, labels):
                Image.fromarray(im).save(data / "images" / f"{k:07d}.jpg")
                rows.append((f"{k:07d}", lab))
                k += 1
            for level in levels:
                (data / f"images_{level}_{part}.txt").write_text("".join(f"{i} {level} {lab}\n" for i, lab in rows))
    elif fmt == "pets":
        from PIL import Image

        root.mkdir(parents=True, exist_ok=True)
        for name, n in (("train85.pth", train), ("test15.pth", test)):
            img, labels = _images(n, classes, size, 3, rng)
            torch.save([(Image.fromarray(im), lab) for im, lab in zip(img, labels)], root / name)
    else:
        raise ValueError(f"unknown raw image format {fmt!r}; one of {', '.join(RAW_FORMATS)}")
    return root


def write_synthetic_checkpoints(save_path: str | Path, *, nvt: int, max_n: int, vertex_types: Sequence[int],
                                generator_epoch: int, feature_dim: int = 512, seed: int = 0) -> Path:
    """Stand-ins for the released checkpoints, at their paths under ``save_path`` (README sizes):
    ``generator/model/ckpt_<generator_epoch>.pt`` and ``predictor/model/ckpt_max_corr.pt``.

    The generator's vertex head emits only ``vertex_types`` (uniformly) and its edge head every edge,
    so that every decoded graph is valid and the decoded architectures are ~uniform over the space;
    a random or briefly trained generator rarely decodes a valid one. The predictor is random. For
    tests and benchmarks of the search machinery, never for results.
    """
    from metad2a.checkpoint import save_checkpoint
    from metad2a.config import GENERATOR_HS, PREDICTOR_HS
    from metad2a.models.factory import build_model

    root = Path(save_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = build_model("generator", nvt=nvt, max_n=max_n, hs=GENERATOR_HS, nz=GENERATOR_HS, feature_dim=feature_dim)
        pred = build_model("predictor", nvt=nvt, max_n=max_n, hs=PREDICTOR_HS, nz=GENERATOR_HS,
                           feature_dim=feature_dim)
    with torch.no_grad():
        bias = torch.full((nvt,), -30.0)
        bias[list(vertex_types)] = 10.0
        gen.add_vertex[-1].weight.zero_()
        gen.add_vertex[-1].bias.copy_(bias)
        gen.add_edge[-1].weight.zero_()
        gen.add_edge[-1].bias.fill_(10.0)
    save_checkpoint(gen, root / "generator" / "model" / f"ckpt_{generator_epoch}.pt")
    save_checkpoint(pred, root / "predictor" / "model" / "ckpt_max_corr.pt")
    return root
