"""Search spaces: one package per space holds everything that differs between them.

``search_spaces/<space>/space.py`` builds the space's ``SearchSpace`` (facts and hooks, see
``base.py``); the rest of its package is the codec between architectures and graphs and whatever
that space alone needs (networks, training, tables, databases). ``SEARCH_SPACES`` is the one
registry: the command line, the engine and the builders look spaces up here.
"""

from __future__ import annotations

from metad2a.search_spaces.base import SearchSpace
from metad2a.search_spaces.nasbench201.space import NASBENCH201
from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3

SEARCH_SPACES: dict[str, SearchSpace] = {s.name: s for s in (NASBENCH201, OFA_MBV3)}
DEFAULT_SPACE = NASBENCH201.name  # of ``metad2a search`` and the Python API


def space_names() -> list[str]:
    """Every name ``find_space`` accepts."""
    return sorted({n for s in SEARCH_SPACES.values() for n in (s.name, s.cli_name, *s.aliases)})


def find_space(name: str) -> SearchSpace:
    """A space by its name, its ``metad2a`` command name or an alias (``--space``).

    Raises:
        MetaD2AError: an unknown name (one line listing the known ones).
    """
    from metad2a.errors import MetaD2AError

    for s in SEARCH_SPACES.values():
        if name in (s.name, s.cli_name, *s.aliases):
            return s
    known = ", ".join(f"{s.cli_name} ({', '.join(dict.fromkeys((s.name, *s.aliases)))})" for s in SEARCH_SPACES.values())
    raise MetaD2AError(f"--space {name!r} is not a search space; use one of {known}")


def get_search_space(name: str) -> SearchSpace:
    """Look up a search space by its ``--graph-data-name``; unknown names list the known ones."""
    try:
        return SEARCH_SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(SEARCH_SPACES))}") from None
