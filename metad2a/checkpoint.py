"""The one place that reads and writes torch files.

Checkpoints stay in the original format, a plain ``state_dict`` (so the released files drop in
and ours load in the original code); what the original never recorded (hyper-parameters, search
space, epoch, metric, code version) goes into a sidecar JSON next to the file: ``ckpt_400.pt`` ->
``ckpt_400.json``.

No file runs code while it loads (docs/data.md#pickles). Checkpoints, training states, feature files
and records load with ``weights_only=True``. The original *data* files pickle igraph graphs, numpy
values and (OFA) torchvision transforms, which that loader refuses; they go through ``load_data``, a
restricted unpickler that admits exactly the classes those formats contain (:data:`DATA_GLOBALS`,
plus the ``allow`` of a format) and refuses anything else with a one-line error naming the file
and the class. There is no switch that turns the check off.
"""

from __future__ import annotations

import _compat_pickle
import functools
import io
import json
import pickle
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.errors import CheckpointError, DataFileError, one_line
from metad2a.files import atomic_write, to_json, write_files
from metad2a.version import __version__

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net_state_dict")
_PREFIXES = ("module.", "_orig_mod.")


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def checkpoint_files(model: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                     meta: Mapping[str, Any] | None = None) -> dict[Path, bytes]:
    """The contents of a checkpoint (a plain state_dict, tensors copied to the CPU; the live model is
    not moved) and of its sidecar JSON, for :func:`metad2a.files.write_files`."""
    path = Path(path)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    cpu_state = {k: v.detach().cpu() for k, v in state.items()}
    info = {"format": "metad2a-state-dict", "metad2a_version": __version__, **dict(meta or {})}
    return {path: _torch_bytes(cpu_state),
            sidecar_path(path): (to_json(info, indent=2, sort_keys=True, default=str) + "\n").encode()}


def save_checkpoint(model: nn.Module | Mapping[str, torch.Tensor], path: str | Path,
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write a plain state_dict and its sidecar JSON, both or neither (staged, then renamed)."""
    write_files(checkpoint_files(model, path, meta))
    return Path(path)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar JSON of a checkpoint, or {} (released checkpoints have none)."""
    p = sidecar_path(path)
    if not p.is_file():
        return {}
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise CheckpointError(f"{p}: unreadable sidecar JSON ({one_line(e)}); delete it to load the "
                              "checkpoint alone") from e
    if not isinstance(info, dict):
        raise CheckpointError(f"{p}: the sidecar must be a JSON object, got {type(info).__name__}; delete it "
                              "to load the checkpoint alone")
    return info


# What the original data files may hold besides tensors and plain containers (docs/data.md#pickles):
# igraph graphs (they reduce to igraph.Graph(n, edges, directed, attributes)), OrderedDicts, and numpy
# scalars and arrays (the DiffusionNAG copy of the NB201 files keeps flops/params/matrix as numpy).
DATA_GLOBALS = frozenset({
    "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.complex", "builtins.slice",
    "collections.OrderedDict", "_codecs.encode", "igraph.Graph",
    "numpy.dtype", "numpy.ndarray",
    *(f"numpy.{core}.{fn}" for core in ("core", "_core")
      for fn in ("multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer")),
})
# OFA ``collected_database.pt`` and its shards pickle the builder's validation transform in every entry.
TRANSFORM_GLOBALS = frozenset({
    *(f"torchvision.transforms.transforms.{n}"
      for n in ("Compose", "Resize", "CenterCrop", "ToTensor", "Normalize")),
    "torchvision.transforms.functional.InterpolationMode",
})
# The original's pets splits (train85.pth / test15.pth) are lists of (PIL image, label).
PIL_IMAGE_GLOBALS = frozenset({"PIL.Image.Image"})


@functools.lru_cache(maxsize=1)
def _torch_globals() -> frozenset[str]:
    """The classes and functions torch's own ``weights_only`` loader admits (tensors, storages,
    dtypes, their rebuild functions)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return frozenset(_get_allowed_globals())
    except (ImportError, AttributeError):  # another torch layout: the usual tensor rebuilders
        return frozenset({"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
                          "torch._utils._rebuild_parameter", "torch.Size", "torch.device",
                          "torch.storage.UntypedStorage", "torch.storage.TypedStorage"})


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a class or function outside the allowed set (``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _restricted_pickle(allowed: frozenset[str]) -> Any:
    """A ``pickle_module`` for ``torch.load`` whose unpickler resolves only ``allowed`` names."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Python 2 names (protocol 2 pickles say __builtin__.set) checked under the names pickle
            # maps them to; pickle itself then resolves the name as written
            mod, nm = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            mod = _compat_pickle.IMPORT_MAPPING.get(mod, mod)
            if f"{mod}.{nm}" not in allowed:
                raise RefusedGlobal(f"{mod}.{nm}")
            return super().find_class(module, name)

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__="metad2a_restricted_pickle", Unpickler=Unpickler, load=load)


