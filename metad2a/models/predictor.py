"""PredictorModel: dataset encoding + bidirectional D-VAE graph encoding -> accuracy (docs/fidelity.md#predictor).

Attribute names and registration order are the original's, unused modules included, so the
released ``ckpt_max_corr.pt`` files load with ``strict=True``.

Shape legend: ``b`` (dataset, graph) pairs, ``z`` = nz, ``h`` = hs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metad2a.nn.dvae import DVAEBase
from metad2a.nn.graph_batch import GraphBatch
from metad2a.nn.set_pool import SetPool, encode_dataset, encode_projected

# One standard deviation of accuracy in the predictor's target units, ((acc - mean) / std) / 100.
RANK_TAU = 0.01


class PredictorModel(DVAEBase):
    """Meta-performance predictor. Output: the normalised accuracy ``((acc - mean) / std) / 100``.

    Args:
        nvt: vertex types including start and end.
        max_n: vertices of a full graph.
        hs: GRU hidden size (README: 512).
        nz: dataset / graph embedding size (README: 56).
        feature_dim: width of the dataset features (512 for ResNet-18).
        num_sample: feature rows per class in a task.
        start_type: vertex type of the input vertex.
        end_type: vertex type of the output vertex.
    """

    def __init__(
        self,
        nvt: int,
        max_n: int,
        hs: int = 512,
        nz: int = 56,
        feature_dim: int = 512,
        num_sample: int = 20,
        start_type: int = 0,
        end_type: int = 1,
    ) -> None:
        super().__init__()
        self._init_dims(nvt, max_n, hs, nz, feature_dim, num_sample, start_type, end_type)
        gs, vs = hs, hs + max_n
        self.grue_forward = nn.GRUCell(nvt, hs)
        self.grue_backward = nn.GRUCell(nvt, hs)
        self.fc1 = nn.Linear(gs, nz)  # graph embedding
        self.fc2 = nn.Linear(gs, nz)  # unused
        self.gate_forward = nn.Sequential(nn.Linear(vs, hs), nn.Sigmoid())
        self.gate_backward = nn.Sequential(nn.Linear(vs, hs), nn.Sigmoid())
        self.mapper_forward = nn.Sequential(nn.Linear(vs, hs, bias=False))
        self.mapper_backward = nn.Sequential(nn.Linear(vs, hs, bias=False))
        self.hv_unify = nn.Sequential(nn.Linear(hs * 2, hs))  # unused
        self.hg_unify = nn.Sequential(nn.Linear(gs * 2, gs))
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()
        self.tanh = nn.Tanh()
        self.logsoftmax1 = nn.LogSoftmax(1)
        self.intra_setpool = SetPool(feature_dim, 1, nz, dim_hidden=nz, num_heads=4)
        self.inter_setpool = SetPool(nz, 1, nz, dim_hidden=nz, num_heads=4)
        self.set_fc = nn.Sequential(nn.Linear(feature_dim, nz), nn.ReLU())  # unused
        self.pred_fc = nn.Sequential(nn.Linear(nz * 2, hs), nn.Tanh(), nn.Linear(hs, 1))
        self.mseloss = nn.MSELoss(reduction="sum")

    def set_encode(self, X: torch.Tensor) -> torch.Tensor:
        """Features [b, c*s, d] -> dataset embedding ``D_mu`` [b, z]."""
        return encode_dataset(self.intra_setpool, self.inter_setpool, X, self.num_sample)

    def project_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The encoder's per-row work for feature rows [R, d] -> [R, 3*z] (``set_encode_projected``)."""
        return self.intra_setpool.project(rows)

    def set_encode_projected(self, P: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``set_encode(rows[idx])`` given ``P = project_rows(rows)``; ``idx`` [b, c*s] -> [b, z]."""
        return encode_projected(self.intra_setpool, self.inter_setpool, P, idx, self.num_sample)

    def graph_encode(self, graphs: GraphBatch) -> torch.Tensor:
        """Bidirectional D-VAE encoding -> ``G_mu = fc1(hg_unify([h_fwd(last), h_bwd(0)]))`` [b, z]."""
        Hf = self.propagate(graphs, self.grue_forward, self.gate_forward, self.mapper_forward)
        Hb = self.propagate(graphs, self.grue_backward, self.gate_backward, self.mapper_backward, reverse=True)
        return self.fc1(self.hg_unify(self.graph_state(Hf, Hb, graphs)))

    def predict(self, D_mu: torch.Tensor, G_mu: torch.Tensor) -> torch.Tensor:
        """Head on precomputed embeddings: [b, z], [b, z] -> [b, 1]."""
        return self.pred_fc(torch.cat([D_mu, G_mu], 1))

    def forward(self, X: torch.Tensor, graphs: GraphBatch) -> torch.Tensor:
        """Features [b, c*s, d] and b graphs -> predicted normalised accuracy [b, 1]."""
        return self.predict(self.set_encode(X), self.graph_encode(graphs))


@torch.no_grad()
def score_sets(model: PredictorModel, sets: torch.Tensor, graphs: GraphBatch) -> torch.Tensor:
    """Predictions for every (set, graph) pair, averaged over the sets: [S, rows, d] x A graphs -> [A] (CPU).

    The dataset encoding does not depend on the graph, so the ``S`` sets are encoded once and
    paired with every graph (common random numbers, docs/fidelity.md#predictor-common-sets).
    """
    D = model.set_encode(sets)  # [S, z]
    G = model.graph_encode(graphs)  # [A, z]
    S, A = D.size(0), G.size(0)
    pairs = torch.cat([D[:, None].expand(S, A, -1), G[None].expand(S, A, -1)], 2)
    return model.pred_fc(pairs).squeeze(2).mean(0).cpu()  # [A]


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor, tau: float = RANK_TAU) -> torch.Tensor:
    """RankNet's pairwise logistic loss over a batch (Burges et al., ICML 2005), a new option
    (``--rank-loss``, docs/fidelity.md#rank-loss).

    Mean, over every pair ``(i, j)`` of the batch with ``target_i > target_j``, of
    ``tau * softplus(-(pred_i - pred_j) / tau)``: the predictions are compared in units of ``tau``
    (one accuracy standard deviation of the predictor's normalised target), and the factor ``tau``
    keeps the gradient per prediction near ``1 / batch``, the scale of the summed MSE's gradient.
    A batch without such a pair gives 0.

    Args:
        pred: [b] predictions.
        target: [b] targets.
    """
    better = target[:, None] > target[None, :]  # [b, b]: i better than j
    if not bool(better.any()):
        return pred.sum() * 0.0
    diff = (pred[:, None] - pred[None, :])[better]
    return tau * F.softplus(-diff / tau).mean()
