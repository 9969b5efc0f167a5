"""NAS-Bench-201 cell search space (docs/fidelity.md#nb201-encoding).

Graph form used by MetaD2A: 8 vertices, 0 = input (start), 1..6 = the operations on the six cell
edges, 7 = output (end). Vertex types: 0 start, 1 end, 2 + op index in ``OPS``. Every NB201 graph
has the same 11 edges (``CANONICAL_EDGES``); only the six middle types distinguish architectures.

Architecture strings are the benchmark's: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, where node k of
the cell lists one ``op~j`` for each earlier node j.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Sequence

import igraph

from metad2a.errors import MetaD2AError
from metad2a.search_spaces.dag import is_valid_dag, make_graph

# Canonical op order of NAS-Bench-201 (AutoDL / NATS-Bench), not NASLib's.
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
START_TYPE = 0
END_TYPE = 1
FIRST_OP_TYPE = 2  # type of OPS[0]; operation types are 2..6
NVT = 7
MAX_N = 8
# Graph vertex i (1..6) <-> cell edge (to_node, from_node).
CELL_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
# The original's matrix -> igraph rule yields this topology for every cell; the order is the
# insertion order of that rule (chain edge i->i+1 first, then the row's flagged edges), which is
# also the order stored in the released graphs.
CANONICAL_EDGES = ((1, 2), (0, 1), (2, 3), (3, 4), (1, 3), (4, 5), (5, 6), (1, 5), (2, 6), (3, 6), (6, 7))
NUM_ARCHS = len(OPS) ** len(CELL_EDGES)  # 15,625


class ArchStringError(MetaD2AError, ValueError):
    """An NB201 architecture string that does not parse."""


def arch_str_to_ops(arch_str: str) -> tuple[str, ...]:
    """Parse an NB201 string into the six ops in graph-vertex order (v1..v6).

    Raises:
        ArchStringError: naming what is wrong (format, unknown op, wrong input index).
    """
    if not isinstance(arch_str, str):
        raise ArchStringError(f"architecture must be a string, got {type(arch_str).__name__}")
    s = arch_str.strip()
    nodes = s.split("+")
    if len(nodes) != 3:
        raise ArchStringError(
            f"{arch_str!r}: expected 3 '+'-separated nodes like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
        )
    ops: list[str] = []
    for k, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise ArchStringError(f"{arch_str!r}: node {k} {node!r} must start and end with '|'")
        parts = node[1:-1].split("|")
        if len(parts) != k:
            raise ArchStringError(f"{arch_str!r}: node {k} must have {k} input(s), found {len(parts)}")
        for j, part in enumerate(parts):
            op, sep, src = part.partition("~")
            if not sep:
                raise ArchStringError(f"{arch_str!r}: {part!r} is not of the form 'op~input'")
            if op not in OPS:
                raise ArchStringError(f"{arch_str!r}: unknown op {op!r}; known ops: {', '.join(OPS)}")
            if src != str(j):
                raise ArchStringError(f"{arch_str!r}: node {k} input {j} is written '~{src}', expected '~{j}'")
            ops.append(op)
    return tuple(ops)


def ops_to_arch_str(ops: Sequence[str]) -> str:
    """Six ops in graph-vertex order -> NB201 string."""
    if len(ops) != 6 or any(op not in OPS for op in ops):
        raise ArchStringError(f"expected six ops from {OPS}, got {list(ops)}")
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def arch_str_to_types(arch_str: str) -> list[int]:
    """NB201 string -> the 8 vertex types ``[0, 2+op(v1), ..., 2+op(v6), 1]``."""
    return [START_TYPE] + [2 + OPS.index(op) for op in arch_str_to_ops(arch_str)] + [END_TYPE]


def types_to_arch_str(types: Sequence[int]) -> str | None:
    """8 vertex types -> NB201 string, or None if they do not describe a cell."""
    if len(types) != MAX_N or types[0] != START_TYPE or types[-1] != END_TYPE:
        return None
    middle = types[1:-1]
    if any(not 2 <= t < 2 + len(OPS) for t in middle):
        return None
    return ops_to_arch_str([OPS[t - 2] for t in middle])


def arch_str_to_igraph(arch_str: str) -> igraph.Graph:
    """NB201 string -> canonical typed 8-vertex igraph (the graph the predictor is trained on)."""
    return make_graph(arch_str_to_types(arch_str), CANONICAL_EDGES)


def is_valid(g: igraph.Graph) -> bool:
    """The original's acceptance test of a (generated) graph: a valid DAG with exactly 8 vertices
    and no start/end type among vertices 1..6. Other edges do not matter (docs/fidelity.md#nb201-validity)."""
    if g.vcount() != MAX_N or not is_valid_dag(g, START_TYPE, END_TYPE):
        return False
    return all(t not in (START_TYPE, END_TYPE) for t in g.vs["type"][1:-1])


def igraph_to_arch_str(g: igraph.Graph) -> str | None:
    """Graph -> NB201 string, or None unless ``is_valid(g)``. Only the vertex types matter."""
    return types_to_arch_str(g.vs["type"]) if is_valid(g) else None


def matrix_to_igraph(rows: Sequence[Sequence[int]] | str) -> igraph.Graph:
    """The original ``nasbench201.pt`` matrix form -> igraph.

    Row i is ``[type_i, f_0, f_1, ...]``: a flag f_j == 1 adds edge j->i, and rows 1..n-3 also get
    the chain edge i->i+1, added before the row's flags. The original ``eval``s string rows; we
    parse them with ``ast.literal_eval``.
    """
    if isinstance(rows, str):
        rows = ast.literal_eval(rows)
    n = len(rows)
    types, edges = [], []
    for i, row in enumerate(rows):
        types.append(int(row[0]))
        if 0 < i < n - 2:
            edges.append((i, i + 1))
        edges.extend((j, i) for j, f in enumerate(row[1:]) if int(f) == 1)
    return make_graph(types, edges)


def all_arch_strs() -> Iterator[str]:
    """Every cell of the space (product order over the six edges, not the benchmark's index)."""
    for ops in itertools.product(OPS, repeat=len(CELL_EDGES)):
        yield ops_to_arch_str(ops)
