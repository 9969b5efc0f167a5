"""Frozen configuration dataclasses. Only the command-line modules read argparse; everything below
gets these (and the search space's own options object, ``SearchSpace.options``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

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


LATENCY_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Budget:
    """What a searched architecture may cost (docs/fidelity.md#budget): the search keeps only
    candidates within every limit given. None means no limit; with no limit at all the search is the
    unconstrained one, unchanged.

    Attributes:
        max_params_m: parameters, in millions (``--max-params``).
        max_mflops: multiply-accumulates per image, in millions (``--max-flops``).
        max_latency_ms: latency of one forward pass of ``latency_batch`` images, measured on
            ``latency_device`` with ``latency_threads`` intra-op threads (``--max-latency-ms``).
        latency_device: ``cpu``, ``cuda`` or ``cuda:<i>``.
        latency_batch: images per timed forward pass.
        latency_threads: torch intra-op threads while timing.
        input_size: image side the sizes and latency are counted at; None: the space's
            (``SearchSpace.cost_input_size``).
        cache: a folder of latency caches, or one cache file; None: ``<save-path>/latency``.
    """

    max_params_m: float | None = None
    max_mflops: float | None = None
    max_latency_ms: float | None = None
    latency_device: str = "cpu"
    latency_batch: int = 1
    latency_threads: int = 1
    input_size: int | None = None
    cache: Path | None = None

    FLAGS: ClassVar[dict[str, str]] = {"max_params_m": "--max-params", "max_mflops": "--max-flops",
                                       "max_latency_ms": "--max-latency-ms"}

    def __post_init__(self) -> None:
        for name, flag in self.FLAGS.items():
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise MetaD2AError(f"{flag} must be a positive number, got {v!r}")
        require_positive(self, "latency_batch", "latency_threads", "input_size", allow_none=True)
        if not isinstance(self.latency_device, str) or not LATENCY_DEVICE.fullmatch(self.latency_device):
            raise MetaD2AError(f"--latency-device {self.latency_device!r} is not a device; use cpu, cuda or "
                               f"cuda:<index>")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return any(getattr(self, name) is not None for name in self.FLAGS)

    @property
    def measures_latency(self) -> bool:
        return self.max_latency_ms is not None

    def limits(self) -> dict[str, float]:
        """The limits that are set, keyed like the cost records (``params_m``, ``mflops``, ``latency_ms``)."""
        keys = {"max_params_m": "params_m", "max_mflops": "mflops", "max_latency_ms": "latency_ms"}
        return {keys[n]: getattr(self, n) for n in self.FLAGS if getattr(self, n) is not None}


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
    constrained_decoding: bool = False  # decode only valid architectures (docs/fidelity.md#constrained-decoding)
    fast_resampling: bool = False  # resampled sets from few random numbers (docs/fidelity.md#fast-resampling)
    budget: Budget = field(default_factory=Budget)  # no limit: the unconstrained search


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
