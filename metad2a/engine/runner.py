"""What the generator and predictor runners share: models built and loaded for the space, the
batch loop of one meta-training epoch, and the encoding of ragged batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from metad2a.config import ModelConfig, RunConfig
from metad2a.data.meta_train import Batch, RaggedBatch
from metad2a.log import Progress, progress_iter
from metad2a.models.factory import ModelKind, build_model, load_trained
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.search_spaces.base import SearchSpace

log = logging.getLogger("metad2a")


def encode_ragged(encode: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]],
                  xs: Sequence[torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``encode`` each set of a list whose sets differ in size: [rows_i, d] -> rows of [b, z].

    Sets of equal size are encoded together. Every set is pooled independently, so this equals the
    original's one-set-at-a-time loop (up to float summation order) in fewer calls.
    """
    order: list[int] = []
    chunks: list[tuple[torch.Tensor, ...]] = []
    for size in sorted({len(x) for x in xs}):
        idx = [i for i, x in enumerate(xs) if len(x) == size]
        out = encode(torch.stack([xs[i] for i in idx]))
        chunks.append(out if isinstance(out, tuple) else (out,))
        order += idx
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    outs = tuple(torch.cat(parts)[inverse.to(parts[0].device)] for parts in zip(*chunks))
    return outs if len(outs) > 1 else outs[0]


def set_encode_batch(model: GeneratorModel | PredictorModel, batch: Batch | RaggedBatch,
                     device: torch.device) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``model.set_encode`` of a meta-training batch, stacked ([b, c*n, d]) or ragged (list of sets)."""
    if isinstance(batch, RaggedBatch):
        return encode_ragged(model.set_encode, [x.to(device) for x in batch.xs])
    return model.set_encode(batch.x.to(device))


def optimise(opt: torch.optim.Optimizer | None, compute: Callable[[], Any]) -> Any:
    """``compute()`` the loss (or a tuple starting with it); with an optimizer, one step on it."""
    if opt is not None:
        opt.zero_grad()
    out = compute()
    if opt is not None:
        (out[0] if isinstance(out, tuple) else out).backward()
        opt.step()
    return out


class Runner:
    """What both runners share: the search space and its options, run/model configs and device."""

    kind: ModelKind  # "generator" or "predictor"

    def __init__(self, space: SearchSpace, run: RunConfig, mc: ModelConfig, device: torch.device,
                 options: Any = None) -> None:
        self.space, self.run, self.mc, self.device, self.options = space, run, mc, device, options
        self.loop = space.loop_style(options)

    def build(self, feature_dim: int) -> GeneratorModel | PredictorModel:
        """A fresh model of this runner's kind for the space, on the device."""
        return build_model(self.kind, nvt=self.space.nvt, max_n=self.space.max_n, hs=self.mc.hs, nz=self.mc.nz,
                           feature_dim=feature_dim, num_sample=self.mc.num_sample,
                           start_type=self.space.start_type, end_type=self.space.end_type).to(self.device)

    def load_model(self, kind: ModelKind, path: Path, hint: str,
                   mc: ModelConfig | None = None) -> tuple[GeneratorModel | PredictorModel, dict]:
        """A trained model of ``kind`` for the space (feature dimension from the checkpoint), eval mode."""
        mc = mc or self.mc
        model, meta = load_trained(kind, path, nvt=self.space.nvt, max_n=self.space.max_n, hs=mc.hs, nz=mc.nz,
                                   num_sample=mc.num_sample, start_type=self.space.start_type,
                                   end_type=self.space.end_type, hint=hint, device=self.device)
        if meta.get("trained_on"):  # a committed prior says what it learnt from (docs/data.md#committed-priors)
            log.info(f"==> {kind} {Path(path).name} was meta-trained on {meta['trained_on']}; "
                     f"dataset conditioning: {meta.get('dataset_conditioning', 'not recorded')}")
        return model, meta

    def prepare_meta_train(self) -> tuple[GeneratorModel | PredictorModel, Any]:
        """The model to meta-train and its database, as the space reads them."""
        return self.space.prepare_meta_train(self.kind, self.run.data_path, self.mc.num_sample, self.build)

    def checkpoint_meta(self, model: torch.nn.Module, **extra: object) -> dict:
        """The sidecar JSON of this runner's checkpoints: what the original never recorded."""
        return {"model": self.kind, "space": self.space.name, "hs": self.mc.hs, "nz": self.mc.nz,
                "nvt": self.space.nvt, "max_n": self.space.max_n, "num_sample": self.mc.num_sample,
                "feature_dim": model.feature_dim, **extra}

    @staticmethod
    def epoch_batches(db: Any, mode: str, batch_size: int, desc: str) -> Iterator[tuple[Any, Progress]]:
        """The batches of one epoch over split ``mode`` (shuffled for training) with a progress
        display (a bar in a terminal, a log line every 10 s otherwise); yields ``(batch, progress)``
        so that the caller can set its text."""
        yield from progress_iter(db.batches(mode, batch_size, shuffle=mode == "train"),
                                 db.num_batches(mode, batch_size), desc, unit="batch")
