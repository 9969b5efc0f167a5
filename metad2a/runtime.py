"""Seeds and device selection."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA), as the original does at start-up."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(gpu: str) -> torch.device:
    """``--gpu`` keeps its meaning: it sets CUDA_VISIBLE_DEVICES (once, before any CUDA call) and
    the model runs on cuda:0. ``--gpu cpu`` forces the CPU; without CUDA we fall back to the CPU
    with a one-line warning instead of crashing as the original does."""
    if str(gpu).lower() == "cpu":
        return torch.device("cpu")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", str(gpu))
    if torch.cuda.is_available():
        return torch.device("cuda:0")
    log.warning("warning: --gpu %s requested but CUDA is not available; running on the CPU", gpu)
    return torch.device("cpu")
