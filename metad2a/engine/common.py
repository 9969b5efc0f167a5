"""Model construction and checkpoint loading shared by the runners."""

from __future__ import annotations

from pathlib import Path

import torch

from metad2a import paths
from metad2a.checkpoint import load_checkpoint, read_state_dict
from metad2a.config import ModelConfig
from metad2a.data.formats import read_bylabel, read_meta_train, read_task_list
from metad2a.data.meta_train import MetaTrainDatabase
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
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
