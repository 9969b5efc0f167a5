"""Images for training a selected NB201 architecture (docs/fidelity.md#train-arch): 32x32 tensors, splits.

The original trains on the **training** split and evaluates every epoch on three loaders over the
**test** split: ``ori-test`` (all of it), ``x-valid`` and ``x-test`` (two halves given by
``<data>-test-split.txt``); the reported accuracy is ``x-test`` at the last epoch.

Transforms (no augmentation), as the original's ``get_datasets``: ``Resize((32, 32))`` ->
``ToTensor`` -> ``Normalize(mean, std)``, with grey images repeated to three channels (MNIST; we
convert to RGB before ``ToTensor``, which gives the same tensor). Normalisation per dataset
(:data:`metad2a.data.imaging.DATASET_NORMS`): MNIST 0.1307/0.3081, SVHN and CIFAR their own statistics, aircraft and pets the
ImageNet mean/std; data the original never trained on (scikit-learn ``digits``, image folders) use the
ImageNet mean/std too.

**Deviation:** the original's ``<data>-test-split.txt`` files (random halves drawn once by its authors)
are not available. :func:`test_halves` draws the halves from a fixed seed instead
(:data:`TEST_SPLIT_SEED`): ``x-valid`` = the first ``n // 2`` of a seeded permutation of the test
indices, ``x-test`` = the rest, the sizes the original's files have (mnist 5000/5000, svhn
13016/13016, aircraft 1666/1667, pets 554/555).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from metad2a.data.image_sources import RAW_DATA, SOURCES, ImageSource, build_source, image_folder
from metad2a.data.imaging import dataset_normalisation, image_error, image_read_errors, item_location, to_rgb
from metad2a.errors import DataFileError

IMAGE_SIZE = 32
TEST_SPLIT_SEED = 0
NO_RAW_FILES = ("digits",)  # bundled with scikit-learn: no folder under raw-data/
EVAL_LOADERS = ("ori-test", "x-valid", "x-test")
REPORTED_LOADER = "x-test"

# where the raw images come from, for the "missing raw data" error
GET_RAW_DATA = {
    "mnist": "run `python get_files/get_mnist.py`",
    "aircraft": "run `python get_files/get_aircraft.py`",
    "pets": "run `python get_files/get_pets.py`",
    "svhn": "put torchvision's SVHN files train_32x32.mat and test_32x32.mat there (the original let "
            "torchvision download them; this version never downloads during a run)",
}


def image_transform(key: str | None, size: int = IMAGE_SIZE) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalised float tensor ``[3, size, size]`` (the original's test = train transform)."""
    from torchvision import transforms as T

    mean, std = dataset_normalisation(key)
    return T.Compose([T.Lambda(to_rgb), T.Resize((size, size)), T.ToTensor(), T.Normalize(mean, std)])


def pixels_transform(size: int = IMAGE_SIZE) -> Callable[[Any], torch.Tensor]:
    """PIL image -> uint8 RGB tensor ``[3, size, size]``, resized as :func:`image_transform`
    (normalise later with :func:`normalise_pixels`)."""
    from torchvision import transforms as T

    return T.Compose([T.Lambda(to_rgb), T.Resize((size, size)), T.PILToTensor()])


