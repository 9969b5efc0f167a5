"""Once-for-All's MobileNetV3 accuracy predictor as an ImageNet top-1 oracle (docs/data.md#ofa-acc-predictor).

The file ``ofa_mbv3_acc_predictor.pth`` (from the once-for-all authors, MIT) is a plain state_dict of
``Sequential(Linear(128,400), ReLU, Linear(400,400), ReLU, Linear(400,400), ReLU, Linear(400,1))``;
its keys (``0.weight`` ... ``6.bias``) are those of the Sequential below, so it loads strictly.
Input encoding: ``ofa_mbv3.arch_dict_to_ofa_predictor_input``. Output: top-1 accuracy as a fraction.
This is not part of the original MetaD2A pipeline; it stands in for ImageNet evaluation offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.checkpoint import load_checkpoint
from metad2a.search_spaces.ofa_mbv3.subnet import PREDICTOR_INPUT_DIM, arch_dict_to_ofa_predictor_input

HIDDEN = 400


def build_ofa_accuracy_predictor() -> nn.Sequential:
    """The predictor's architecture, untrained (parameter names match the released file)."""
    return nn.Sequential(
        nn.Linear(PREDICTOR_INPUT_DIM, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, 1),
    )


def load_ofa_accuracy_predictor(path: str | Path) -> nn.Sequential:
    """Build the predictor, load the released weights (``weights_only=True``, CPU), eval mode.

    Raises:
        CheckpointError: file missing, unreadable, or keys/shapes that do not fit.
    """
    model = build_ofa_accuracy_predictor()
    load_checkpoint(model, path, strict=True, hint="it is OFA's ofa_mbv3_acc_predictor.pth (see docs/data.md#ofa-acc-predictor)")
    return model.eval()


def predict_accuracy(model: nn.Module, archs: Iterable[Mapping[str, Any]],
                     resolution: int = 224) -> list[float]:
    """Predicted ImageNet top-1 accuracy (fraction) of each subnet dict at ``resolution``.

    Raises:
        ArchDictError: an invalid dict or resolution.
    """
    rows = [arch_dict_to_ofa_predictor_input(a, resolution) for a in archs]
    if not rows:
        return []
    param = next(model.parameters())
    x = torch.tensor(rows, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        return model(x).reshape(-1).tolist()
