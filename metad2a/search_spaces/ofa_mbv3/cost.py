"""Sizes of a MobileNetV3 subnet in closed form, and the layer plan its latency table is built on
(docs/fidelity.md#budget-ofa).

Parameters and MFLOPs equal once-for-all's count of the extracted static subnet with a
``Linear(1280, num_classes)`` head (``supernet.net_size``: every parameter; multiply-accumulates of
convolutions and linear layers without bias terms) for one ``3 x r x r`` image, without building
the supernet: the network is the fixed stem (3x3 conv, stride 2, and the first MBConv block at 16
channels), the active MBConv layers of the five stages, and the fixed head (1x1 final expand to
960, global pooling, 1x1 feature mix to 1280, linear classifier). An MBConv layer with input width
``c_in``, output width ``c_out``, kernel ``k``, expand ratio ``e`` and stride ``s`` has
``mid = make_divisible(round(c_in * e), 8)`` channels: 1x1 expand conv + BN, depth-wise ``k x k``
conv + BN, a squeeze-excite module in SE stages (1x1 convs ``mid -> make_divisible(mid // 4, 8) ->
mid`` with biases, on the pooled 1x1 map), and a 1x1 projection + BN. Convolutions pad ``k // 2``,
so a stride-``s`` layer maps ``h`` to ``ceil(h / s)``. Pure Python: no ``ofa`` import.
``tests/test_budget.py::test_ofa_closed_form_equals_the_supernet_count`` compares it with the
supernet on random subnets at several class counts and resolutions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from metad2a.search_spaces.ofa_mbv3.subnet import (
    EXPANDS,
    KS,
    NUM_STAGES,
    SLOTS_PER_STAGE,
    canonical_arch_dict,
)

STEM_WIDTH = 16  # first conv output and the first (fixed, expand-1) MBConv block
STAGE_WIDTHS = (24, 40, 80, 112, 160)  # output width of the five elastic stages
STAGE_STRIDES = (2, 2, 2, 1, 2)  # stride of each stage's first layer
STAGE_SE = (False, True, False, True, True)  # squeeze-excite in the stage's layers
FINAL_EXPAND_WIDTH = 960
LAST_CHANNEL = 1280  # input width of the classifier
SE_REDUCTION = 4
CHANNEL_DIVISIBLE = 8


def make_divisible(v: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """once-for-all's (and TF-slim's) channel rounding: the nearest multiple of ``divisor``, at least
    ``divisor``, never more than 10 % below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_out(h: int, stride: int) -> int:
    """Output side of a same-padded (``k // 2``) convolution with an odd kernel: ``ceil(h / stride)``."""
    return (h - 1) // stride + 1


@dataclass(frozen=True)
class LayerSpec:
    """One MBConv layer as the latency table keys it: stage, whether it is the stage's first layer
    (stride and input width of the previous stage) or a later one (stride 1, the stage's width),
    kernel, expand ratio, and the shapes it meets at a resolution."""

    stage: int
    first: bool
    k: int
    e: int
    c_in: int
    c_out: int
    stride: int
    se: bool
    h_in: int

    @property
    def key(self) -> str:
        return f"block:s{self.stage}:{'first' if self.first else 'rest'}:k{self.k}:e{self.e}"


def stage_inputs(resolution: int) -> list[tuple[int, int]]:
    """``(input width, input side)`` of each stage's first layer at an input ``resolution``."""
    h = conv_out(resolution, 2)  # stem conv, stride 2; the first block keeps the side
    out, c = [], STEM_WIDTH
    for stage in range(NUM_STAGES):
        out.append((c, h))
        h, c = conv_out(h, STAGE_STRIDES[stage]), STAGE_WIDTHS[stage]
    return out


def layer_spec(stage: int, first: bool, k: int, e: int, resolution: int) -> LayerSpec:
    """The layer at ``stage`` (its first or a later slot) with kernel ``k`` and expand ratio ``e``."""
    c_prev, h_prev = stage_inputs(resolution)[stage]
    c_out, stride = STAGE_WIDTHS[stage], STAGE_STRIDES[stage]
    if first:
        return LayerSpec(stage, True, k, e, c_prev, c_out, stride, STAGE_SE[stage], h_prev)
    return LayerSpec(stage, False, k, e, c_out, c_out, 1, STAGE_SE[stage], conv_out(h_prev, stride))


