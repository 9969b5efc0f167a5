"""The interface every search space implements; models and loops only see this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import igraph


@dataclass(frozen=True)
class FlagSpec:
    """A command-line flag only one space's ``main.py`` has, as plain data (``cli.py`` turns it into
    an argparse argument; this package has no other argparse code).

    Attributes:
        names: option strings, the original spelling first (``("--index",)``).
        dest: attribute / config field name.
        kind: ``"int"``, ``"str"`` or ``"flag"`` (store_true).
        default: default value (None / False).
        help: help text; "new: ..." marks flags the original does not have.
        ignored_by_main: accepted by ``main.py`` but meant for another script sharing the
            original parser (OFA's database builder); ``main.py`` says so when one is given.
    """

    names: tuple[str, ...]
    dest: str
    kind: Literal["int", "str", "flag"]
    help: str
    default: Any = None
    ignored_by_main: bool = False


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
        model_choices: values the original parser accepts for ``--model``/``--model_name``
            (``main.py`` itself runs only ``generator`` and ``predictor``).
        extra_flags: flags of this space's parser beyond the shared ones.
    """

    name: str
    nvt: int
    max_n: int
    start_type: int = 0
    end_type: int = 1
    nvt_flag_offset: int = 0
    default_num_gen_arch: int = 800
    model_choices: tuple[str, ...] = ("generator", "predictor")
    extra_flags: tuple[FlagSpec, ...] = ()

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
