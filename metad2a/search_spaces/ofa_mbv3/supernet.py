"""Once-for-All MobileNetV3 subnets: supernet, weights, extraction, classifier heads, BN
re-calibration, evaluation and sizes (docs/fidelity.md#ofa-subnets).

The only module that imports the ``ofa`` package (0.1.x layout: ``pip install -e .[ofa]``). Only its
network code is used: ``OFAMobileNetV3``, ``set_active_subnet``, ``get_active_subnet`` and the
``LinearLayer`` head. The weights are read by :mod:`metad2a.checkpoint` (``weights_only=True``) and
downloaded by :mod:`metad2a.download`, never by ``ofa.model_zoo`` (whose loader reports network
failures as a misleading lock-file error and needs the undeclared ``gdown``).

Conventions kept from the original:

* supernet ``ofa_mbv3_d234_e346_k357_w1.0``: width 1.0, kernels {3,5,7}, expand ratios {3,4,6},
  depths {2,3,4}, a 1000-way ImageNet head, no dropout;
* a task's head is ``nn.Linear(1280, way)`` initialised with the rows of the task's classes of the
  1000-way head (``restrict_classifier``);
* BN statistics are re-estimated on training images: every BN layer's running mean and variance
  become the average (weighted by batch size) of its per-batch mean and biased variance, as
  once-for-all's ``set_running_statistics`` computes them (:func:`recalibrate_bn`, here for several
  subnets in one pass over the images);
* sizes: parameters in millions, and MFLOPs as once-for-all counts them (multiply-accumulates of
  convolutions and linear layers without biases) for one 3x224x224 image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metad2a.checkpoint import read_state_dict
from metad2a.errors import CheckpointError, DataFileError, MetaD2AError
from metad2a.evaluation.metrics import topk_correct
from metad2a.evaluation.net_size import count_flops, count_parameters
from metad2a.search_spaces.ofa_mbv3.cost import LAST_CHANNEL
from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_NAME, OFA_SUPERNET_TARGET, OFA_SUPERNET_URL
from metad2a.search_spaces.ofa_mbv3.subnet import DEPTHS, EXPANDS, KS, canonical_arch_dict

log = logging.getLogger("metad2a")

SUPERNET_KWARGS: dict[str, Any] = {"n_classes": 1000, "dropout_rate": 0.0, "width_mult": 1.0,
                                   "ks_list": list(KS), "expand_ratio_list": list(EXPANDS),
                                   "depth_list": list(DEPTHS)}
SIZE_RESOLUTION = 224  # params/FLOPs are always reported at 3x224x224, whatever the image size used
GET_SUPERNET = "python get_files/get_ofa_supernet.py"  # run in MetaD2A_ofa/


def require_ofa() -> Any:
    """The ``OFAMobileNetV3`` class of the ``ofa`` package.

    Raises:
        MetaD2AError: ``ofa`` is not installed.
    """
    try:
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    except ImportError as e:
        raise MetaD2AError("the MobileNetV3 database builder and evaluation need the once-for-all package: "
                           "pip install -e '.[ofa]' (ofa 0.1.x)") from e
    return OFAMobileNetV3


# --------------------------------------------------------------------------- supernet and weights
def ensure_supernet_weights(path: str | Path, download: bool = True, progress: bool = True) -> Path:
    """The supernet weights file at ``path``, downloaded first when missing and ``download`` is set.

    Raises:
        DataFileError: missing and ``download`` is off.
        DownloadError: the download failed (see :func:`metad2a.download.download_file`).
    """
    path = Path(path)
    if path.is_file():
        return path
    if not download:
        raise DataFileError(f"{path}: the {OFA_SUPERNET_NAME} ImageNet weights are missing; run `{GET_SUPERNET}` "
                            f"in MetaD2A_ofa/ (it saves {OFA_SUPERNET_TARGET}) or pass --ofa-weights PATH")
    from metad2a.download import download_file, mirror_url

    log.info(f"==> downloading the supernet weights {mirror_url(OFA_SUPERNET_URL)} -> {path}")
    return download_file(OFA_SUPERNET_URL, path, progress=progress)


def read_supernet_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The supernet's state_dict from its checkpoint (a dict with the weights under ``state_dict``)."""
    return read_state_dict(path, hint=f"it should be {OFA_SUPERNET_NAME} from `{GET_SUPERNET}`")


def build_supernet(state: Mapping[str, torch.Tensor] | None = None, seed: int | None = None,
                   source: str = "the supernet weights") -> nn.Module:
    """``OFAMobileNetV3`` of the ``ofa_mbv3_d234_e346_k357_w1.0`` shape, in eval mode.

    Args:
        state: its weights (the released ImageNet ones); None leaves the random initialisation
            (tests, and runs without the weights).
        seed: seeds the random initialisation (without changing the global RNG state).
        source: names the weights in errors.

    Raises:
        CheckpointError: ``state`` does not fit the supernet.
    """
    cls = require_ofa()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = cls(**SUPERNET_KWARGS)
    if state is not None:
        try:
            net.load_state_dict(dict(state))  # ofa's override maps the older key names
        except (AssertionError, ValueError, RuntimeError, KeyError) as e:
            msg = " ".join(str(e).split())[:200]
            raise CheckpointError(f"{source} do not fit {OFA_SUPERNET_NAME} ({type(e).__name__}: {msg}); "
                                  f"use the file `{GET_SUPERNET}` downloads") from e
    return net.eval()


