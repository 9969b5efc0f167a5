"""A plain per-graph implementation of the MetaD2A / D-VAE equations, for tests only.

It walks lists of ``igraph.Graph`` vertex by vertex exactly as the original does (zero-padded
neighbour lists, graphs shorter than v skipped, states kept as vertex attributes), and reuses the
weights of our batched modules. The batched code in ``metad2a`` must agree with it.
"""

from __future__ import annotations

import igraph
import torch
import torch.nn.functional as F


class Reference:
    def __init__(self, model):
        self.m = model
        self.nvt, self.max_n, self.hs = model.nvt, model.max_n, model.hs
        self.vs = model.hs + model.max_n

    def _one_hot(self, idx, width):
        x = torch.zeros(len(idx), width)
        if len(idx):
            x[range(len(idx)), idx] = 1.0
        return x

    def _propagate_to(self, G, v, propagator, H=None, reverse=False, gate=None, mapper=None):
        keep = [i for i, g in enumerate(G) if g.vcount() > v]
        G = [G[i] for i in keep]
        if not G:
            return
        if H is not None:
            H = H[keep]
        X = self._one_hot([g.vs[v]["type"] for g in G], self.nvt)
        name = "H_backward" if reverse else "H_forward"
        nbrs = [g.successors(v) if reverse else g.predecessors(v) for g in G]
        if H is None:
            H_pred = [[torch.cat([g.vs[x][name], self._one_hot([x], self.max_n)], 1) for x in nb]
                      for g, nb in zip(G, nbrs)]
            k = max(len(x) for x in H_pred)
            if k == 0:
                H = torch.zeros(len(G), self.hs)
            else:
                H_pred = torch.stack([torch.cat(x + [torch.zeros(k - len(x), self.vs)], 0) for x in H_pred])
                H = (gate(H_pred) * mapper(H_pred)).sum(1)
        Hv = propagator(X, H)
        for i, g in enumerate(G):
            g.vs[v][name] = Hv[i:i + 1]

    # ------------------------------------------------------------------ predictor
    def graph_encode(self, graphs):
        m = self.m
        G = [g.copy() for g in graphs]
        self._propagate_to(G, 0, m.grue_forward, H=torch.zeros(len(G), self.hs),
                           gate=m.gate_forward, mapper=m.mapper_forward)
        for v in range(1, self.max_n):
            self._propagate_to(G, v, m.grue_forward, gate=m.gate_forward, mapper=m.mapper_forward)
        self._propagate_to(G, self.max_n - 1, m.grue_backward, H=torch.zeros(len(G), self.hs), reverse=True,
                           gate=m.gate_backward, mapper=m.mapper_backward)
        for v in range(self.max_n - 2, -1, -1):
            self._propagate_to(G, v, m.grue_backward, reverse=True, gate=m.gate_backward, mapper=m.mapper_backward)
        Hg = torch.cat([torch.cat([g.vs[g.vcount() - 1]["H_forward"], g.vs[0]["H_backward"]], 1) for g in G], 0)
        return m.fc1(m.hg_unify(Hg))

    def set_encode_per_item(self, X):
        """The original loops over the batch and squeezes; we keep a batch axis."""
        m = self.m
        out = []
        for x in X:
            x = x.reshape(-1, m.num_sample, x.size(-1))
            protos = m.intra_setpool(x).squeeze(1)
            out.append(m.inter_setpool(protos.unsqueeze(0)).reshape(-1))
        return torch.stack(out)

    # ------------------------------------------------------------------ generator
    def _update_v(self, G, v, H0=None):
        m = self.m
        self._propagate_to(G, v, m.grud, H=H0, gate=m.decoding_gate, mapper=m.decoding_mapper)

    def _vertex_state(self, G, v):
        return torch.cat([g.vs[v]["H_forward"] if v < g.vcount() else torch.zeros(1, self.hs) for g in G], 0)

    def _graph_state(self, G):
        return torch.cat([g.vs[g.vcount() - 1]["H_forward"] for g in G], 0)

    def _edge_score(self, Hvi, H):
        return torch.sigmoid(self.m.add_edge(torch.cat([Hvi, H], -1)))

    def loss_given_z(self, z, mu, logvar, G_true, beta=0.005):
        m, S = self.m, self.m.start_type
        H0 = torch.tanh(m.fc3(z))
        G = [igraph.Graph(directed=True) for _ in range(len(z))]
        for g in G:
            g.add_vertex(type=S)
        self._update_v(G, 0, H0)
        vll, ell = 0.0, 0.0
        for v in range(1, self.max_n):
            true_types = [g.vs[v]["type"] if v < g.vcount() else S for g in G_true]
            true_edges = [g.get_adjlist(igraph.IN)[v] if v < g.vcount() else [] for g in G_true]
            scores = m.add_vertex(self._graph_state(G))
            vll = vll + F.log_softmax(scores, 1)[range(len(G)), true_types].sum()
            for i, g in enumerate(G):
                if true_types[i] != S:
                    g.add_vertex(type=true_types[i])
            self._update_v(G, v)
            edge_scores = []
            for vi in range(v - 1, -1, -1):
                edge_scores.append(self._edge_score(self._vertex_state(G, vi), self._vertex_state(G, v)))
                for i, g in enumerate(G):
                    if vi in true_edges[i]:
                        g.add_edge(vi, v)
                self._update_v(G, v)
            edge_scores = torch.cat(edge_scores[::-1], 1)
            gt = torch.zeros_like(edge_scores)
            for i, te in enumerate(true_edges):
                for x in te:
                    gt[i, x] = 1.0
            ell = ell + -F.binary_cross_entropy(edge_scores, gt, reduction="sum")
        recon = -(vll + ell)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return recon + beta * kld, recon, kld

    @torch.no_grad()
    def decode(self, z, type_u, edge_u):
        """Stochastic decode with pre-drawn uniforms (types by inverse CDF, edges by u < p)."""
        m, S, E = self.m, self.m.start_type, self.m.end_type
        H0 = torch.tanh(m.fc3(z))
        G = [igraph.Graph(directed=True) for _ in range(len(z))]
        for g in G:
            g.add_vertex(type=S)
        self._update_v(G, 0, H0)
        finished = [False] * len(G)
        for idx in range(1, self.max_n):
            if idx == self.max_n - 1:
                new_types = [E] * len(G)
            else:
                probs = torch.softmax(m.add_vertex(self._graph_state(G)), 1)
                new_types = []
                for i in range(len(G)):
                    cdf = probs[i].cumsum(0)
                    cdf = cdf / cdf[-1]
                    t = int(torch.searchsorted(cdf, type_u[i, idx:idx + 1].contiguous(), right=True))
                    new_types.append(min(t, self.nvt - 1))
            for i, g in enumerate(G):
                if not finished[i]:
                    g.add_vertex(type=new_types[i])
            self._update_v(G, idx)
            for vi in range(idx - 1, -1, -1):
                p = self._edge_score(self._vertex_state(G, vi), self._vertex_state(G, idx))
                for i, g in enumerate(G):
                    if finished[i]:
                        continue
                    if new_types[i] == E:
                        ends = [v.index for v in g.vs.select(_outdegree_eq=0) if v.index != g.vcount() - 1]
                        for v in ends:
                            g.add_edge(v, g.vcount() - 1)
                        finished[i] = True
                        continue
                    if edge_u[i, idx, vi] < p[i, 0]:
                        g.add_edge(vi, g.vcount() - 1)
                self._update_v(G, idx)
        for g in G:
            del g.vs["H_forward"]
        return G
