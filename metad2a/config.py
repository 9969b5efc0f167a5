"""Frozen configuration dataclasses. Only ``cli.py`` reads argparse; everything below gets these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunConfig:
    space: str  # search-space id ("nasbench201" / "ofa_mbv3")
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


GENERATOR_HS = 56
PREDICTOR_HS = 512


@dataclass(frozen=True)
class TrainConfig:
    max_epoch: int = 400
    save_epoch: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    # OFA original (ORIGINAL.md §3.8, §5.6): the generator takes one optimizer step per task, and
    # logs losses divided by the task's feature rows (way * num_sample). ``--ofa-per-set`` turns it
    # off: one step per batch, losses / batch size, as NB201.
    step_per_sample: bool = False


@dataclass(frozen=True)
class MetaTestConfig:
    data_names: tuple[str, ...]
    num_gen_arch: int = 800
    num_class: int | None = None
    load_epoch: int = 20
    train_arch: bool = True
    train_epochs: int | None = None  # --epochs for --train-arch (None: the original recipe's 200 / mnist 50)
    nb201_table: Path | None = None
    gen_batch_size: int = 100  # resampled sets per decoding batch (original: 100)
    pred_num_sets: int = 10  # resampled sets averaged per architecture (original: 10)
    max_gen_batches: int = 2000  # cap on decoding batches per run (the original has ~none)
    # OFA original (ORIGINAL.md §3.9, §5.3-§5.4): the gen_batch_size resampled sets of a batch are
    # pooled into ONE set -> one latent -> one decoded graph per batch, scored by the predictor on
    # the same pooled set with the graph's sampled edges. ``--ofa-per-set`` turns it off.
    pool_sets: bool = False
    # the original OFA loader holds 1,000,000 sets, i.e. 10,000 pooled batches: its de-facto cap
    max_pooled_batches: int = 10_000


def to_dict(*configs: Any) -> dict[str, Any]:
    """Configs as one JSON-ready dict keyed by class name."""
    return {type(c).__name__: {k: str(v) if isinstance(v, Path) else v for k, v in asdict(c).items()}
            for c in configs}
