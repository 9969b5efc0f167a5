"""The one place that reads and writes torch files.

Checkpoints stay in the original format, a plain ``state_dict`` (so the released files drop in
and ours load in the original code); what the original never recorded (hyper-parameters, search
space, epoch, metric, code version) goes into a sidecar JSON next to the file: ``ckpt_400.pt`` ->
``ckpt_400.json``.

Loading uses ``weights_only=True``. The original *data* files pickle igraph graphs and lists and
cannot load that way; they go through ``load_trusted_data``, the only call that disables it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.errors import CheckpointError, DataFileError, one_line
from metad2a.files import atomic_write
from metad2a.version import __version__

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net_state_dict")
_PREFIXES = ("module.", "_orig_mod.")


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(model: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write a plain state_dict atomically (temp file + rename), plus the sidecar JSON.

    Tensors are copied to the CPU; the live model is not moved.
    """
    path = Path(path)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    cpu_state = {k: v.detach().cpu() for k, v in state.items()}
    atomic_write(path, lambda f: torch.save(cpu_state, f))
    info = {"format": "metad2a-state-dict", "metad2a_version": __version__, **dict(meta or {})}
    text = json.dumps(info, indent=2, sort_keys=True, default=str).encode()
    atomic_write(sidecar_path(path), lambda f: f.write(text))
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar JSON of a checkpoint, or {} (released checkpoints have none)."""
    p = sidecar_path(path)
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: unreadable sidecar JSON ({e}); delete it to load the checkpoint alone") from e


def _torch_load(path: Path, weights_only: bool, error: type[Exception], hint: str) -> Any:
    if not path.is_file():
        raise error(f"{path}: file not found{'; ' + hint if hint else ''}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # truncated zip, bad pickle, foreign format: one clear line
        msg = one_line(e, first=True)
        raise error(
            f"{path}: cannot be read as a PyTorch file ({type(e).__name__}: {msg}); it may be truncated "
            f"or corrupt: delete it and obtain it again{' (' + hint + ')' if hint else ''}"
        ) from e


def read_state_dict(path: str | Path, hint: str = "") -> dict[str, torch.Tensor]:
    """Read a checkpoint into a flat state_dict on the CPU.

    Accepts a plain state_dict (original and ours) or a dict wrapping one under ``state_dict``,
    ``model``, ``model_state_dict`` or ``net_state_dict``; strips ``module.`` (DataParallel) and
    ``_orig_mod.`` (torch.compile) prefixes.
    """
    path = Path(path)
    obj = _torch_load(path, True, CheckpointError, hint)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    out = {}
    for k, v in obj.items():
        for prefix in _PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Differences between a model's parameters and a state_dict, one line each."""
    own = model.state_dict()
    problems = [f"missing: {k}" for k in own if k not in state]
    problems += [f"unexpected: {k}" for k in state if k not in own]
    problems += [
        f"shape of {k}: checkpoint {list(state[k].shape)} vs model {list(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    return problems


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True, hint: str = "") -> dict[str, Any]:
    """Load a checkpoint into ``model`` (which keeps its device) and return the sidecar metadata.

    Raises:
        CheckpointError: file missing or unreadable, or (strict) keys/shapes that do not match,
            listed in the message.
    """
    state = read_state_dict(path, hint)
    problems = check_state_dict(model, state)
    if not strict:
        problems = [p for p in problems if p.startswith("shape")]
    if problems:
        shown = "; ".join(problems[:12]) + (f"; ... {len(problems) - 12} more" if len(problems) > 12 else "")
        raise CheckpointError(
            f"{path} does not fit {type(model).__name__} ({len(problems)} problem(s): {shown}); check that "
            f"--hs/--nz/--nvt and the feature dimension match the ones it was trained with"
        )
    model.load_state_dict(state, strict=strict)
    return read_sidecar(path)


def load_trusted_data(path: str | Path, hint: str = "") -> Any:
    """Load one of the original pickled data files (igraph graphs, lists, numpy scalars).

    ``weights_only=False`` on purpose: these files hold Python objects that the safe loader
    refuses (PyTorch >= 2.6 defaults to weights_only=True). Only load files you trust, such as
    the ones the ``get_files`` scripts download or that this package wrote.
    """
    return _torch_load(Path(path), False, DataFileError, hint)


def read_record(path: str | Path, hint: str = "") -> Any:
    """Load a torch file of tensors and plain Python values (dicts, lists, str, numbers) safely
    (``weights_only=True``), e.g. the ``seed-XXXX.pth`` results of a trained architecture."""
    return _torch_load(Path(path), True, DataFileError, hint)


def save_data(obj: Any, path: str | Path) -> Path:
    """Write a data file (torch pickle) atomically."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(obj, f))
    return path


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Everything needed to resume meta-training (model, optimizer, scheduler, epoch, best metric,
    RNG), written atomically after every epoch so a crash loses at most the epoch in progress."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(dict(state), f))
    return path


def read_training_state(path: str | Path) -> dict[str, Any]:
    return _torch_load(Path(path), True, CheckpointError, "delete it to start meta-training from scratch")
