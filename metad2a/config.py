"""Frozen configuration dataclasses. Only the command-line modules read argparse; everything below
gets these (and the search space's own options object, ``SearchSpace.options``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from metad2a.errors import MetaD2AError

GENERATOR_HS = 56
PREDICTOR_HS = 512


def require_positive(obj: Any, *names: str, label: str = "--{flag}", allow_none: bool = False,
                     error: type[Exception] = MetaD2AError) -> None:
    """Raise a one-line ``error`` unless each named value is an int >= 1 (or None, if allowed).

    ``obj`` is a mapping of the values or an object whose attributes they are. ``label`` formats
    the name for the message: ``"--{flag}"`` gives ``--max-steps`` for ``max_steps``; ``"training
    recipe: {name}"`` gives ``training recipe: epochs``.
    """
    for name in names:
        v = obj[name] if isinstance(obj, Mapping) else getattr(obj, name)
        if v is None and allow_none:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            what = label.format(flag=name.replace("_", "-"), name=name)
            raise error(f"{what} must be a positive integer, got {v!r}")


@dataclass(frozen=True)
class RunConfig:
    space: str  # search-space id (a key of search_spaces.SEARCH_SPACES)
    model: str  # "generator" or "predictor"
    test: bool
    seed: int = 333
    device: str = "cpu"
    save_path: Path = Path("results")
    data_path: Path = Path("data")
    resume: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of either model. ``hs`` defaults differ: 56 (generator), 512 (predictor)."""

    hs: int
    nz: int = 56
    nvt: int = 7
    max_n: int = 8
    num_sample: int = 20


@dataclass(frozen=True)
class TrainConfig:
    max_epoch: int = 400
    save_epoch: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    # new: weight of a pairwise ranking term beside the predictor's MSE (0: the original loss only;
    # docs/fidelity.md#rank-loss)
    rank_loss: float = 0.0


@dataclass(frozen=True)
class MetaTestConfig:
    data_names: tuple[str, ...]
    num_gen_arch: int = 800
    num_class: int | None = None
    load_epoch: int = 20
    train_arch: bool = True
    gen_batch_size: int = 100  # resampled sets per decoding batch (original: 100)
    pred_num_sets: int = 10  # resampled sets averaged per architecture (original: 10; --pred-num-sets)
    # new ranking options (docs/fidelity.md#ranking-options); the defaults keep the original ranking
    ensemble: tuple[Path, ...] = ()  # further predictor checkpoints, averaged with ckpt_max_corr.pt
    likelihood_weight: float = 0.0  # in [0, 1]: share of the generator's log-likelihood in the ranking
    max_gen_batches: int = 2000  # cap on decoding batches per run (the original has ~none)


def to_dict(*configs: Any) -> dict[str, Any]:
    """Configs as one JSON-ready dict keyed by class name (None entries are skipped)."""
    out = {}
    for c in configs:
        if c is None or not is_dataclass(c):
            continue
        out[type(c).__name__] = {f.name: _plain(getattr(c, f.name)) for f in fields(c)}
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if is_dataclass(v):
        return {k: _plain(x) for k, x in asdict(v).items()}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v
