"""An ImageNet-layout folder for the OFA database builder (docs/data.md#imagenet-folder): ``<root>/train/<wnid>/``
and ``<root>/val/<wnid>/``, one sub-folder per class.

Class ``c`` is the ``c``-th wnid of ``val/`` in sorted order (0-based), the convention of the original
collected database. The raw ILSVRC2012 validation archive unpacks into one flat folder; it must be
sorted into one folder per class first (the usual ``valprep.sh``).

Image choices are seeded, never file-system order (which made the original's "first 10 files of
glob" differ between machines, docs/fidelity.md#ofa-db-images): :func:`choose_val_files` takes a seeded sample
of each class's sorted file list, :func:`choose_train_files` a seeded sample of all training images.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from metad2a.data.image_sources import class_folders
from metad2a.data.imaging import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    broken_link_error,
    image_error,
    image_read_errors,
    to_rgb,
)
from metad2a.errors import DataFileError
from metad2a.seeding import stable_seed

CROP_FRACTION = 0.875  # the validation resize: ceil(224 / 0.875) = 256, then a 224 centre crop


def image_files(folder: Path) -> list[str]:
    """Sorted names of the image files directly in ``folder`` (torchvision's extensions, any case)."""
    return sorted(e.name for e in _scandir(folder) if e.name.lower().endswith(IMG_EXTENSIONS))


def _scandir(folder: Path) -> list[Any]:
    """The visible files directly in ``folder``; a broken link is an error that names it."""
    with os.scandir(folder) as it:
        entries = list(it)
    for e in entries:
        if e.is_symlink() and not os.path.exists(e.path):
            raise broken_link_error(e.path)
    return [e for e in entries if e.is_file() and not e.name.startswith(".")]


@dataclass(frozen=True)
class ImagenetFolder:
    """The class list of an ImageNet-layout folder.

    Attributes:
        root: the folder (absolute).
        wnids: class folder names of ``val/``, sorted; class ``c`` is ``wnids[c]``.
    """

    root: Path
    wnids: list[str]

    @staticmethod
    def open(root: str | Path) -> ImagenetFolder:
        """Check the layout and read the class list.

        Raises:
            DataFileError: no ``train/`` or ``val/`` folder, or ``val/`` without class folders.
        """
        root = Path(root).resolve()
        layout = "--imgnet expects an ImageNet folder with train/<wnid>/ and val/<wnid>/ sub-folders"
        if not root.is_dir():
            raise DataFileError(f"{root}: folder not found; {layout}")
        for part in ("train", "val"):
            if not (root / part).is_dir():
                raise DataFileError(f"{root}: no {part}/ folder; {layout}")
        wnids = class_folders(root / "val")
        if not wnids:
            raise DataFileError(f"{root / 'val'}: no class folders; {layout} (sort the flat ILSVRC2012 "
                                "validation images into one folder per class, e.g. with valprep.sh)")
        return ImagenetFolder(root, wnids)

    @property
    def num_classes(self) -> int:
        return len(self.wnids)


def choose_val_files(folder: ImagenetFolder, per_class: int, seed: int) -> list[list[str]]:
    """Per class, ``per_class`` files of ``val/<wnid>/`` (all when it has fewer) as paths relative to
    the root: a sample seeded by ``(seed, wnid)`` of the sorted file list, in sorted order.

    Raises:
        DataFileError: a class folder without images.
    """
    out = []
    for wnid in folder.wnids:
        files = image_files(folder.root / "val" / wnid)
        if not files:
            raise DataFileError(f"{folder.root / 'val' / wnid}: no image files")
        pick = sorted(random.Random(stable_seed(seed, "val", wnid)).sample(files, min(per_class, len(files))))
        out.append([f"val/{wnid}/{f}" for f in pick])
    return out


def choose_train_files(folder: ImagenetFolder, count: int, seed: int) -> list[str]:
    """``count`` training images (all when there are fewer), a sample seeded by ``seed`` of every
    image of ``train/`` (sorted by class folder, then name), as paths relative to the root.

    Raises:
        DataFileError: ``train/`` holds no image.
    """
    files = [f"train/{wnid}/{f}" for wnid in class_folders(folder.root / "train")
             for f in image_files(folder.root / "train" / wnid)]
    if not files:
        raise DataFileError(f"{folder.root / 'train'}: no images in its class folders (needed for BN "
                            "re-calibration)")
    return random.Random(stable_seed(seed, "bn")).sample(files, min(count, len(files)))


def val_transform(image_size: int = 224) -> transforms.Compose:
    """The original's validation transform (stored as ``test_transform`` in every database entry):
    Resize(ceil(size / 0.875)), CenterCrop(size), ToTensor, ImageNet Normalize."""
    return transforms.Compose([transforms.Resize(math.ceil(image_size / CROP_FRACTION)),
                               transforms.CenterCrop(image_size), transforms.ToTensor(),
                               transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def bn_transform(image_size: int = 224) -> transforms.Compose:
    """The original's training transform for BN re-calibration: RandomResizedCrop(size, scale
    (0.08, 1)), horizontal flip, 'tf' colour distortion (brightness 32/255, saturation 0.5), ToTensor,
    ImageNet Normalize."""
    return transforms.Compose([transforms.RandomResizedCrop(image_size, scale=(0.08, 1.0)),
                               transforms.RandomHorizontalFlip(),
                               transforms.ColorJitter(brightness=32.0 / 255.0, saturation=0.5),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class FileImages(Dataset):
    """Images ``root / path`` with their labels, converted to RGB, through ``transform``; an unreadable
    file raises :class:`DataFileError` naming it.

    Args:
        root: the folder the paths are relative to.
        items: ``(relative path, label)`` pairs.
        transform: PIL image -> tensor.
    """

    def __init__(self, root: str | Path, items: Sequence[tuple[str, int]], transform: Any) -> None:
        self.root, self.items, self.transform = Path(root), list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        rel, label = self.items[i]
        path = self.root / rel
        try:
            with Image.open(path) as img:
                return self.transform(to_rgb(img)), int(label)
        except image_read_errors() as e:  # also in a DataLoader worker: the message names the file
            raise image_error(e, path) from e
