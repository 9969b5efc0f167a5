"""Search spaces: everything that differs between NAS-Bench-201 and MobileNetV3 lives here."""

from __future__ import annotations

from metad2a.search_spaces.base import SearchSpace
from metad2a.search_spaces.nasbench201 import NASBENCH201
from metad2a.search_spaces.ofa_mbv3 import OFA_MBV3

SEARCH_SPACES: dict[str, SearchSpace] = {NASBENCH201.name: NASBENCH201, OFA_MBV3.name: OFA_MBV3}


def get_search_space(name: str) -> SearchSpace:
    """Look up a search space by its ``--graph-data-name``; unknown names list the known ones."""
    try:
        return SEARCH_SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(SEARCH_SPACES))}") from None
