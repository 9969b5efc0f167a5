"""MetaD2A: rapid neural architecture search by learning to generate graphs from datasets.

Reference implementation of Lee, Hyung and Hwang (ICLR 2021). The package is layered:
``search_spaces`` (igraph codecs) -> ``nn`` (set encoder, D-VAE core) -> ``models`` -> ``data`` ->
``engine`` (training and search) -> ``cli``. Importing it has no side effects.
"""

__version__ = "0.1.0"
