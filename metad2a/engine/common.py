"""Model construction, checkpoint loading and meta-training data set-up shared by the runners."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from metad2a import paths
from metad2a.checkpoint import load_checkpoint, read_state_dict
from metad2a.config import ModelConfig, RunConfig
from metad2a.data.catalog import SpaceCatalog, space_catalog
from metad2a.data.collected_database import load_or_make_splits
from metad2a.data.formats import read_bylabel, read_meta_train, read_task_list
from metad2a.data.meta_train import Batch, MetaTrainDatabase, RaggedBatch, RaggedMetaTrainDatabase
from metad2a.errors import DataFileError
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.base import SearchSpace

FEATURE_KEY = "intra_setpool.enc.0.mab.fc_q.weight"  # its in-features are the feature dimension


def build_model(kind: str, space: SearchSpace, mc: ModelConfig, feature_dim: int) -> GeneratorModel | PredictorModel:
    cls = GeneratorModel if kind == "generator" else PredictorModel
    return cls(nvt=space.nvt, max_n=space.max_n, hs=mc.hs, nz=mc.nz, feature_dim=feature_dim,
               num_sample=mc.num_sample, start_type=space.start_type, end_type=space.end_type)


def load_trained(kind: str, space: SearchSpace, mc: ModelConfig, path: Path, hint: str,
                 device: torch.device) -> tuple[GeneratorModel | PredictorModel, dict]:
    """Build a model whose feature dimension is read from the checkpoint, load it strictly, eval mode."""
    state = read_state_dict(path, hint)
    feature_dim = state[FEATURE_KEY].shape[1] if FEATURE_KEY in state else 512
    model = build_model(kind, space, mc, feature_dim)
    meta = load_checkpoint(model, path, hint=hint)
    return model.to(device).eval(), meta


def load_meta_train_db(space: SearchSpace, data_path: Path, kind: str, num_sample: int) -> MetaTrainDatabase:
    """The NB201 meta-training files: imgnet32 features, the task list and the model's database."""
    hint = f"download it with `{paths.GET_PREPROCESSED}` or build one with `metad2a build-database`"
    db_file, idx_file = paths.meta_train_tasks(data_path, kind)
    for p in (db_file, idx_file):
        paths.require(p, hint)
    tasks = read_task_list(paths.require(Path(data_path) / paths.META_TRAIN_TASK_LST, hint), hint)
    mt = read_meta_train(db_file, idx_file, hint)
    feats = read_bylabel(paths.bylabel(data_path, paths.IMAGENET32), hint=hint)
    return MetaTrainDatabase(mt, tasks, feats, space.max_n, num_sample, class_offset=1, source=str(db_file))


def load_collected_db(space: SearchSpace, data_path: Path, kind: str, num_sample: int,
                      feats: Sequence[torch.Tensor]) -> RaggedMetaTrainDatabase:
    """The OFA meta-training database of ``kind`` (split on first use), over imgnet32 ``feats``."""
    # imported here: the module is only needed for this text, and it imports requests
    from metad2a.data.downloads import OFA_PREDICTOR_DATABASE_UNAVAILABLE

    hint = (f"download it with `{paths.GET_GENERATOR_DATABASE}`" if kind == "generator"
            else OFA_PREDICTOR_DATABASE_UNAVAILABLE)
    splits = load_or_make_splits(data_path, kind, hint)
    src = str(paths.collected_database(data_path, kind))
    graphs = {}
    for name, sp in splits.items():
        try:
            types = [space.arch_types(net) for net in sp.nets]
        except ValueError as e:  # ArchDictError: one line naming the file
            raise DataFileError(f"{paths.collected_split(data_path, kind, name)}: {e}") from e
        edges = [space.arch_edges(net) for net in sp.nets]
        graphs[name] = GraphBatch.from_lists(types, edges, space.max_n)
    return RaggedMetaTrainDatabase(
        feats, {k: v.classes for k, v in splits.items()}, graphs, {k: v.acc for k, v in splits.items()},
        splits["train"].mean, splits["train"].std, num_sample, source=src)


def prepare_meta_train(kind: str, space: SearchSpace, catalog: SpaceCatalog, mc: ModelConfig, data_path: Path,
                       device: torch.device) -> tuple[GeneratorModel | PredictorModel,
                                                      MetaTrainDatabase | RaggedMetaTrainDatabase]:
    """The model to meta-train (on ``device``) and its database, from the space's meta-train source."""
    if catalog.meta_train_source == "nb201_tasks":
        db = load_meta_train_db(space, data_path, kind, mc.num_sample)
        return build_model(kind, space, mc, db.feats[0].size(1)).to(device), db
    feats = read_bylabel(paths.bylabel(data_path, paths.IMAGENET32),
                         hint=f"download it with `{paths.GET_PREPROCESSED}`")
    # The original builds the model before its database, so a first-use split (torch.randperm)
    # draws from the global RNG after the model's initialisation: keep that order.
    model = build_model(kind, space, mc, feats[0].size(1)).to(device)
    return model, load_collected_db(space, data_path, kind, mc.num_sample, feats)


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


class Runner:
    """What both runners share: the search space, run/model configs, device and dataset catalog."""

    kind: str  # "generator" or "predictor"

    def __init__(self, space: SearchSpace, run: RunConfig, mc: ModelConfig, device: torch.device) -> None:
        self.space, self.run, self.mc, self.device = space, run, mc, device
        self.catalog = space_catalog(space.name)

    def checkpoint_meta(self, model: torch.nn.Module, **extra: object) -> dict:
        """The sidecar JSON of this runner's checkpoints: what the original never recorded."""
        return {"model": self.kind, "space": self.space.name, "hs": self.mc.hs, "nz": self.mc.nz,
                "nvt": self.space.nvt, "max_n": self.space.max_n, "num_sample": self.mc.num_sample,
                "feature_dim": model.feature_dim, **extra}
