"""Building the two models from a config, and loading a trained one from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from metad2a.checkpoint import load_checkpoint, read_state_dict
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel

ModelKind = Literal["generator", "predictor"]
FEATURE_KEY = "intra_setpool.enc.0.mab.fc_q.weight"  # its in-features are the feature dimension
DEFAULT_FEATURE_DIM = 512  # ResNet-18 features, the original's


def build_model(kind: ModelKind, *, nvt: int, max_n: int, hs: int, nz: int, feature_dim: int,
                num_sample: int = 20, start_type: int = 0, end_type: int = 1) -> GeneratorModel | PredictorModel:
    """A freshly initialised generator or predictor (``kind``) with these hyper-parameters."""
    cls = GeneratorModel if kind == "generator" else PredictorModel
    return cls(nvt=nvt, max_n=max_n, hs=hs, nz=nz, feature_dim=feature_dim, num_sample=num_sample,
               start_type=start_type, end_type=end_type)


def load_trained(kind: ModelKind, path: str | Path, *, nvt: int, max_n: int, hs: int, nz: int,
                 num_sample: int = 20, start_type: int = 0, end_type: int = 1, hint: str = "",
                 device: torch.device | str = "cpu") -> tuple[GeneratorModel | PredictorModel, dict]:
    """Build a model whose feature dimension is read from the checkpoint, load it strictly, eval mode.

    Returns:
        (model on ``device``, the checkpoint's sidecar metadata or {}).

    Raises:
        CheckpointError: missing or unreadable file, or keys/shapes that do not fit.
    """
    state = read_state_dict(path, hint)
    feature_dim = state[FEATURE_KEY].shape[1] if FEATURE_KEY in state else DEFAULT_FEATURE_DIM
    model = build_model(kind, nvt=nvt, max_n=max_n, hs=hs, nz=nz, feature_dim=feature_dim,
                        num_sample=num_sample, start_type=start_type, end_type=end_type)
    meta = load_checkpoint(model, path, hint=hint, kind=kind)
    return model.to(device).eval(), meta
