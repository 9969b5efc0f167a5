"""D-VAE message passing core (Zhang et al., NeurIPS 2019, muhanzhang/D-VAE, MIT), batched.

``DVAEBase`` holds the computations shared by the generator and the predictor. It registers no
parameters itself: each model registers its modules in the original order under the original
names (so the released checkpoints load with ``strict=True``) and calls these methods with them.

Equations (docs/fidelity.md#dvae-core). For vertex ``v`` with type one-hot ``x_v``:
    m_j = gate([h_j, e_j]) * mapper([h_j, e_j])      e_j = one-hot of the neighbour's index (vid)
    h_v = GRUCell(x_v, sum over neighbours j of m_j)  (zeros for the first vertex of a pass)
The original computes this per graph in Python and pads neighbour lists with zeros; the mapper
has no bias, so padding adds exactly zero, and summing masked messages is the same sum. A vertex's
message only depends on its own final state, so it is computed once, when the state is final.

Shape legend: ``n`` graphs, ``m`` = max_n vertices, ``h`` = hs, ``t`` = nvt vertex types.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metad2a.nn.graph_batch import GraphBatch


class DVAEBase(nn.Module):
    """Shared D-VAE graph propagation. Subclasses call ``_init_dims`` first."""

    nvt: int
    max_n: int
    hs: int

    def _init_dims(self, nvt: int, max_n: int, hs: int, nz: int, feature_dim: int, num_sample: int,
                   start_type: int, end_type: int) -> None:
        """The sizes both models record (plain attributes, not parameters: the state_dict is unchanged)."""
        self.nz = nz
        self.feature_dim = feature_dim
        self.num_sample = num_sample
        self.nvt = nvt
        self.max_n = max_n
        self.hs = hs
        self.vs = hs + max_n  # vertex state width with the vid one-hot appended
        self.start_type = start_type
        self.end_type = end_type

    def _one_hot(self, types: torch.Tensor) -> torch.Tensor:
        return F.one_hot(types, self.nvt).to(self._dtype())

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _message(self, h: torch.Tensor, v: int, gate: nn.Module, mapper: nn.Module) -> torch.Tensor:
        """Gated message of vertex ``v`` with state ``h`` [n, h] -> [n, h]."""
        vid = h.new_zeros(h.size(0), self.max_n)
        vid[:, v] = 1.0
        hv = torch.cat([h, vid], 1)
        return gate(hv) * mapper(hv)

    def propagate(
        self,
        batch: GraphBatch,
        grucell: nn.GRUCell,
        gate: nn.Module,
        mapper: nn.Module,
        reverse: bool = False,
    ) -> torch.Tensor:
        """One full pass over every vertex (forward: 0..m-1 from predecessors; reverse: m-1..0 from
        successors), the first vertex of the pass starting from zeros, as D-VAE's ``_propagate_from``.

        Returns:
            [n, m, h] vertex states; zeros at padding positions.
        """
        n, m = len(batch), batch.max_n
        X = self._one_hot(batch.types)  # [n, m, t]
        exists = (torch.arange(m, device=batch.device)[None, :] < batch.num_vertices[:, None]).to(X.dtype)
        adj = batch.adj.to(X.dtype)
        order = range(m - 1, -1, -1) if reverse else range(m)
        states: dict[int, torch.Tensor] = {}
        done: list[int] = []
        msgs: list[torch.Tensor] = []
        for v in order:
            if done:
                w = adj[:, v, done] if reverse else adj[:, done, v]  # [n, k] neighbour weights
                h_in = torch.einsum("nk,nkh->nh", w, torch.stack(msgs, 1))
            else:
                h_in = X.new_zeros(n, self.hs)
            h = grucell(X[:, v], h_in) * exists[:, v : v + 1]
            states[v] = h
            done.append(v)
            msgs.append(self._message(h, v, gate, mapper))
        return torch.stack([states[v] for v in range(m)], 1)

    def graph_state(self, H_forward: torch.Tensor, H_backward: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """``[h_forward(last vertex), h_backward(vertex 0)]`` -> [n, 2h] (bidirectional D-VAE)."""
        last = (batch.num_vertices - 1).clamp(min=0)
        hf = H_forward[torch.arange(len(batch), device=batch.device), last]
        return torch.cat([hf, H_backward[:, 0]], 1)
