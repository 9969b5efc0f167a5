"""MobileNetV3 / Once-for-All search space (docs/fidelity.md#ofa-encoding).

The supernet is OFA's ``ofa_mbv3_d234_e346_k357_w1.0``: 5 elastic stages of up to 4 MBConv layers,
i.e. 20 layer slots, each with a kernel size in ``KS`` and an expand ratio in ``EXPANDS``, and one
depth in ``DEPTHS`` per stage. An architecture is OFA's subnet dict
``{'ks': [20 ints], 'e': [20 ints], 'd': [5 ints]}`` (the ``'wid': None`` entry that older OFA
versions of ``sample_active_subnet`` add is accepted and dropped).

Graph form used by MetaD2A: 22 vertices in a pure chain 0 -> 1 -> ... -> 21; vertex 0 = start,
vertex 21 = end, vertex i+1 = layer slot i (stage i // 4). A slot's vertex type packs the slot's
kernel, expand ratio *and its stage's depth*: ``2 + 9*(d-2) + 3*k_idx + e_idx`` (types 2..28).
All 20 slots are encoded, including those beyond the stage depth: their ks/e values are carried
along although the network does not use them, so dict <-> graph is exact, and two dicts that differ
only in unused slots are different architectures for MetaD2A (the original dedupes by dict equality).
"""

from __future__ import annotations

import ast
import itertools
import random
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import igraph

from metad2a.errors import MetaD2AError
from metad2a.search_spaces.dag import is_valid_dag, make_graph

KS = (3, 5, 7)  # kernel sizes, k_idx = position
EXPANDS = (3, 4, 6)  # expand ratios, e_idx = position
DEPTHS = (2, 3, 4)  # layers per stage
NUM_STAGES = 5
SLOTS_PER_STAGE = 4
NUM_LAYERS = NUM_STAGES * SLOTS_PER_STAGE  # 20 layer slots
START_TYPE = 0
END_TYPE = 1
FIRST_LAYER_TYPE = 2  # layer types are 2..28
TYPES_PER_DEPTH = len(KS) * len(EXPANDS)  # 9 layer types per depth group (type - 2) // 9
NVT = FIRST_LAYER_TYPE + len(DEPTHS) * TYPES_PER_DEPTH  # 29
MAX_N = NUM_LAYERS + 2  # 22
# The original OFA CLI counts layer types only: ``--nvt 27`` means 29 vertex types.
NVT_FLAG = NVT - 2
CHAIN_EDGES = tuple((i, i + 1) for i in range(MAX_N - 1))
ARCH_KEYS = ("ks", "e", "d")

# OFA's accuracy-predictor input (ofa_mbv3_acc_predictor.pth, docs/data.md#ofa-acc-predictor).
PREDICTOR_INPUT_DIM = 2 * 3 * NUM_LAYERS + 8  # 128
PREDICTOR_MIN_RESOLUTION = 112
PREDICTOR_RESOLUTION_STEP = 16
PREDICTOR_NUM_RESOLUTIONS = 8


def _build_type_table() -> tuple[dict[tuple[int, int, int], int], dict[int, tuple[int, int, int]]]:
    """(depth, kernel, expand) -> vertex type and back; product order gives 2 + 9*d_idx + 3*k_idx + e_idx."""
    forward = {dke: 2 + i for i, dke in enumerate(itertools.product(DEPTHS, KS, EXPANDS))}
    return forward, {t: dke for dke, t in forward.items()}


LAYER_TYPE, TYPE_LAYER = _build_type_table()


class ArchDictError(MetaD2AError, ValueError):
    """An OFA/MobileNetV3 architecture dict (or its string form) that is not a subnet of the space."""