def _refused(path: Path, what: str, error: type[Exception]) -> Exception:
    return error(f"{path}: refused: it holds {what}, which this file format never contains, and loading it "
                 f"could run code; it was not loaded. Obtain the file again from a source you trust")


def _torch_load(path: Path, weights_only: bool, error: type[Exception], hint: str,
                allow: Iterable[str] = (), mmap: bool = False) -> Any:
    if not path.is_file():
        raise error(f"{path}: file not found{'; ' + hint if hint else ''}")
    try:
        if weights_only and mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:  # a legacy (non-zip) file cannot be mapped: read it normally
                if "mmap" not in str(e):
                    raise
        if weights_only:
            return torch.load(path, map_location="cpu", weights_only=True)
        module = _restricted_pickle(_torch_globals() | DATA_GLOBALS | frozenset(allow))
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except RefusedGlobal as e:
        raise _refused(path, f"a Python object of class {e.name}", error) from None
    except Exception as e:  # truncated zip, bad pickle, foreign format: one clear line
        if "Weights only load failed" in str(e):  # torch's refusal; its advice to turn the check off is not ours
            m = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = f"a Python object of class {m.group(1)}" if m else "Python objects other than tensors"
            raise _refused(path, what, error) from None
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


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True, hint: str = "",
                    kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (which keeps its device) and return the sidecar metadata.

    Args:
        kind: the model the caller expects (``generator``/``predictor``); a sidecar that names
            another model is an error that says so.

    Raises:
        CheckpointError: file missing or unreadable, a sidecar naming another model, (strict)
            keys/shapes that do not match (listed in the message), or NaN/infinite weights.
    """
    state = read_state_dict(path, hint)
    meta = read_sidecar(path)
    if kind is not None and meta.get("model") not in (None, kind):
        raise CheckpointError(f"{path} holds a {meta['model']} (its sidecar {sidecar_path(path).name} says "
                              f"model: {meta['model']}), not a {kind}; give the {kind}'s checkpoint")
    problems = check_state_dict(model, state)
    if not strict:
        problems = [p for p in problems if p.startswith("shape")]
    if problems:
        shown = "; ".join(problems[:12]) + (f"; ... {len(problems) - 12} more" if len(problems) > 12 else "")
        saved = ", ".join(f"--{k.replace('_', '-')} {meta[k]}" for k in ("hs", "nz", "nvt", "feature_dim")
                          if k in meta)
        raise CheckpointError(
            f"{path} does not fit {type(model).__name__} ({len(problems)} problem(s): {shown}); check that "
            f"--hs/--nz/--nvt and the feature dimension match the ones it was trained with"
            + (f" (its sidecar says {saved})" if saved else "")
        )
    bad = sum(int((~torch.isfinite(v)).sum()) for v in state.values() if v.is_floating_point())
    if bad:
        total = sum(v.numel() for v in state.values() if v.is_floating_point())
        raise CheckpointError(f"{path}: {bad} of {total} weights are NaN or infinite (the training "
                              "diverged); use an earlier checkpoint or train again")
    model.load_state_dict(state, strict=strict)
    return meta


def load_data(path: str | Path, hint: str = "", allow: Iterable[str] = ()) -> Any:
    """Load one of the original pickled data files (igraph graphs, lists, numpy values) with the
    restricted unpickler: tensors, builtins containers, :data:`DATA_GLOBALS`, and ``allow`` (the extra
    classes of one format, e.g. :data:`TRANSFORM_GLOBALS`).

    Raises:
        DataFileError: missing, unreadable, or holding any other class (named in the message; the
            file is not loaded and none of its code runs).
    """
    return _torch_load(Path(path), False, DataFileError, hint, allow)


def read_record(path: str | Path, hint: str = "", mmap: bool = False) -> Any:
    """Load a torch file of tensors and plain Python values (dicts, lists, str, numbers) safely
    (``weights_only=True``), e.g. the ``seed-XXXX.pth`` results of a trained architecture or a
    feature file (``mmap``: memory-mapped when the file allows it)."""
    return _torch_load(Path(path), True, DataFileError, hint, mmap=mmap)


def save_data(obj: Any, path: str | Path) -> Path:
    """Write a data file (torch pickle) atomically."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(obj, f))
    return path


def training_state_bytes(state: Mapping[str, Any]) -> bytes:
    """The content of ``resume_state.pt``: everything needed to resume meta-training (model,
    optimizer, scheduler, epoch, best metric, RNG), written with the epoch's other files after every
    epoch so a crash loses at most the epoch in progress."""
    return _torch_bytes(dict(state))


def read_training_state(path: str | Path) -> dict[str, Any]:
    return _torch_load(Path(path), True, CheckpointError, "delete it to start meta-training from scratch")
