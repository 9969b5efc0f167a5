"""Labelled image sources for feature extraction (``process_dataset.py``, docs/data.md#raw-data).

Every source is an :class:`ImageSource`: a dataset whose item ``i`` is ``(PIL.Image, class_index)``,
the class index of every item (known without decoding images, so per-class subsets can be chosen
up front), the class names, and a description for the sidecar JSON.

Sources:

- ``cifar10``, ``cifar100``, ``mnist``, ``svhn``: torchvision, **training** split (as the original);
- ``aircraft``: torchvision ``FGVCAircraft``, manufacturer level (30 classes), ``trainval`` split
  (the split the original trains on); ``aircraft100``: the same images at variant level (100 classes);
- ``pets``: torchvision ``OxfordIIITPet`` (37 classes, ``trainval``), or the original's
  ``train85.pth`` (list of ``(PIL image, label)``, from ``get_files/get_pets.py``) when that is present;
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; always offline);
- any folder in torchvision ``ImageFolder`` layout (``root/<class>/<image>``; classes sorted by name).

Splits (``split=``): ``None`` keeps the behaviour above (the training split of a named dataset, every
image of a folder). ``"train"`` / ``"test"`` select the dataset's own halves (torchvision
train/test, FGVC ``trainval``/``test``, Pets ``trainval``/``test`` or the original ``train85.pth`` /
``test15.pth``), or, for a folder, its ``train/`` and ``test/`` sub-folders when it has both. A flat
folder and ``digits`` have no test split: there :func:`holdout_split` keeps a seeded
:data:`HOLDOUT_FRACTION` of every class for ``"test"`` (our choice; the original has no such sources).

Raw files live in ``<data-path>/raw-data/<name>/`` (the original layout: ``get_files/get_mnist.py``
and ``get_aircraft.py`` put them there). Nothing is downloaded unless ``download=True``.
Grey-scale images are returned as they are; the extraction transform converts every image to RGB
*before* normalising (the original appended the grey->RGB repeat after Normalize and crashed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from metad2a.data.imaging import broken_link_error
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.seeding import subset_generator

RAW_DATA = "raw-data"
SPLITS = (None, "train", "test")
HOLDOUT_FRACTION = 0.2  # share of each class held out as "test" where a source has no test split
HOLDOUT_SEED = 0


@dataclass
class ImageSource:
    """A labelled image collection.

    Attributes:
        name: default output name (``<name>bylabel.pt``).
        dataset: item ``i`` -> ``(PIL.Image, int)``.
        targets: class index of every item (0-based).
        class_names: one name per class index.
        description: where the images came from (recorded in the sidecar JSON).
        key: the known dataset this is (``cifar10``...), for dataset-specific normalisation; None for folders.
    """

    name: str
    dataset: Any
    targets: list[int]
    class_names: list[str]
    description: str
    key: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class _PairList:
    """Items from a list of ``(PIL image, label)`` pairs (the original's pickled pets split)."""

    def __init__(self, items: Sequence[Any], targets: list[int]) -> None:
        self.items, self.targets = items, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.items[i][0], self.targets[i]


class _GreyArrays:
    """Items from a uint8 array [N, H, W] of grey images and their labels."""

    def __init__(self, images: Any, targets: list[int]) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return Image.fromarray(self.images[i]), self.targets[i]  # uint8 [H, W] -> mode "L"


class _SortedFolder(ImageFolder):
    """torchvision ``ImageFolder`` with a given class list (hidden folders already left out)."""

    def __init__(self, root: str, classes: list[str]) -> None:
        self.given_classes = list(classes)
        super().__init__(root)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return list(self.given_classes), {c: i for i, c in enumerate(self.given_classes)}


class _PartialFolder(ImageFolder):
    """An ``ImageFolder`` holding only ``present`` of ``classes``, indexed as in ``classes``."""

    def __init__(self, root: str, classes: list[str], present: list[str]) -> None:
        self.given_classes, self.present = list(classes), list(present)
        super().__init__(root)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        index = {c: i for i, c in enumerate(self.given_classes)}
        return list(self.present), {c: index[c] for c in self.present}


class _Subset:
    """Items ``indices`` of another item list (a hold-out split)."""

    def __init__(self, dataset: Any, indices: list[int], targets: list[int]) -> None:
        self.dataset, self.indices, self.targets = dataset, indices, targets
        samples = getattr(dataset, "samples", None)  # keeps "which file" for error messages
        if samples is not None:
            self.samples = [samples[i] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.dataset[self.indices[i]]


def _check_split(split: str | None) -> None:
    if split not in SPLITS:
        raise MetaD2AError(f"unknown split {split!r}: use 'train', 'test' or None")


def holdout_split(source: ImageSource, split: str, fraction: float = HOLDOUT_FRACTION,
                  seed: int = HOLDOUT_SEED) -> ImageSource:
    """The ``"train"`` or ``"test"`` part of a source without its own test split.

    Every class with at least two images gives ``max(1, round(fraction * n))`` images, chosen by a
    generator seeded with ``(seed, class)``, to ``"test"`` and the rest to ``"train"``; a class with
    one image stays in ``"train"``. Items keep their dataset order, classes keep their indices.

    Args:
        source: all images.
        split: ``"train"`` or ``"test"``.
        fraction: share of each class held out for ``"test"``.
        seed: seed of the choice.

    Returns:
        A new source over the chosen items (same class names and key).
    """
    import torch

    per_class: list[list[int]] = [[] for _ in range(source.num_classes)]
    for i, t in enumerate(source.targets):
        per_class[t].append(i)
    test: set[int] = set()
    for c, idx in enumerate(per_class):
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        g = subset_generator(seed, c)
        test.update(idx[j] for j in torch.randperm(len(idx), generator=g)[:k].tolist())
    keep = [i for i in range(len(source.targets)) if (i in test) == (split == "test")]
    targets = [source.targets[i] for i in keep]
    return ImageSource(source.name, _Subset(source.dataset, keep, targets), targets, list(source.class_names),
                       f"{source.description}, {split} part of a seeded {fraction:.0%}-per-class hold-out "
                       f"(seed {seed})", source.key)


# --------------------------------------------------------------------------- torchvision datasets
def _not_found(name: str, root: Path, expect: str) -> DataFileError:
    return DataFileError(
        f"{name}: dataset files not found under {root} (expected {expect}); downloads are off: put the "
        f"torchvision {name} files there, pass --download on a machine with internet, or give an image folder"
    )


def _torchvision(name: str, root: Path, expect: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted. You can use download=True"
        raise _not_found(name, root, expect) from e
    except (OSError, ValueError) as e:  # download failed, or a truncated archive/.mat file
        reason = " ".join(str(e).split())
        raise DataFileError(f"{name}: cannot read the dataset under {root} ({reason})") from e


def _targets(ds: Any) -> list[int]:
    for attr in ("targets", "labels", "_labels"):
        t = getattr(ds, attr, None)
        if t is not None:
            return [int(v) for v in (t.tolist() if hasattr(t, "tolist") else t)]
    return [int(ds[i][1]) for i in range(len(ds))]


def _cifar(num: int) -> Callable[[Path, bool, str | None], ImageSource]:
    def build(root: Path, download: bool, split: str | None = None) -> ImageSource:
        from torchvision import datasets

        cls = datasets.CIFAR10 if num == 10 else datasets.CIFAR100
        folder = "cifar-10-batches-py/" if num == 10 else "cifar-100-python/"
        train = split != "test"
        ds = _torchvision(f"cifar{num}", root, folder, lambda: cls(str(root), train=train, download=download))
        return ImageSource(f"cifar{num}", ds, _targets(ds), list(ds.classes),
                           f"torchvision {cls.__name__} {'train' if train else 'test'} split at {root}",
                           f"cifar{num}")

    return build


def _mnist(root: Path, download: bool, split: str | None = None) -> ImageSource:
    from torchvision import datasets

    train = split != "test"
    ds = _torchvision("mnist", root, "MNIST/raw/",
                      lambda: datasets.MNIST(str(root), train=train, download=download))
    return ImageSource("mnist", ds, _targets(ds), list(ds.classes),
                       f"torchvision MNIST {'train' if train else 'test'} split at {root}", "mnist")


def _svhn(root: Path, download: bool, split: str | None = None) -> ImageSource:
    from torchvision import datasets

    part = "test" if split == "test" else "train"
    ds = _torchvision("svhn", root, f"{part}_32x32.mat",
                      lambda: datasets.SVHN(str(root), split=part, download=download))
    return ImageSource("svhn", ds, _targets(ds), [str(i) for i in range(10)],
                       f"torchvision SVHN {part} split at {root}", "svhn")


def _aircraft(level: str, name: str) -> Callable[[Path, bool, str | None], ImageSource]:
    def build(root: Path, download: bool, split: str | None = None) -> ImageSource:
        from torchvision import datasets

        part = "test" if split == "test" else "trainval"
        ds = _torchvision(name, root, "fgvc-aircraft-2013b/", lambda: datasets.FGVCAircraft(
            str(root), split=part, annotation_level=level, download=download))
        return ImageSource(name, ds, _targets(ds), list(ds.classes),
                           f"torchvision FGVCAircraft {part} split, {level} level, at {root}", name)

    return build


def _pets(root: Path, download: bool, split: str | None = None) -> ImageSource:
    legacy = root / ("test15.pth" if split == "test" else "train85.pth")
    if legacy.is_file() and not (root / "oxford-iiit-pet").is_dir():
        from metad2a.checkpoint import PIL_IMAGE_GLOBALS, load_data

        items = load_data(legacy, "python get_files/get_pets.py", allow=PIL_IMAGE_GLOBALS)
        if not isinstance(items, Sequence) or not all(isinstance(x, Sequence) and len(x) == 2 for x in items):
            raise DataFileError(f"{legacy}: expected a list of (PIL image, label) pairs")
        targets = [int(label) for _, label in items]
        names = [str(i) for i in range(max(targets) + 1)] if targets else []
        return ImageSource("pets", _PairList(items, targets), targets, names,
                           f"original {legacy.name} at {legacy}", "pets")
    from torchvision import datasets

    part = "test" if split == "test" else "trainval"
    ds = _torchvision("pets", root, "oxford-iiit-pet/ (or the original train85.pth)",
                      lambda: datasets.OxfordIIITPet(str(root), split=part, target_types="category",
                                                     download=download))
    return ImageSource("pets", ds, _targets(ds), list(ds.classes),
                       f"torchvision OxfordIIITPet {part} split at {root}", "pets")


def _digits(root: Path, download: bool, split: str | None = None) -> ImageSource:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise MetaD2AError("--dataset digits needs scikit-learn: pip install scikit-learn") from e
    import numpy as np

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # 0..16 -> 0..255 grey
    targets = [int(t) for t in d.target]
    source = ImageSource("digits", _GreyArrays(images, targets), targets, [str(n) for n in d.target_names],
                         "scikit-learn load_digits (8x8 grey)", "digits")
    return source if split is None else holdout_split(source, split)


# name -> (builder(root, download, split), folder under <data-path>/raw-data)
SOURCES: dict[str, tuple[Callable[[Path, bool, str | None], ImageSource], str]] = {
    "cifar10": (_cifar(10), "cifar10"),
    "cifar100": (_cifar(100), "cifar100"),
    "mnist": (_mnist, "mnist"),
    "svhn": (_svhn, "svhn"),
    "aircraft": (_aircraft("manufacturer", "aircraft"), "aircraft"),
    "aircraft100": (_aircraft("variant", "aircraft100"), "aircraft"),
    "pets": (_pets, "pets"),
    "digits": (_digits, "digits"),
}


# --------------------------------------------------------------------------- image folders
def _link_problem(link: Path, target: Path, top: Path, here: Path) -> str | None:
    """Why the folder link ``link`` (in the real folder ``here``) must not be followed, or None."""
    if target == here or target in here.parents:
        return "loops back to a folder that contains it"
    if target != top and top not in target.parents:
        return f"leaves its class folder {top}"
    return None


def scan_class_folder(folder: Path) -> int:
    """The image files of one class folder, counted the way ``ImageFolder`` finds them (all
    sub-folders, following links), after checking its links (docs/data.md#image-folders).

    A link to a folder is followed only when it stays inside the class folder and does not loop;
    a link that leaves it (into another class: images would be mixed) or loops (the same images
    again and again) is refused, as is a broken link.

    Raises:
        DataFileError: a broken link, or a folder link that leaves the class folder or loops (named).
    """
    top = folder.resolve()
    count, stack, seen = 0, [folder], set()
    while stack:
        d = stack.pop()
        here = d.resolve()
        if here in seen:  # two links to one folder: ImageFolder reads it twice, we count it once
            continue
        seen.add(here)
        with os.scandir(d) as entries:
            for e in entries:
                p = Path(e.path)
                if e.is_symlink() and not p.exists():
                    raise broken_link_error(p)
                if e.is_dir():
                    why = _link_problem(p, p.resolve(), top, here) if e.is_symlink() else None
                    if why:
                        raise DataFileError(f"{p}: a link to the folder {p.resolve()} that {why}; image "
                                            "folders follow only links that stay inside their class folder: "
                                            "remove it")
                    stack.append(p)
                elif e.is_file() and p.suffix.lower() in IMG_EXTENSIONS:
                    count += 1
    return count


def class_folders(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root``; a broken link among them is an error.

    Raises:
        DataFileError: a broken symbolic link in ``root`` (named).
    """
    for p in root.iterdir():
        if p.is_symlink() and not p.exists():
            raise broken_link_error(p)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_split_folders(path: str | Path) -> bool:
    """Whether ``path`` holds both a ``train/`` and a ``test/`` sub-folder (a pre-split image folder)."""
    return (Path(path) / "train").is_dir() and (Path(path) / "test").is_dir()


def image_folder(path: str | Path, split: str | None = None) -> ImageSource:
    """A folder in ``ImageFolder`` layout: one sub-folder per class (sorted by name; hidden ones skipped).

    Args:
        path: the folder.
        split: None = every image (``root/<class>/``). ``"train"``/``"test"``: ``root/train/<class>/``
            and ``root/test/<class>/`` when the folder has both (classes: those of ``train/``; ``test/``
            may lack some but must not add any), otherwise a seeded :func:`holdout_split` of the folder.

    Raises:
        DataFileError: the folder does not exist, has no class folders, or a class folder has no image.
    """
    _check_split(split)
    root = Path(path)
    if split is not None and has_split_folders(root):
        train = image_folder(root / "train")
        if split == "train":
            return ImageSource(root.resolve().name, train.dataset, train.targets, train.class_names,
                               f"image folder {(root / 'train').resolve()}")
        test_dir = root / "test"
        extra = sorted(set(class_folders(test_dir)) - set(train.class_names))
        if extra:
            raise DataFileError(f"{test_dir}: class folder(s) {', '.join(extra)} are not in {root / 'train'}; "
                                "give test/ the same classes as train/")
        present = [c for c in train.class_names if (test_dir / c).is_dir()]
        for c in present:
            scan_class_folder(test_dir / c)
        ds = _SortedFolder(str(test_dir), train.class_names) if present == train.class_names else \
            _PartialFolder(str(test_dir), train.class_names, present)
        return ImageSource(root.resolve().name, ds, list(ds.targets), list(train.class_names),
                           f"image folder {test_dir.resolve()}")
    if split is not None:
        return holdout_split(image_folder(root), split)
    if not root.is_dir():
        raise DataFileError(f"{root}: folder not found; --dataset takes a dataset name or an image folder "
                            "with one sub-folder per class")
    classes = class_folders(root)
    if not classes:
        raise DataFileError(f"{root}: no class folders; put the images of each class in their own sub-folder "
                            "(root/<class>/<image>.png)")

    empty = [c for c in classes if not scan_class_folder(root / c)]
    if empty:
        raise DataFileError(f"{root}: class folder(s) {', '.join(empty)} hold no image "
                            f"({', '.join(IMG_EXTENSIONS)}); add images or remove the folder(s)")

    ds = _SortedFolder(str(root), classes)
    return ImageSource(root.resolve().name, ds, list(ds.targets), classes, f"image folder {root.resolve()}")


# --------------------------------------------------------------------------- resolution
def build_source(dataset: str, data_path: str | Path = "data", download: bool = False,
                 split: str | None = None) -> ImageSource:
    """``dataset`` is an existing folder (ImageFolder layout) or one of :data:`SOURCES`.

    Args:
        dataset: a folder or a name of :data:`SOURCES` (files in ``<data_path>/raw-data/<folder>/``).
        data_path: data root.
        download: let torchvision download a named dataset.
        split: None (the behaviour described in the module docstring), ``"train"`` or ``"test"``.

    Raises:
        DataFileError: unknown name, missing folder or dataset files.
    """
    _check_split(split)
    p = Path(dataset)
    if p.is_dir():
        return image_folder(p, split)
    if dataset in SOURCES:
        build, folder = SOURCES[dataset]
        return build(Path(data_path) / RAW_DATA / folder, download, split)
    if p.suffix or len(p.parts) > 1 or dataset.startswith("."):
        return image_folder(p, split)  # raises "folder not found"
    raise DataFileError(f"unknown dataset {dataset!r}: use one of {', '.join(SOURCES)} or the path of an "
                        "image folder with one sub-folder per class")
