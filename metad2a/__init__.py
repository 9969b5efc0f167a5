"""MetaD2A: rapid neural architecture search by learning to generate graphs from datasets.

Reference implementation of Lee, Hyung and Hwang (ICLR 2021). The package is layered (each layer
imports only the ones before it; ``tests/test_layout.py`` checks it):

``errors``/``files``/``checkpoint``/``paths``/... (plumbing) -> ``nn`` (set encoder, D-VAE core)
-> ``models`` -> ``data`` (formats, sets, images) -> ``evaluation`` (metrics, sizes) ->
``search_spaces`` (one package per space: codec, facts, hooks, networks) -> ``engine`` (meta-training
and search) -> ``build`` (meta-database builders) -> ``cli``. Importing it has no side effects.
"""

from metad2a.version import __version__

__all__ = ["__version__"]
