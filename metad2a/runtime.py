"""Device selection."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


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


def device_name(device: torch.device) -> str:
    """What the device is, for reports: the GPU's name, or the CPU's model and thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model} (CPU, {torch.get_num_threads()} threads)"
