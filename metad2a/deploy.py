"""Exporting a trained network for deployment, verified (docs/data.md#export-files).

``export`` writes, all or nothing, into one folder:

- ``model.pt``: ``{"state_dict", "arch", "space", "num_classes", "metad2a_version"}`` (``load_network``
  rebuilds the network from it);
- ``model.ts``: TorchScript (traced);
- ``model.onnx``: ONNX, opset ``OPSET`` (17), a dynamic batch axis, input ``input`` [N, 3, s, s],
  output ``logits`` [N, classes];
- ``preprocess.json``: what an image must go through first (resize, input size, mean, std, class names).

Before anything is written, the TorchScript and ONNX files are read back and run (onnxruntime) on the
verification batch (real images of the user's folder in ``metad2a search``); their logits must equal
PyTorch's within ``TOLERANCE``. onnx and onnxruntime are an optional extra: ``pip install 'metad2a[export]'``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.checkpoint import read_record
from metad2a.errors import MetaD2AError
from metad2a.files import to_json, write_files
from metad2a.version import __version__

OPSET = 17
TOLERANCE = 1e-4
EXPORT_EXTRA = "pip install 'metad2a[export]'"
FILES = ("model.pt", "model.ts", "model.onnx", "preprocess.json")


class ExportError(MetaD2AError):
    """An export that cannot be written or does not reproduce PyTorch's logits."""


@dataclass
class ExportResult:
    """What ``export`` wrote and how well the exported files reproduce PyTorch.

    Attributes:
        files: name -> path of the four files.
        images: images in the verification batch.
        torchscript_max_abs_diff, onnx_max_abs_diff: the largest absolute difference between the
            logits of the exported file and PyTorch's over the verification batch.
        tolerance: the bound both differences had to meet.
        onnx_opset: ONNX opset of ``model.onnx``.
    """

    files: dict[str, Path]
    images: int
    torchscript_max_abs_diff: float
    onnx_max_abs_diff: float
    tolerance: float = TOLERANCE
    onnx_opset: int = OPSET
    verified_on: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"files": {k: str(v) for k, v in self.files.items()}, "images": self.images,
                "verified_on": self.verified_on, "torchscript_max_abs_diff": self.torchscript_max_abs_diff,
                "onnx_max_abs_diff": self.onnx_max_abs_diff, "tolerance": self.tolerance,
                "onnx_opset": self.onnx_opset}


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``.

    Raises:
        MetaD2AError: either is missing (the message names the extra to install).
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise MetaD2AError(f"exporting to ONNX needs onnx and onnxruntime ({e}): {EXPORT_EXTRA}") from e
    return onnx, onnxruntime


def export(model: nn.Module, out_dir: str | Path, example_input: torch.Tensor, *, preprocess: Mapping[str, Any],
           arch: Any = None, space: str | None = None, verify_input: torch.Tensor | None = None,
           verified_on: str = "", tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``model`` as ``model.pt``, ``model.ts``, ``model.onnx`` and ``preprocess.json`` into
    ``out_dir``, after checking that TorchScript and onnxruntime reproduce its logits.

    Args:
        model: the network (moved to the CPU and put in eval mode).
        out_dir: the folder (created when missing).
        example_input: a ``[N, 3, s, s]`` batch used for tracing.
        preprocess: the preprocessing (``input_size``, ``mean``, ``std``, ``class_names``, ...).
        arch, space: the architecture (a JSON value) and its search space, stored in ``model.pt``.
        verify_input: the batch the exported files are verified on (default ``example_input``).
        verified_on: what that batch is (recorded).
        tolerance: the largest absolute logit difference accepted.

    Returns:
        The files and the measured differences.

    Raises:
        MetaD2AError: onnx/onnxruntime missing (names the extra), or an exported file whose logits
            differ from PyTorch's by more than ``tolerance`` (nothing is written then).
    """
    _, ort = require_onnx()
    out = Path(out_dir)
    model = model.cpu().eval()
    x = example_input.detach().cpu().float()
    v = x if verify_input is None else verify_input.detach().cpu().float()
    ts_buf, onnx_buf = io.BytesIO(), io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch announces the deprecation of both exporters; they are still the ones that write these formats
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
        ref = model(v)
        torch.jit.save(torch.jit.trace(model, x, check_trace=False), ts_buf)
        # dynamo=False: the TorchScript-based exporter (the dynamo one needs onnxscript)
        torch.onnx.export(model, (x,), onnx_buf, opset_version=OPSET, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    # read both files back, as a user would, and compare on the verification batch
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ts_model = torch.jit.load(io.BytesIO(ts_buf.getvalue()))
        ts_diff = float((ts_model(v) - ref).abs().max())
    sess = ort.InferenceSession(onnx_buf.getvalue(), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"input": v.numpy()})[0]
    onnx_diff = float((torch.from_numpy(onnx_out) - ref).abs().max())
    for name, diff in (("TorchScript", ts_diff), ("ONNX (onnxruntime)", onnx_diff)):
        if not diff <= tolerance:
            raise ExportError(f"the {name} export's logits differ from PyTorch's by {diff:.3g} (> {tolerance:g}) "
                              f"on {len(v)} images; nothing was written to {out}")
    state = {k: t.detach().cpu() for k, t in model.state_dict().items()}
    pt_buf = io.BytesIO()
    torch.save({"state_dict": state, "arch": arch, "space": space, "num_classes": int(ref.size(1)),
                "metad2a_version": __version__}, pt_buf)
    pre = {"format": "metad2a-preprocess", "input_name": "input", "output_name": "logits",
           "layout": "NCHW, RGB, float32", **dict(preprocess)}
    files = {n: out / n for n in FILES}
    write_files({files["model.pt"]: pt_buf.getvalue(), files["model.ts"]: ts_buf.getvalue(),
                 files["model.onnx"]: onnx_buf.getvalue(), files["preprocess.json"]: to_json(pre, indent=2) + "\n"})
    return ExportResult(files, len(v), ts_diff, onnx_diff, tolerance, OPSET, verified_on)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> int:
    """Set the running statistics of every batch-norm layer of an untrained ``model`` to the mean and
    variance of its inputs over ``images`` (a cumulative average over the batches); eval mode after.

    A network that was never trained keeps the initial statistics (mean 0, variance 1); through many
    residual cells its activations can then grow to logits in the hundreds, where float32 rounding alone
    exceeds the export tolerance, and the network is meaningless anyway. ``metad2a search`` calibrates an
    untrained network on the training images before exporting it (docs/fidelity.md#search-command).

    Returns:
        The number of batch-norm layers calibrated.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    return len(bns)


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The contents of an exported ``model.pt`` (weights-only load)."""
    obj = read_record(path, hint="it should be a model.pt written by metad2a's export")
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise MetaD2AError(f"{path}: not a model.pt written by metad2a's export (no state_dict)")
    return obj


def preprocess_info(input_size: int, mean: Sequence[float], std: Sequence[float], class_names: Sequence[str],
                    resize: str) -> dict[str, Any]:
    """The ``preprocess.json`` fields (docs/data.md#export-files)."""
    return {"input_size": int(input_size), "resize": resize, "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], "scale": "pixels / 255 before mean/std",
            "class_names": list(class_names)}


def describe(result: ExportResult) -> str:
    """One line for logs and reports."""
    return (f"TorchScript max |diff| {result.torchscript_max_abs_diff:.2e}, onnxruntime max |diff| "
            f"{result.onnx_max_abs_diff:.2e} on {result.images} images (tolerance {result.tolerance:g})")


__all__ = ["ExportError", "ExportResult", "export", "read_model_file", "preprocess_info", "describe"]