def normalise_pixels(pixels: torch.Tensor, key: str | None) -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` -> the float tensor :func:`image_transform` gives for the same image."""
    mean, std = dataset_normalisation(key)
    x = pixels.float().div_(255.0)
    return x.sub_(torch.tensor(mean).view(3, 1, 1)).div_(torch.tensor(std).view(3, 1, 1))


class TransformedImages(Dataset):
    """Items ``(transform(image), label)`` of an :class:`ImageSource`."""

    def __init__(self, source: ImageSource, transform: Callable[[Any], torch.Tensor]) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            img, label = self.source.dataset[i]
            return self.transform(img), int(label)
        except image_read_errors() as e:
            raise image_error(e, item_location(self.source.dataset, i, f"{self.source.name} item {i}")) from e


def test_halves(n: int, seed: int = TEST_SPLIT_SEED) -> tuple[list[int], list[int]]:
    """``(x_valid, x_test)`` index lists: a seeded permutation of ``range(n)``, cut at ``n // 2``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[: n // 2]), sorted(perm[n // 2:])


@dataclass
class ArchTrainingData:
    """What :func:`metad2a.search_spaces.nasbench201.train.train_arch` trains and evaluates on.

    Attributes:
        name: dataset name.
        train: training images ``(tensor [3, 32, 32], label)``.
        test_sets: ``{"ori-test", "x-valid", "x-test"}`` over the test images.
        num_classes: classifier outputs.
        description: where the images came from (recorded in the log).
    """

    name: str
    train: Dataset
    test_sets: dict[str, Dataset]
    num_classes: int
    description: str


def raw_data_dir(data_path: str | Path, name: str) -> Path:
    """``<data-path>/raw-data/<folder>``: where the original keeps a dataset's raw images."""
    folder = SOURCES[name][1] if name in SOURCES else name
    return Path(data_path) / RAW_DATA / folder


def check_raw_data(data_path: str | Path, name: str) -> Path:
    """The raw-image folder of ``name``; a one-line error naming the fix when it is missing.

    Raises:
        DataFileError: the folder does not exist.
    """
    root = raw_data_dir(data_path, name)
    if not root.is_dir() and name not in NO_RAW_FILES:
        how = GET_RAW_DATA.get(name, f"put an image folder there ({root}/<class>/<image>, or train/<class>/ "
                                     "and test/<class>/)")
        if name in ("cifar10", "cifar100"):
            how = "CIFAR accuracies come from the NB201 table; pass --train-arch false"
        raise DataFileError(f"{root}: raw images of {name!r} not found (needed to train the selected "
                            f"architecture); {how}, or pass --train-arch false")
    return root


def load_arch_training_data(name: str, data_path: str | Path = "data",
                            split_seed: int = TEST_SPLIT_SEED) -> ArchTrainingData:
    """Training and test images of ``name`` from ``<data-path>/raw-data/<name>/``, 32x32.

    Args:
        name: ``mnist``, ``svhn``, ``aircraft``, ``pets``, another name of
            :data:`metad2a.data.image_sources.SOURCES`, or the name of an image folder
            ``<data-path>/raw-data/<name>/`` (split by its ``train/``/``test/`` sub-folders, or a
            seeded hold-out).
        data_path: data root.
        split_seed: seed of the x-valid/x-test halves (see the module docstring).

    Raises:
        DataFileError: missing or unreadable raw data, or test labels outside the training classes.
    """
    root = check_raw_data(data_path, name)
    if name in SOURCES:
        train = build_source(name, data_path, split="train")
        test = build_source(name, data_path, split="test")
    else:
        train, test = image_folder(root, "train"), image_folder(root, "test")
    if len(test.targets) < 2:
        raise DataFileError(f"{root}: {len(test.targets)} test image(s) for {name!r}, at least 2 are needed (the "
                            "x-valid and x-test halves); add a test/ folder or more images per class")
    if max(test.targets) >= train.num_classes:
        raise DataFileError(f"{root}: test labels reach {max(test.targets)}, but the training split has "
                            f"{train.num_classes} classes")
    key = train.key
    transform = image_transform(key)
    test_set = TransformedImages(test, transform)
    valid_idx, test_idx = test_halves(len(test_set), split_seed)
    test_sets: dict[str, Dataset] = {"ori-test": test_set, "x-valid": Subset(test_set, valid_idx),
                                     "x-test": Subset(test_set, test_idx)}
    desc = f"train: {train.description} ({len(train.targets)}); test: {test.description} ({len(test.targets)})"
    return ArchTrainingData(name, TransformedImages(train, transform), test_sets, train.num_classes, desc)


def load_pixels(source: ImageSource, indices: Sequence[int], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Images ``indices`` of ``source`` as one uint8 tensor ``[N, 3, size, size]`` (decoded once; ship
    this to workers and normalise there with :func:`normalise_pixels`)."""
    transform = pixels_transform(size)
    out = torch.empty(len(indices), 3, size, size, dtype=torch.uint8)
    for k, i in enumerate(indices):
        try:
            img, _ = source.dataset[i]
            out[k] = transform(img)
        except image_read_errors() as e:
            raise image_error(e, item_location(source.dataset, i, f"{source.name} item {i}")) from e
    return out
