"""A batch of small typed DAGs as dense tensors: the model-side graph representation.

The original keeps every graph as an ``igraph.Graph`` and walks them vertex by vertex in Python.
Here a batch of ``n`` graphs with at most ``max_n`` vertices is three tensors, so message passing
is a handful of batched tensor operations per vertex. igraph stays at the input/output boundary
(``from_graphs`` reads any object with the igraph API; it does not import igraph).

Conventions (docs/fidelity.md#graph-conventions): vertex indices are a topological order, vertex 0 is the start
vertex and the last existing vertex is the end vertex. ``adj[b, i, j]`` is True for an edge i->j.
Positions at or beyond ``num_vertices[b]`` are padding: type ``pad_type`` and no edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class GraphBatch:
    """``types`` [n, max_n] long, ``adj`` [n, max_n, max_n] bool, ``num_vertices`` [n] long."""

    types: torch.Tensor
    adj: torch.Tensor
    num_vertices: torch.Tensor

    def __post_init__(self) -> None:
        n, m = self.types.shape
        if self.adj.shape != (n, m, m) or self.num_vertices.shape != (n,):
            raise ValueError(
                f"inconsistent GraphBatch shapes: types {tuple(self.types.shape)}, "
                f"adj {tuple(self.adj.shape)}, num_vertices {tuple(self.num_vertices.shape)}"
            )

    @property
    def max_n(self) -> int:
        return self.types.size(1)

    @property
    def device(self) -> torch.device:
        return self.types.device

    def __len__(self) -> int:
        return self.types.size(0)

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(self.types.to(device), self.adj.to(device), self.num_vertices.to(device))

    def __getitem__(self, idx: torch.Tensor | slice | Sequence[int]) -> GraphBatch:
        if not isinstance(idx, (torch.Tensor, slice)):
            idx = torch.as_tensor(list(idx), dtype=torch.long, device=self.device)
        return GraphBatch(self.types[idx], self.adj[idx], self.num_vertices[idx])

    @staticmethod
    def cat(batches: Sequence[GraphBatch]) -> GraphBatch:
        return GraphBatch(
            torch.cat([b.types for b in batches]),
            torch.cat([b.adj for b in batches]),
            torch.cat([b.num_vertices for b in batches]),
        )

    @classmethod
    def from_lists(
        cls,
        types: Sequence[Sequence[int]],
        edges: Sequence[Iterable[tuple[int, int]]],
        max_n: int,
        pad_type: int = 0,
    ) -> GraphBatch:
        """Build from per-graph vertex-type lists and edge lists."""
        n = len(types)
        t = torch.full((n, max_n), pad_type, dtype=torch.long)
        adj = torch.zeros((n, max_n, max_n), dtype=torch.bool)
        nv = torch.zeros(n, dtype=torch.long)
        for b, (ty, ed) in enumerate(zip(types, edges)):
            k = len(ty)
            if k > max_n:
                raise ValueError(f"graph {b} has {k} vertices, more than max_n={max_n}")
            t[b, :k] = torch.as_tensor(list(ty), dtype=torch.long)
            nv[b] = k
            for i, j in ed:
                if not (0 <= i < k and 0 <= j < k):
                    raise ValueError(f"graph {b}: edge {i}->{j} names a vertex outside 0..{k - 1}")
                adj[b, i, j] = True
        return cls(t, adj, nv)

    @classmethod
    def from_graphs(cls, graphs: Sequence, max_n: int, pad_type: int = 0) -> GraphBatch:
        """Build from igraph-like graphs with an integer vertex attribute ``type``."""
        return cls.from_lists(
            [g.vs["type"] for g in graphs], [g.get_edgelist() for g in graphs], max_n, pad_type
        )

    def to_lists(self) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Per graph: (vertex types, edges in ascending (target, source) order)."""
        types = self.types.tolist()
        nv = self.num_vertices.tolist()
        out: list[tuple[list[int], list[tuple[int, int]]]] = [(types[b][: nv[b]], []) for b in range(len(self))]
        bidx, src, dst = (t.tolist() for t in self.adj.nonzero(as_tuple=True))
        for b, i, j in sorted(zip(bidx, src, dst), key=lambda e: (e[0], e[2], e[1])):
            out[b][1].append((i, j))
        return out

    def dag_valid_mask(self, start_type: int, end_type: int) -> torch.Tensor:
        """Generic validity of each graph as the original ``is_valid_DAG`` decides it, vectorised.

        Valid iff exactly one start and one end vertex, every non-start vertex has an in-edge and
        every non-end vertex has an out-edge. Acyclicity is guaranteed by the index-order convention
        (edges only from lower to higher index); a graph with any other edge is reported invalid.

        Returns:
            [n] bool.
        """
        exists = torch.arange(self.max_n, device=self.device)[None, :] < self.num_vertices[:, None]
        is_start = (self.types == start_type) & exists
        is_end = (self.types == end_type) & exists
        adj = self.adj
        indeg = adj.sum(1)
        outdeg = adj.sum(2)
        forward_only = ~torch.tril(adj.new_ones(self.max_n, self.max_n)).logical_and(adj).flatten(1).any(1)
        ok_in = ((indeg > 0) | is_start | ~exists).all(1)
        ok_out = ((outdeg > 0) | is_end | ~exists).all(1)
        return (is_start.sum(1) == 1) & (is_end.sum(1) == 1) & ok_in & ok_out & forward_only

    def type_key(self, nvt: int) -> torch.Tensor:
        """An exact identity of each graph's vertex types, as integers: [n, w] int64.

        The types (and the vertex count) are packed into as few 62-bit words as they fit: two
        graphs have equal rows iff they have the same vertex count and the same types. Used to
        de-duplicate decoded graphs on tensors when the architecture depends on the types alone.
        """
        exists = torch.arange(self.max_n, device=self.device)[None, :] < self.num_vertices[:, None]
        digits = torch.cat([torch.where(exists, self.types, 0), self.num_vertices[:, None]], 1)  # [n, m+1]
        bits = max(nvt - 1, self.max_n, 1).bit_length()
        per_word = 62 // bits
        shifts = torch.arange(per_word, device=self.device) * bits
        words = []
        for i in range(0, digits.size(1), per_word):
            part = digits[:, i: i + per_word]
            words.append((part << shifts[: part.size(1)]).sum(1))
        return torch.stack(words, 1)
