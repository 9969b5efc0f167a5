"""A per-layer latency lookup table of the MobileNetV3 space, measured on the user's device
(docs/fidelity.md#budget-ofa, docs/data.md#latency-cache).

A subnet's latency is the sum of the table entries of its parts:

* ``stem``: the first conv (3x3, stride 2) and the first, fixed MBConv block;
* ``block:s<stage>:<first|rest>:k<k>:e<e>``: one MBConv layer (with its residual connection, as
  the subnet runs it) for each stage, for the stage's first layer (the previous stage's width, the
  stage's stride) and for its later layers (the stage's width, stride 1), each kernel and expand
  ratio: 5 x 2 x 3 x 3 = 90 layers, at the input side each meets at resolution ``r``;
* ``head|classes=<n>``: final expand, global pooling, feature mix, the ``num_classes`` classifier
  and the network's glue between its modules (a whole network's median minus its layers' medians).

Every entry is timed **in context**: inside one of 9 whole subnets (one per kernel and expand ratio,
every stage at depth 4) run forward on ``[b, 3, r, r]`` images, by forward hooks around each layer
(``in_context_samples``). The subnets are extracted from a randomly initialised supernet (latency
does not depend on weight values), so the layers are exactly those of an extracted subnet. The
table is measured once per fingerprint (``metad2a.latency``); the head of a new class count is
added when first needed. Needs the ``ofa`` package (``pip install -e '.[ofa]'``).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from metad2a.latency import LatencyMeter
from metad2a.search_spaces.ofa_mbv3.cost import active_layers, all_layer_specs
from metad2a.search_spaces.ofa_mbv3.subnet import DEPTHS, EXPANDS, KS, NUM_LAYERS, NUM_STAGES, SLOTS_PER_STAGE

log = logging.getLogger("metad2a")

STEM_KEY = "stem"
ROUNDS = 4  # the passes of each subnet are spread over this many rounds over all subnets


def head_key(num_classes: int) -> str:
    return f"head|classes={num_classes}"


def table_keys(arch: Mapping[str, Any], num_classes: int, resolution: int) -> list[str]:
    """The entries whose sum is the subnet's latency."""
    return [STEM_KEY, *(spec.key for spec in active_layers(arch, resolution)), head_key(num_classes)]


def uniform_subnet(k: int, e: int) -> dict[str, list[int]]:
    """Every layer slot with kernel ``k`` and expand ratio ``e``, every stage at full depth: its
    slot 0 of a stage is the stage's first layer, slots 1-3 are later layers."""
    return {"ks": [k] * NUM_LAYERS, "e": [e] * NUM_LAYERS, "d": [max(DEPTHS)] * NUM_STAGES}


def in_context_samples(meter: LatencyMeter, num_classes: int, pairs: Sequence[tuple[int, int]]
                       ) -> dict[str, list[float]]:
    """Samples (seconds) of each table entry, timed inside whole subnets.

    For each ``(kernel, expand ratio)`` in ``pairs``, the uniform subnet (``uniform_subnet``) with a
    ``num_classes`` head runs whole; forward hooks time its first conv and every block in context,
    so each layer meets the cache state a real forward pass leaves it (at batch 1 a layer timed
    alone keeps its weights in the inner caches; inside a network it does not). Per pass: ``stem``
    = first conv + first block; each later block -> its layer entry (slots 1-3 of a stage are three
    samples of the same entry). The head (final expand, pooling, feature mix, classifier and the
    network's glue) gets one sample per subnet: the subnet's median pass minus the medians of its
    stem and blocks, so that the table reproduces each measured subnet's median latency (a sum of
    per-layer medians is below the median of whole passes when the timings are noisy).
    ``meter.repeats`` passes per subnet, spread over ``ROUNDS`` rounds over the subnets.
    """
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet, extract_subnet, new_classifier

    res = meter.input_size
    specs = {(s.stage, s.first, s.k, s.e): s.key for s in all_layer_specs(res)}
    per_round = max(1, -(-meter.repeats // ROUNDS))
    with torch.random.fork_rng(devices=[]):
        supernet = build_supernet(seed=0)
        nets = {p: new_classifier(extract_subnet(supernet, uniform_subnet(*p)), num_classes, 0.0) for p in pairs}
    rows: dict[tuple[int, int], list[list[float]]] = {p: [] for p in pairs}
    for r in range(ROUNDS):
        for p, net in nets.items():
            rows[p] += meter.samples(net, (meter.batch, 3, res, res), per_round, meter.warmup if r == 0 else 1,
                                     [net.first_conv, *net.blocks])
    out: dict[str, list[float]] = {}
    for (k, e), pass_rows in rows.items():
        columns = list(zip(*pass_rows))  # total, first conv, first block, blocks of slots 0..19
        stem = [a + b for a, b in zip(columns[1], columns[2])]
        out.setdefault(STEM_KEY, []).extend(stem)
        inside = statistics.median(stem)
        for i, times in enumerate(columns[3:]):
            stage, slot = divmod(i, SLOTS_PER_STAGE)
            out.setdefault(specs[(stage, slot == 0, k, e)], []).extend(times)
            inside += statistics.median(times)
        out.setdefault(head_key(num_classes), []).append(statistics.median(columns[0]) - inside)
    meter.measured += len(pairs)
    return out


def ensure_entries(meter: LatencyMeter, keys: Sequence[str], num_classes: int) -> int:
    """Measure the entries among ``keys`` the meter's cache lacks and save the cache; returns how
    many were measured. A missing layer or stem entry measures the whole table (the 9 uniform
    subnets); a missing head alone runs one subnet with that head."""
    missing = [k for k in dict.fromkeys(keys) if meter.cache.get(k) is None]
    if not missing:
        return 0
    t0 = time.time()
    whole = any(k != head_key(num_classes) for k in missing)
    pairs = [(k, e) for k in KS for e in EXPANDS] if whole else [(KS[0], EXPANDS[0])]
    if whole:
        log.info(f"==> measuring the latency table on {meter.cache.fingerprint['device']} (batch {meter.batch}, "
                 f"{meter.threads} thread(s), {meter.input_size}px; once per device)")
    samples = in_context_samples(meter, num_classes, pairs)
    for key in missing:
        meter.cache.put(key, 1000.0 * statistics.median(samples[key]))
    meter.cache.save()
    if whole:
        log.info(f"==> latency table measured in {time.time() - t0:.1f}s -> {meter.cache.path}")
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
