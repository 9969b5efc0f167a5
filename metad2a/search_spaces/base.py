"""The interface every search space implements; models and loops only see this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import igraph


@dataclass(frozen=True)
class SearchSpace:
    """Constants and codecs of one search space.

    Attributes:
        name: registry key and original ``--graph-data-name`` value.
        nvt: vertex types including start and end.
        max_n: vertices of every full graph.
        start_type, end_type: vertex types of the input and output vertices.
        nvt_flag_offset: ``--nvt`` on the command line is ``nvt - offset`` (OFA counts layer types only).
        default_num_gen_arch: original ``--num-gen-arch`` default.
    """

    name: str
    nvt: int
    max_n: int
    start_type: int = 0
    end_type: int = 1
    nvt_flag_offset: int = 0
    default_num_gen_arch: int = 800

    def arch_to_igraph(self, arch: Any) -> igraph.Graph:
        raise NotImplementedError

    def igraph_to_arch(self, g: igraph.Graph) -> Any | None:
        """The architecture a graph encodes, or None if the original would reject the graph."""
        raise NotImplementedError

    def is_valid(self, g: igraph.Graph) -> bool:
        raise NotImplementedError

    def arch_from_types(self, types: Sequence[int]) -> Any | None:
        """Fast path for decoded graphs already known to pass the generic DAG check: the
        architecture given the vertex types alone, or None if the space rejects them."""
        raise NotImplementedError

    def arch_types(self, arch: Any) -> list[int]:
        """Vertex types of the graph the predictor encodes for ``arch``."""
        raise NotImplementedError

    def arch_edges(self, arch: Any) -> Sequence[tuple[int, int]]:
        """Edges of the graph the predictor encodes for ``arch``."""
        raise NotImplementedError

    def arch_key(self, arch: Any) -> str:
        """A hashable, printable identity of an architecture (uniqueness during generation)."""
        return str(arch)