def all_layer_specs(resolution: int) -> list[LayerSpec]:
    """Every layer configuration a subnet can contain at ``resolution``: 5 stages x (first, later)
    x kernels x expand ratios = 90."""
    return [layer_spec(s, first, k, e, resolution)
            for s in range(NUM_STAGES) for first in (True, False) for k in KS for e in EXPANDS]


def active_layers(arch: Mapping[str, Any], resolution: int) -> Iterator[LayerSpec]:
    """The layers of a subnet in forward order (slots beyond a stage's depth are skipped)."""
    a = canonical_arch_dict(arch)
    for s in range(NUM_STAGES):
        for j in range(a["d"][s]):
            i = s * SLOTS_PER_STAGE + j
            yield layer_spec(s, j == 0, a["ks"][i], a["e"][i], resolution)


def mbconv_size(spec: LayerSpec) -> tuple[int, int]:
    """``(parameters, multiply-accumulates)`` of one MBConv layer (no bias MACs)."""
    mid = make_divisible(round(spec.c_in * spec.e))
    h_out = conv_out(spec.h_in, spec.stride)
    params = macs = 0
    if spec.e != 1:  # 1x1 expand + BN at the input side
        params += spec.c_in * mid + 2 * mid
        macs += spec.c_in * mid * spec.h_in * spec.h_in
    params += spec.k * spec.k * mid + 2 * mid  # depth-wise conv + BN
    macs += spec.k * spec.k * mid * h_out * h_out
    if spec.se:  # on the pooled 1x1 map; the convs have biases (parameters, no MACs)
        se_mid = make_divisible(mid // SE_REDUCTION)
        params += 2 * mid * se_mid + se_mid + mid
        macs += 2 * mid * se_mid
    params += mid * spec.c_out + 2 * spec.c_out  # 1x1 projection + BN
    macs += mid * spec.c_out * h_out * h_out
    return params, macs


def stem_size(resolution: int) -> tuple[int, int]:
    """The first conv (3x3, stride 2, + BN) and the first block (expand 1, 3x3, 16 -> 16)."""
    h = conv_out(resolution, 2)
    params, macs = 27 * STEM_WIDTH + 2 * STEM_WIDTH, 27 * STEM_WIDTH * h * h
    p, m = mbconv_size(LayerSpec(-1, True, 3, 1, STEM_WIDTH, STEM_WIDTH, 1, False, h))
    return params + p, macs + m


def head_size(resolution: int, num_classes: int) -> tuple[int, int]:
    """Final expand (1x1 + BN, at the last stage's side), feature mix (1x1 on the pooled map, no
    bias, no BN) and the ``Linear(1280, num_classes)`` classifier (its bias counts as parameters)."""
    h = conv_out(stage_inputs(resolution)[-1][1], STAGE_STRIDES[-1])
    c = STAGE_WIDTHS[-1]
    params = c * FINAL_EXPAND_WIDTH + 2 * FINAL_EXPAND_WIDTH + FINAL_EXPAND_WIDTH * LAST_CHANNEL
    macs = c * FINAL_EXPAND_WIDTH * h * h + FINAL_EXPAND_WIDTH * LAST_CHANNEL
    return params + LAST_CHANNEL * num_classes + num_classes, macs + LAST_CHANNEL * num_classes


def subnet_size(arch: Mapping[str, Any], num_classes: int, resolution: int) -> tuple[int, int]:
    """``(parameters, multiply-accumulates)`` of the subnet with a ``num_classes`` head for one
    ``3 x resolution x resolution`` image.

    Raises:
        ArchDictError: ``arch`` is not a subnet of the space.
    """
    params, macs = stem_size(resolution)
    for spec in active_layers(arch, resolution):
        p, m = mbconv_size(spec)
        params, macs = params + p, macs + m
    p, m = head_size(resolution, num_classes)
    return params + p, macs + m
