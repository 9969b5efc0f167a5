"""A per-layer latency lookup table of the MobileNetV3 space, measured on the user's device
(docs/fidelity.md#budget-ofa, docs/data.md#latency-cache).

A subnet's latency is the sum of the table entries of its parts:

* ``stem``: the first conv (3x3, stride 2) and the first, fixed MBConv block, on ``[b, 3, r, r]``;
* ``block:s<stage>:<first|rest>:k<k>:e<e>``: one MBConv layer (with its residual connection, as
  the subnet runs it) for each stage, for the stage's first layer (the previous stage's width, the
  stage's stride) and for its later layers (the stage's width, stride 1), each kernel and expand
  ratio: 5 x 2 x 3 x 3 = 90 layers, on the input side they meet at resolution ``r``;
* ``head|classes=<n>``: final expand, global pooling, feature mix and the ``num_classes`` classifier.

The modules are the once-for-all static layers extracted from a randomly initialised supernet
(latency does not depend on weight values), so they are exactly the layers of an extracted subnet.
The table is measured once per fingerprint (``metad2a.latency``); the head of a new class count is
added when first needed. Needs the ``ofa`` package (``pip install -e '.[ofa]'``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from metad2a.latency import LatencyMeter
from metad2a.search_spaces.ofa_mbv3.cost import (
    STAGE_STRIDES,
    STAGE_WIDTHS,
    active_layers,
    all_layer_specs,
    conv_out,
    stage_inputs,
)
from metad2a.search_spaces.ofa_mbv3.subnet import DEPTHS, EXPANDS, KS, NUM_LAYERS, NUM_STAGES, SLOTS_PER_STAGE

log = logging.getLogger("metad2a")

STEM_KEY = "stem"


def head_key(num_classes: int) -> str:
    return f"head|classes={num_classes}"


class Head(nn.Module):
    """The tail of ofa's ``MobileNetV3.forward`` as one module: final expand, global average pooling,
    feature mix, flatten, classifier."""

    def __init__(self, final_expand_layer: nn.Module, feature_mix_layer: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.final_expand_layer, self.feature_mix_layer, self.classifier = (
            final_expand_layer, feature_mix_layer, classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(x.view(x.size(0), -1))


def table_keys(arch: Mapping[str, Any], num_classes: int, resolution: int) -> list[str]:
    """The entries whose sum is the subnet's latency."""
    return [STEM_KEY, *(spec.key for spec in active_layers(arch, resolution)), head_key(num_classes)]


def table_modules(resolution: int, num_classes: int, keys: Sequence[str] | None = None
                  ) -> dict[str, tuple[nn.Module, tuple[int, int, int]]]:
    """``key -> (module, input shape without the batch)`` for the table entries ``keys`` (all by default).

    One static subnet is extracted per (kernel, expand ratio) with every stage at depth 4: its
    slot 0 of a stage is the stage's first layer, its slot 1 a later layer.
    """
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet, extract_subnet, new_classifier

    specs = {s.key: s for s in all_layer_specs(resolution)}
    wanted = set(keys) if keys is not None else {STEM_KEY, head_key(num_classes), *specs}
    supernet = build_supernet(seed=0)
    out: dict[str, tuple[nn.Module, tuple[int, int, int]]] = {}
    for k in KS:
        for e in EXPANDS:
            need = [s for s in specs.values() if s.k == k and s.e == e and s.key in wanted]
            first_pair = k == KS[0] and e == EXPANDS[0]
            if not need and not (first_pair and wanted & {STEM_KEY, head_key(num_classes)}):
                continue
            net = extract_subnet(supernet, {"ks": [k] * NUM_LAYERS, "e": [e] * NUM_LAYERS,
                                            "d": [max(DEPTHS)] * NUM_STAGES})
            for s in need:
                block = net.blocks[1 + s.stage * SLOTS_PER_STAGE + (0 if s.first else 1)]
                out[s.key] = (block, (s.c_in, s.h_in, s.h_in))
            if first_pair:  # the stem and the head do not depend on the choices
                if STEM_KEY in wanted:
                    out[STEM_KEY] = (nn.Sequential(net.first_conv, net.blocks[0]), (3, resolution, resolution))
                if head_key(num_classes) in wanted:
                    net = new_classifier(net, num_classes, 0.0)
                    side = conv_out(stage_inputs(resolution)[-1][1], STAGE_STRIDES[-1])
                    out[head_key(num_classes)] = (Head(net.final_expand_layer, net.feature_mix_layer, net.classifier),
                                                  (STAGE_WIDTHS[-1], side, side))
    return out


def ensure_entries(meter: LatencyMeter, keys: Sequence[str], num_classes: int) -> int:
    """Measure the entries among ``keys`` the meter's cache lacks (building the modules once);
    returns how many were measured. The cache is saved afterwards."""
    missing = [k for k in dict.fromkeys(keys) if meter.cache.get(k) is None]
    if not missing:
        return 0
    t0 = time.time()
    if len(missing) > 2:
        log.info(f"==> measuring {len(missing)} latency table entries on {meter.cache.fingerprint['device']} "
                 f"(batch {meter.batch}, {meter.threads} thread(s), {meter.input_size}px; once per device)")
    with torch.random.fork_rng(devices=[]):
        modules = table_modules(meter.input_size, num_classes, missing)
    for key in missing:
        module, shape = modules[key]
        meter.cache.put(key, meter.time(module, (meter.batch, *shape)))
    meter.cache.save()
    if len(missing) > 2:
        log.info(f"==> latency table entries measured in {time.time() - t0:.1f}s -> {meter.cache.path}")
    return len(missing)


def build_table(meter: LatencyMeter, num_classes: int) -> int:
    """Every entry of the table (stem, 90 layers, the ``num_classes`` head); returns the entry count."""
    keys = [STEM_KEY, *(s.key for s in all_layer_specs(meter.input_size)), head_key(num_classes)]
    ensure_entries(meter, keys, num_classes)
    return len(keys)


def subnet_latencies(archs: Sequence[Mapping[str, Any]], num_classes: int, meter: LatencyMeter) -> list[float]:
    """Each subnet's latency (ms): the sum of its table entries. A table that lacks layers is
    completed first (all 90, so that it is measured once), a head for a new class count added."""
    keys = [table_keys(a, num_classes, meter.input_size) for a in archs]
    needed = {k for ks in keys for k in ks}
    if any(meter.cache.get(k) is None for k in needed - {head_key(num_classes)}):
        needed |= {STEM_KEY, *(s.key for s in all_layer_specs(meter.input_size))}
    ensure_entries(meter, sorted(needed), num_classes)
    return [sum(meter.cache.entries[k] for k in ks) for ks in keys]