# --------------------------------------------------------------------------- subnets
def set_subnet(supernet: nn.Module, arch: Mapping[str, Any]) -> dict[str, list[int]]:
    """Activate the subnet ``arch`` (a ks/e/d dict) in the supernet; returns the canonical dict."""
    a = canonical_arch_dict(arch)
    supernet.set_active_subnet(ks=a["ks"], e=a["e"], d=a["d"])
    return a


def extract_subnet(supernet: nn.Module, arch: Mapping[str, Any]) -> nn.Module:
    """A standalone MobileNetV3 (ofa's static network) with the subnet's weights copied out of the
    supernet, with the supernet's 1000-way head, on the supernet's device, in eval mode."""
    set_subnet(supernet, arch)
    return supernet.get_active_subnet(preserve_weight=True).eval()


def subnet_config(supernet: nn.Module, arch: Mapping[str, Any]) -> dict[str, Any]:
    """ofa's JSON config of the subnet (``MobileNetV3`` layers, 1000-way head)."""
    set_subnet(supernet, arch)
    return supernet.get_active_net_config()


def restrict_classifier(subnet: nn.Module, classes: Sequence[int]) -> nn.Module:
    """Replace the 1000-way head by ``nn.Linear(1280, len(classes))`` holding the rows of ``classes``
    (the original's task head: output ``i`` is ImageNet class ``classes[i]``)."""
    old = subnet.classifier.linear if hasattr(subnet.classifier, "linear") else subnet.classifier
    idx = torch.as_tensor(list(classes), dtype=torch.long, device=old.weight.device)
    head = nn.Linear(old.in_features, len(idx), bias=old.bias is not None).to(old.weight.device)
    with torch.no_grad():
        head.weight.copy_(old.weight.index_select(0, idx))
        if old.bias is not None:
            head.bias.copy_(old.bias.index_select(0, idx))
    subnet.classifier = head
    return subnet


def new_classifier(subnet: nn.Module, num_classes: int, dropout: float) -> nn.Module:
    """Replace the head by a fresh ofa ``LinearLayer(1280, num_classes, dropout_rate=dropout)`` (the
    fine-tuning head, docs/fidelity.md#ofa-evaluation), which keeps ``subnet.config`` valid."""
    from ofa.utils.layers import LinearLayer

    device = next(subnet.parameters()).device
    subnet.classifier = LinearLayer(LAST_CHANNEL, num_classes, dropout_rate=dropout).to(device)
    return subnet


def net_size(net: nn.Module, resolution: int = SIZE_RESOLUTION) -> tuple[float, float]:
    """``(params in M, MFLOPs)`` for one ``3 x resolution x resolution`` image, once-for-all's count."""
    return count_parameters(net) / 1e6, count_flops(net, (1, 3, resolution, resolution), bias=False) / 1e6


# --------------------------------------------------------------------------- BN re-calibration
@contextmanager
def _batch_statistics(nets: Sequence[nn.Module]):
    """While active, every BatchNorm2d normalises with its batch's own mean and biased variance and
    adds them (weighted by the batch size) to running sums. Yields ``{bn: [sum_mean, sum_var, n]}``."""
    sums: dict[nn.BatchNorm2d, list[Any]] = {}

    def stats_forward(bn: nn.BatchNorm2d):
        def forward(x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=(0, 2, 3))
            var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
            s = sums[bn]
            s[0] = s[0] + mean * x.size(0)
            s[1] = s[1] + var * x.size(0)
            s[2] += x.size(0)
            return F.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps)

        return forward

    bns = [m for net in nets for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        sums[bn] = [0.0, 0.0, 0]
        bn.forward = stats_forward(bn)  # an instance attribute shadows the class's forward
    try:
        yield sums
    finally:
        for bn in bns:
            del bn.forward


@torch.no_grad()
def recalibrate_bn(nets: Sequence[nn.Module], batches: Iterable[torch.Tensor | Sequence[Any]]) -> int:
    """Re-estimate the BN running statistics of every net from the same images (one pass).

    Args:
        nets: networks on one device.
        batches: image batches ``[b, 3, h, w]`` (or ``(images, labels)`` pairs).

    Returns:
        The number of images seen.

    Raises:
        DataFileError: no image at all.
    """
    device = next(nets[0].parameters()).device
    seen = 0
    with _batch_statistics(nets) as sums:
        for batch in batches:
            x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
            for net in nets:
                net(x)
            seen += x.size(0)
    if seen == 0:
        raise DataFileError("BN re-calibration got no image")
    for bn, (m, v, n) in sums.items():
        bn.running_mean.copy_(m / n)
        bn.running_var.copy_(v / n)
    return seen


@torch.no_grad()
def evaluate(nets: Sequence[nn.Module], batches: Iterable[Sequence[torch.Tensor]]) -> list[dict[str, float]]:
    """Cross-entropy (mean), top-1 and top-5 accuracy (%) of every net on the same labelled images.

    With fewer than 5 classes, top-5 counts the top ``num_classes``.
    """
    device = next(nets[0].parameters()).device
    loss = [0.0] * len(nets)
    c1 = [0] * len(nets)
    c5 = [0] * len(nets)
    n = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        for i, net in enumerate(nets):
            net.eval()
            out = net(x)
            loss[i] += F.cross_entropy(out, y, reduction="sum").item()
            k1, k5 = topk_correct(out, y, (1, 5))
            c1[i] += k1
            c5[i] += k5
        n += y.numel()
    if n == 0:
        raise DataFileError("evaluation got no image")
    return [{"loss": loss[i] / n, "top1": 100.0 * c1[i] / n, "top5": 100.0 * c5[i] / n} for i in range(len(nets))]
