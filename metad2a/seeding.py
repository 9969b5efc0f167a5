"""Random seeds: the global seed of a run, and stable per-item seeds for reproducible subsets.

``stable_seed`` derives a seed from any values (a run seed, a task id, a class name) with CRC32,
so the same values give the same seed in every process and on every machine (Python's ``hash``
of a string is salted per process). ``subset_generator`` gives the torch generator that picks a
seeded subset of one class's images.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA), as the original does at start-up."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stable_seed(*parts: Any) -> int:
    """A non-negative 31-bit seed from ``parts`` (joined by ``|``), equal across processes."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def subset_generator(seed: int, class_index: int) -> torch.Generator:
    """The generator that draws class ``class_index``'s seeded subset of images under ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + class_index)


def rng_state(generator: torch.Generator | None, device: torch.device | str | None = None) -> Any:
    """A snapshot of the random state that draws on ``device`` consume: ``generator``'s, or torch's
    global CPU state (plus the CUDA device's, for draws made there) when ``generator`` is None."""
    if generator is not None:
        return generator, generator.get_state()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cuda = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    return None, torch.get_rng_state(), dev, cuda


def restore_rng_state(state: Any) -> None:
    """Return the random state to a ``rng_state`` snapshot: draws made since are undone."""
    if state[0] is not None:
        state[0].set_state(state[1])
        return
    _, cpu, dev, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, dev)