def _int_list(arch: Mapping[str, Any], key: str, length: int, choices: Sequence[int]) -> list[int]:
    value = arch[key]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ArchDictError(f"arch[{key!r}] must be a list of {length} ints, got {type(value).__name__}")
    if len(value) != length:
        raise ArchDictError(f"arch[{key!r}] must have {length} entries, got {len(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, Integral) or int(v) not in choices:
            raise ArchDictError(f"arch[{key!r}][{i}] = {v!r} is not one of {list(choices)}")
        out.append(int(v))
    return out


def canonical_arch_dict(arch: Mapping[str, Any]) -> dict[str, list[int]]:
    """Check an architecture dict and return it as ``{'ks': [...], 'e': [...], 'd': [...]}`` of plain ints.

    Raises:
        ArchDictError: not a mapping, missing or unknown keys, wrong lengths, values outside the choices.
    """
    if not isinstance(arch, Mapping):
        raise ArchDictError(f"architecture must be a dict with keys 'ks', 'e', 'd', "
                            f"got {type(arch).__name__}")
    missing = [k for k in ARCH_KEYS if k not in arch]
    if missing:
        raise ArchDictError(f"architecture dict lacks key(s) {', '.join(map(repr, missing))}; "
                            f"expected 'ks' (20), 'e' (20), 'd' (5)")
    unknown = [k for k in arch if k not in ARCH_KEYS and k != "wid"]
    if unknown:
        raise ArchDictError(f"architecture dict has unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"expected 'ks', 'e', 'd' (and optionally 'wid': None)")
    if arch.get("wid") is not None:
        raise ArchDictError(f"arch['wid'] = {arch['wid']!r}: the w1.0 supernet has no width choice, "
                            f"expected None")
    return {
        "ks": _int_list(arch, "ks", NUM_LAYERS, KS),
        "e": _int_list(arch, "e", NUM_LAYERS, EXPANDS),
        "d": _int_list(arch, "d", NUM_STAGES, DEPTHS),
    }


def arch_dict_to_types(arch: Mapping[str, Any]) -> list[int]:
    """Architecture dict -> the 22 vertex types ``[0, type(slot 0), ..., type(slot 19), 1]``.

    Raises:
        ArchDictError: see ``canonical_arch_dict``.
    """
    a = canonical_arch_dict(arch)
    slots = [LAYER_TYPE[(a["d"][i // SLOTS_PER_STAGE], a["ks"][i], a["e"][i])] for i in range(NUM_LAYERS)]
    return [START_TYPE, *slots, END_TYPE]


def types_to_arch_dict(types: Sequence[int]) -> dict[str, list[int]] | None:
    """22 vertex types -> architecture dict, or None if they do not describe a subnet.

    Rejected: wrong length, vertex 0 not start or vertex 21 not end, a start/end (or unknown) type
    among the slots, or a stage whose four slots disagree on the depth group ``(type-2)//9``.
    """
    if len(types) != MAX_N or types[0] != START_TYPE or types[-1] != END_TYPE:
        return None
    ks, e, d = [], [], []
    for s in range(NUM_STAGES):
        depth = None
        for t in types[1 + s * SLOTS_PER_STAGE: 1 + (s + 1) * SLOTS_PER_STAGE]:
            layer = TYPE_LAYER.get(int(t))
            if layer is None:
                return None
            if depth is None:
                depth = layer[0]
            elif layer[0] != depth:
                return None
            ks.append(layer[1])
            e.append(layer[2])
        d.append(depth)
    return {"ks": ks, "e": e, "d": d}


def arch_dict_to_igraph(arch: Mapping[str, Any]) -> igraph.Graph:
    """Architecture dict -> the typed 22-vertex chain (the graph both models are trained on)."""
    return make_graph(arch_dict_to_types(arch), CHAIN_EDGES)


def is_valid(g: igraph.Graph) -> bool:
    """The original's acceptance test of a (generated) graph: a valid DAG with exactly 22 vertices,
    no start/end type among the slots, and one depth group per stage. Edges beyond DAG validity do
    not matter for the dict (but the original predictor sees them, docs/fidelity.md#sampled-edge-scoring)."""
    if g.vcount() != MAX_N or not is_valid_dag(g, START_TYPE, END_TYPE):
        return False
    return types_to_arch_dict(g.vs["type"]) is not None


def igraph_to_arch_dict(g: igraph.Graph) -> dict[str, list[int]] | None:
    """Graph -> architecture dict, or None unless ``is_valid(g)``. Only the vertex types matter."""
    return types_to_arch_dict(g.vs["type"]) if is_valid(g) else None


def arch_dict_to_str(arch: Mapping[str, Any]) -> str:
    """The original output line: ``"{'ks': [...], 'e': [...], 'd': [...]}"`` (also the canonical key)."""
    return str(canonical_arch_dict(arch))


def arch_str_to_dict(arch_str: str) -> dict[str, list[int]]:
    """Parse an output line (a python-dict literal) with ``ast.literal_eval``, never ``eval``.

    Raises:
        ArchDictError: not a dict literal, or not a valid architecture.
    """
    if not isinstance(arch_str, str):
        raise ArchDictError(f"architecture string must be a str, got {type(arch_str).__name__}")
    try:
        value = ast.literal_eval(arch_str.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        short = arch_str if len(arch_str) <= 60 else arch_str[:57] + "..."
        raise ArchDictError(f"{short!r} is not a python dict literal like \"{{'ks': [...], 'e': [...], "
                            f"'d': [...]}}\" ({type(e).__name__})") from None
    return canonical_arch_dict(value)


def random_arch_dict(rng: random.Random | None = None) -> dict[str, list[int]]:
    """A uniform random subnet, sampled like OFA's ``sample_active_subnet``: 20 kernels, then 20
    expand ratios, then 5 depths, each by ``rng.choice`` (default: the ``random`` module)."""
    r = random if rng is None else rng
    ks = [int(r.choice(KS)) for _ in range(NUM_LAYERS)]
    e = [int(r.choice(EXPANDS)) for _ in range(NUM_LAYERS)]
    d = [int(r.choice(DEPTHS)) for _ in range(NUM_STAGES)]
    return {"ks": ks, "e": e, "d": d}


def arch_dict_to_ofa_predictor_input(arch: Mapping[str, Any], resolution: int = 224) -> list[float]:
    """Encode a subnet as the 128-d input of OFA's accuracy predictor (docs/data.md#ofa-acc-predictor).

    60 one-hot kernel slots (20 layers x KS), 60 one-hot expand slots (20 layers x EXPANDS), then
    8 one-hot resolution slots at ``(resolution - 112) // 16``; layers beyond their stage's depth
    are all-zero.

    Raises:
        ArchDictError: invalid dict, or a resolution outside 112..239.
    """
    a = canonical_arch_dict(arch)
    r_idx = (int(resolution) - PREDICTOR_MIN_RESOLUTION) // PREDICTOR_RESOLUTION_STEP
    if not 0 <= r_idx < PREDICTOR_NUM_RESOLUTIONS:
        hi = PREDICTOR_MIN_RESOLUTION + PREDICTOR_RESOLUTION_STEP * PREDICTOR_NUM_RESOLUTIONS - 1
        raise ArchDictError(f"resolution {resolution} outside the predictor's range "
                            f"{PREDICTOR_MIN_RESOLUTION}..{hi}")
    ks_part = [0.0] * (len(KS) * NUM_LAYERS)
    e_part = [0.0] * (len(EXPANDS) * NUM_LAYERS)
    for i in range(NUM_LAYERS):
        if i % SLOTS_PER_STAGE < a["d"][i // SLOTS_PER_STAGE]:
            ks_part[3 * i + KS.index(a["ks"][i])] = 1.0
            e_part[3 * i + EXPANDS.index(a["e"][i])] = 1.0
    r_part = [0.0] * PREDICTOR_NUM_RESOLUTIONS
    r_part[r_idx] = 1.0
    return ks_part + e_part + r_part
