"""MetaD2A: rapid neural architecture search by learning to generate graphs from datasets.

Reference implementation of Lee, Hyung and Hwang (ICLR 2021). The package is layered (each layer
imports mostly the ones before it; ``tests/test_layout.py`` checks that there is no import cycle):

``errors``/``files``/``checkpoint``/``paths``/... (plumbing) -> ``nn`` (set encoder, D-VAE core)
-> ``models`` -> ``data`` (formats, sets, images) -> ``evaluation`` (metrics, sizes) ->
``search_spaces`` (one package per space: codec, facts, hooks, networks) -> ``engine`` (meta-training
and search) -> ``build`` (meta-database builders) -> ``cli``. Importing it has no side effects.
"""

from typing import Any

from metad2a.version import __version__

# The public API (metad2a/api.py), loaded on first use so that `import metad2a` stays cheap (no torch).
_API = ("Candidate", "Features", "Searcher", "build_network", "default_checkpoints", "export", "extract_features",
        "load_network", "load_searcher", "train")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from metad2a import api

        return getattr(api, name)
    raise AttributeError(f"module 'metad2a' has no attribute {name!r}")
