"""GeneratorModel: dataset encoder -> latent z -> D-VAE graph decoder (docs/fidelity.md#generator).

Attribute names and registration order are the original's, unused modules included, so that the
released checkpoints (NB201 ``ckpt_400.pt``, OFA ``ckpt_120.pt``) load with ``strict=True``.

Shape legend: ``b`` tasks, ``c`` classes, ``s`` samples per class, ``d`` feature dim, ``z`` = nz,
``h`` = hs, ``m`` = max_n, ``t`` = nvt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from metad2a.nn.dvae import DVAEBase
from metad2a.nn.graph_batch import GraphBatch
from metad2a.nn.set_pool import SetPool, encode_dataset, encode_projected

# Reproduction constants of the original (no annealing, no tuning flags).
EPS_SCALE = 0.01  # reparameterisation noise is scaled down 100x: the "VAE" is nearly deterministic
KL_BETA = 0.005  # fixed KL weight


class DecodeConstraints(Protocol):
    """What constrained decoding may decode (docs/fidelity.md#constrained-decoding); a search
    space provides it, the model only applies it.

    ``type_mask(position, types)``: the vertex types allowed at ``position`` given the types so
    far ``types`` [n, position] -> [n, nvt] bool.
    ``edge_mask(position, types)``: for the new vertex at ``position`` (its type included in
    ``types`` [n, position + 1]), which edges from the earlier vertices are allowed and which are
    required -> two [n, position] bool tensors. Edges into the end vertex are always the joins of
    the vertices left without an out-edge, as in unconstrained decoding.
    """

    def type_mask(self, position: int, types: torch.Tensor) -> torch.Tensor: ...

    def edge_mask(self, position: int, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class GeneratorModel(DVAEBase):
    """Conditional graph generator.

    Args:
        nvt: vertex types including start and end (7 for NB201, 29 for OFA).
        max_n: vertices of a full graph (8 for NB201, 22 for OFA).
        hs: GRU hidden size (README: 56).
        nz: latent size (README: 56).
        feature_dim: width of the dataset features (512 for ResNet-18).
        num_sample: feature rows per class in a task.
        start_type: vertex type of the input vertex.
        end_type: vertex type of the output vertex.
    """

    def __init__(
        self,
        nvt: int,
        max_n: int,
        hs: int = 56,
        nz: int = 56,
        feature_dim: int = 512,
        num_sample: int = 20,
        start_type: int = 0,
        end_type: int = 1,
    ) -> None:
        super().__init__()
        self._init_dims(nvt, max_n, hs, nz, feature_dim, num_sample, start_type, end_type)
        gs, vs = hs, hs + max_n
        self.grue_forward = nn.GRUCell(nvt, hs)  # unused: graph encoder kept for checkpoint keys
        self.grue_backward = nn.GRUCell(nvt, hs)  # unused
        self.enc_g_mu = nn.Linear(gs, nz)  # unused
        self.enc_g_var = nn.Linear(gs, nz)  # unused
        # Latent mean / log-variance from the dataset vector. The original declares the input width
        # as hs although it receives an nz-wide vector (it only runs with hs == nz); we declare nz,
        # which gives the same shapes for every configuration the original can run.
        self.fc1 = nn.Linear(nz, nz)
        self.fc2 = nn.Linear(nz, nz)
        self.grud = nn.GRUCell(nvt, hs)  # decoder GRU
        self.fc3 = nn.Linear(nz, hs)  # z -> initial hidden state
        self.add_vertex = nn.Sequential(nn.Linear(hs, hs * 2), nn.ReLU(), nn.Linear(hs * 2, nvt))
        self.add_edge = nn.Sequential(nn.Linear(hs * 2, hs * 4), nn.ReLU(), nn.Linear(hs * 4, 1))
        self.decoding_gate = nn.Sequential(nn.Linear(vs, hs), nn.Sigmoid())
        self.decoding_mapper = nn.Sequential(nn.Linear(vs, hs, bias=False))
        self.gate_forward = nn.Sequential(nn.Linear(vs, hs), nn.Sigmoid())  # unused
        self.gate_backward = nn.Sequential(nn.Linear(vs, hs), nn.Sigmoid())  # unused
        self.mapper_forward = nn.Sequential(nn.Linear(vs, hs, bias=False))  # unused
        self.mapper_backward = nn.Sequential(nn.Linear(vs, hs, bias=False))  # unused
        self.hv_unify = nn.Sequential(nn.Linear(hs * 2, hs))  # unused
        self.hg_unify = nn.Sequential(nn.Linear(gs * 2, gs))  # unused
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()
        self.tanh = nn.Tanh()
        self.logsoftmax1 = nn.LogSoftmax(1)
        self.intra_setpool = SetPool(feature_dim, 1, nz, dim_hidden=nz, num_heads=4)
        self.inter_setpool = SetPool(nz, 1, nz, dim_hidden=nz, num_heads=4)
        self.set_fc = nn.Sequential(nn.Linear(feature_dim, nz), nn.ReLU())  # unused

    # ----------------------------------------------------------------- encoder side
    def set_encode(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features [b, c*s, d] -> (mu, logvar), each [b, z]."""
        v = encode_dataset(self.intra_setpool, self.inter_setpool, X, self.num_sample)
        return self.fc1(v), self.fc2(v)

    def project_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The encoder's per-row work for feature rows [R, d] -> [R, 3*z] (``set_encode_projected``)."""
        return self.intra_setpool.project(rows)

    def set_encode_projected(self, P: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``set_encode(rows[idx])`` given ``P = project_rows(rows)``; ``idx`` [b, c*s] -> (mu, logvar)."""
        v = encode_projected(self.intra_setpool, self.inter_setpool, P, idx, self.num_sample)
        return self.fc1(v), self.fc2(v)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Training: ``mu + 0.01 * eps * std`` (original scale); evaluation: ``mu``."""
        if not self.training:
            return mu
        return mu + EPS_SCALE * torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def _msg(self, h: torch.Tensor, v: int) -> torch.Tensor:
        return self._message(h, v, self.decoding_gate, self.decoding_mapper)

    def _edge_prob(self, h_src: torch.Tensor, h_new: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.add_edge(torch.cat([h_src, h_new], 1)))

    # ----------------------------------------------------------------- loss
    def loss(
        self, mu: torch.Tensor, logvar: torch.Tensor, graphs: GraphBatch, beta: float = KL_BETA
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced reconstruction loss plus ``beta`` x KL (batch sums), as D-VAE/MetaD2A.

        Vertex positions past a graph's end are scored as the start type ("padding is scored too",
        D-VAE style); every edge score is conditioned on the edges already added from
        higher-index sources (the new vertex's state is re-computed after each decision).

        Returns:
            (loss, recon, kld), each a scalar summed over the batch.
        """
        z = self.reparameterize(mu, logvar)
        vertex_ll = z.new_zeros(())
        edge_ll = z.new_zeros(())
        for type_logp, edge_bce in self._teacher_forced(z, graphs):
            vertex_ll = vertex_ll + type_logp.sum()
            edge_ll = edge_ll - edge_bce.sum()
        recon = -(vertex_ll + edge_ll)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return recon + beta * kld, recon, kld

    def log_likelihood(self, z: torch.Tensor, graphs: GraphBatch) -> torch.Tensor:
        """Per graph, the teacher-forced log-likelihood ``log p(graph | z)`` that ``loss`` sums
        (``-recon``): [n] for latents [n, z]. A new search-time score (docs/fidelity.md#generator-likelihood)."""
        ll = z.new_zeros(len(graphs))
        for type_logp, edge_bce in self._teacher_forced(z, graphs):
            ll = ll + type_logp - edge_bce.sum(1)
        return ll

    def _teacher_forced(self, z: torch.Tensor, graphs: GraphBatch) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The decoder run on the true graphs, one vertex position at a time: yields the log-probability
        of each graph's true type [n] and the binary cross-entropy of its true in-edges [n, t] at every
        position t = 1..m-1."""
        n, m = len(graphs), self.max_n
        if graphs.max_n != m:
            raise ValueError(f"graphs have max_n={graphs.max_n}, the model expects {m}")
        H0 = self.tanh(self.fc3(z))
        start = torch.full((n,), self.start_type, dtype=torch.long, device=z.device)
        h = self.grud(self._one_hot(start), H0)
        states, msgs, last = [h], [self._msg(h, 0)], h
        adj = graphs.adj.to(h.dtype)
        for t in range(1, m):
            exists = t < graphs.num_vertices  # [n] bool
            ex = exists.to(h.dtype)[:, None]
            true_t = torch.where(exists, graphs.types[:, t], start)
            logp = self.logsoftmax1(self.add_vertex(last))
            type_logp = logp.gather(1, true_t[:, None]).squeeze(1)
            x = self._one_hot(true_t)
            h_in = h.new_zeros(n, self.hs)
            h = self.grud(x, h_in) * ex
            scores = []
            for vi in range(t - 1, -1, -1):
                scores.append(self._edge_prob(states[vi], h))
                h_in = h_in + adj[:, vi, t : t + 1] * msgs[vi]
                h = self.grud(x, h_in) * ex
            edge_scores = torch.cat(scores[::-1], 1)  # [n, t], ascending source index
            yield type_logp, F.binary_cross_entropy(edge_scores, adj[:, :t, t], reduction="none")
            states.append(h)
            msgs.append(self._msg(h, t))
            last = torch.where(exists[:, None], h, last)

    # ----------------------------------------------------------------- decoding
    def draw_uniforms(self, n: int, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All random numbers one stochastic decode of ``n`` graphs consumes: type draws [n, m]
        and edge draws [n, m, m] (``[b, new vertex, source]``)."""
        device = device or self.fc3.weight.device
        m = self.max_n
        u = torch.rand(n, m + m * m, generator=generator, device=device)
        return u[:, :m], u[:, m:].reshape(n, m, m)

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        stochastic: bool = True,
        uniforms: tuple[torch.Tensor, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        constraints: DecodeConstraints | None = None,
    ) -> GraphBatch:
        """Decode one graph per latent row, vertex by vertex (docs/fidelity.md#generator-decoding).

        Types are sampled from the softmax by inverse CDF (as ``numpy.random.choice``), edges by
        ``u < p``; the last position is forced to the end type, and a new end vertex is joined
        from every vertex without an out-edge, which finishes the graph (an end type sampled
        early therefore yields a short graph, later rejected as invalid).

        Args:
            z: [n, z] latents.
            stochastic: sample (the original always does); False takes argmax / ``p > 0.5``.
            uniforms: pre-drawn ``draw_uniforms`` output, to reproduce a decode exactly.
            generator: torch RNG for the draws when ``uniforms`` is None.
            constraints: constrained decoding (docs/fidelity.md#constrained-decoding): types and
                edges outside ``constraints`` get probability 0, the others are renormalised
                (required edges are always added); the random draws are the same.

        Returns:
            GraphBatch with ``num_vertices`` < max_n for graphs that ended early.
        """
        n, m, dev = z.size(0), self.max_n, z.device
        if stochastic:
            type_u, edge_u = uniforms if uniforms is not None else self.draw_uniforms(n, dev, generator)
        H0 = self.tanh(self.fc3(z))
        types = torch.full((n, m), self.start_type, dtype=torch.long, device=dev)
        adj = torch.zeros((n, m, m), dtype=torch.bool, device=dev)
        num_vertices = torch.ones(n, dtype=torch.long, device=dev)
        finished = torch.zeros(n, dtype=torch.bool, device=dev)
        h = self.grud(self._one_hot(types[:, 0]), H0)
        states, msgs, last = [h], [self._msg(h, 0)], h
        for idx in range(1, m):
            if idx == m - 1:
                new_t = torch.full((n,), self.end_type, dtype=torch.long, device=dev)
            else:
                logits = self.add_vertex(last)
                if constraints is not None:
                    allowed = constraints.type_mask(idx, types[:, :idx])
                    # a row with nothing allowed (a graph already finished) is left unconstrained
                    allowed = allowed | ~allowed.any(1, keepdim=True)
                    logits = logits.masked_fill(~allowed, float("-inf"))
                if stochastic:
                    cdf = torch.softmax(logits, 1).cumsum(1)
                    cdf = cdf / cdf[:, -1:]
                    new_t = torch.searchsorted(cdf, type_u[:, idx : idx + 1].to(cdf.dtype).contiguous(), right=True)
                    new_t = new_t.squeeze(1).clamp(max=self.nvt - 1)
                else:
                    new_t = logits.argmax(1)
            active = ~finished
            act = active.to(h.dtype)[:, None]
            types[:, idx] = torch.where(active, new_t, types[:, idx])
            num_vertices = num_vertices + active.long()
            is_end = active & (new_t == self.end_type)
            x = self._one_hot(new_t)
            h_in = h.new_zeros(n, self.hs)
            h = self.grud(x, h_in) * act
            fixed = False  # every edge decided by the constraints: no edge probability is needed
            if constraints is not None:
                edge_ok, edge_must = constraints.edge_mask(idx, types[:, : idx + 1])
                fixed = not bool((edge_ok & ~edge_must).any())
            for vi in range(idx - 1, -1, -1):
                if not fixed:
                    p = self._edge_prob(states[vi], h).squeeze(1)
                if vi == idx - 1 and bool(is_end.any()):
                    # a new end vertex is joined from every loose end and the graph is finished
                    loose = is_end[:, None] & ~adj[:, :idx, :].any(2)  # [n, idx]
                    adj[:, :idx, idx] |= loose
                    h_in = h_in + torch.einsum("nk,knh->nh", loose.to(h.dtype), torch.stack(msgs[:idx]))
                if fixed:
                    decide = edge_must[:, vi]
                else:
                    decide = edge_u[:, idx, vi] < p if stochastic else p > 0.5
                    if constraints is not None:
                        decide = (decide & edge_ok[:, vi]) | edge_must[:, vi]
                decide = decide & active & ~is_end
                adj[:, vi, idx] |= decide
                h_in = h_in + decide.to(h.dtype)[:, None] * msgs[vi]
                if not fixed:
                    h = self.grud(x, h_in) * act
            if fixed:  # the state after the last edge, as the per-edge updates would end with
                h = self.grud(x, h_in) * act
            finished = finished | is_end
            states.append(h)
            msgs.append(self._msg(h, idx))
            last = torch.where(active[:, None], h, last)
        return GraphBatch(types, adj, num_vertices)

    @torch.no_grad()
    def generate(self, X: torch.Tensor, stochastic: bool = True,
                 generator: torch.Generator | None = None) -> GraphBatch:
        """Encode datasets [b, c*s, d] and decode one graph per dataset from ``z = mu`` (eval)."""
        mu, logvar = self.set_encode(X)
        return self.decode(self.reparameterize(mu, logvar), stochastic=stochastic, generator=generator)


@torch.no_grad()
def likelihood_sets(model: GeneratorModel, sets: torch.Tensor, graphs: GraphBatch) -> torch.Tensor:
    """``log p(graph | z = mu(set))`` for every (set, graph) pair, averaged over the sets:
    [S, rows, d] x A graphs -> [A] (CPU); the generator counterpart of ``score_sets``."""
    mu, _ = model.set_encode(sets)  # [S, z]
    return torch.stack([model.log_likelihood(m.expand(len(graphs), -1), graphs) for m in mu]).mean(0).cpu()
