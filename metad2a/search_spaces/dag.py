"""Space-agnostic helpers for typed DAGs held as ``igraph.Graph`` (docs/fidelity.md#graph-conventions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import igraph


def make_graph(types: Sequence[int], edges: Iterable[tuple[int, int]]) -> igraph.Graph:
    """A directed igraph with vertex attribute ``type``; edges are added in the given order."""
    g = igraph.Graph(directed=True)
    g.add_vertices(len(types))
    g.vs["type"] = [int(t) for t in types]
    g.add_edges(list(edges))
    return g


def is_valid_dag(g: igraph.Graph, start_type: int = 0, end_type: int = 1) -> bool:
    """D-VAE's ``is_valid_DAG``: a DAG with exactly one start and one end vertex, where every
    non-start vertex has an in-edge and every non-end vertex has an out-edge."""
    if not g.is_dag():
        return False
    types = g.vs["type"] if g.vcount() else []
    indeg, outdeg = g.indegree(), g.outdegree()
    for t, i, o in zip(types, indeg, outdeg):
        if i == 0 and t != start_type:
            return False
        if o == 0 and t != end_type:
            return False
    return types.count(start_type) == 1 and types.count(end_type) == 1
