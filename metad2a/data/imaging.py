"""Image conventions shared by every image pipeline: ImageNet statistics, the original's
per-dataset normalisation, and RGB conversion."""

from __future__ import annotations

import os
from typing import Any

from metad2a.errors import DataFileError

Norm = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per channel of a [0, 1] RGB input

IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
IMAGENET_NORM: Norm = (IMAGENET_MEAN, IMAGENET_STD)

# The Normalize() of the original's NB201 scripts per dataset (process_dataset.py and the training
# of searched cells); every other dataset (aircraft, pets, your own) uses ImageNet's statistics.
DATASET_NORMS: dict[str, Norm] = {
    "mnist": ((0.1307,) * 3, (0.3081,) * 3),
    "svhn": ((0.4376821, 0.4437697, 0.47280442), (0.19803012, 0.20101562, 0.19703614)),
    "cifar10": (tuple(v / 255 for v in (125.3, 123.0, 113.9)), tuple(v / 255 for v in (63.0, 62.1, 66.7))),
    "cifar100": (tuple(v / 255 for v in (129.3, 124.1, 112.4)), tuple(v / 255 for v in (68.2, 65.4, 70.4))),
}


def dataset_normalisation(key: str | None, default: Norm = IMAGENET_NORM) -> Norm:
    """(mean, std) of the original's Normalize() for a dataset key, ``default`` for others."""
    return DATASET_NORMS.get(key or "", default)


def to_rgb(img: Any) -> Any:
    """Any PIL image -> RGB (grey is repeated to three channels)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def image_read_errors() -> tuple[type[BaseException], ...]:
    """What reading one image file may raise: OSError (missing, truncated, not an image: PIL's
    UnidentifiedImageError), ValueError, and PIL's DecompressionBombError (an image of more pixels
    than PIL allows, which is not an OSError)."""
    from PIL import Image

    return (OSError, ValueError, Image.DecompressionBombError)


def image_error(err: BaseException, where: Any) -> DataFileError:
    """A one-line error naming the image file ``where`` and what is wrong with it."""
    from PIL import Image

    text = " ".join(str(err).split())
    if isinstance(err, Image.DecompressionBombError):
        return DataFileError(f"{where}: too large to read ({text}); PIL refuses it as a possible decompression "
                             "bomb: shrink the image or remove it")
    if isinstance(err, FileNotFoundError) and os.path.islink(str(where)):
        return broken_link_error(where)
    return DataFileError(f"{where}: cannot read the image ({text[:200]})")


def broken_link_error(link: Any) -> DataFileError:
    """The one-line error for a symbolic link whose target does not exist."""
    return DataFileError(f"{link}: broken symbolic link (to {os.readlink(str(link))}); remove it or fix it")


def item_location(dataset: Any, i: int, default: str) -> str:
    """The file of item ``i`` of an image dataset (ImageFolder-like ``samples``), else ``default``."""
    samples = getattr(dataset, "samples", None)
    return samples[i][0] if samples else default
