"""Set Transformer blocks (Lee et al., ICML 2019), same semantics as juho-lee/set_transformer ``modules.py``.

MIT-licensed upstream; re-written here. Attribute names (``fc_q``, ``fc_k``, ``fc_v``, ``fc_o``, ``ln0``,
``ln1``, ``mab``, ``S``, ``I``, ``mab0``, ``mab1``) match the upstream and MetaD2A checkpoints.

Shape legend: ``b`` sets in the batch, ``n`` elements per set, ``m`` queries (seeds), ``d`` features.

Numerics kept on purpose (docs/fidelity.md#set-encoder):
- heads are split off the feature axis and stacked head-major along the batch axis;
- attention logits are scaled by ``sqrt(dim_V)`` (the full width, not the per-head width);
- the output is the projected queries plus attention-weighted values (a residual on the queries);
- then ``O + ReLU(fc_o(O))``.

Search-time inference has a second, faster path with the same arithmetic and other float rounding
(``MAB.self_attend_inference``, ``PMA.pool_inference``; docs/fidelity.md#fast-inference). Training and the
reference path keep the written-out equations above.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Inference: attention over sets of at least this many elements uses the fused kernel (``MAB.self_attend_inference``).
FUSED_MIN_LEN = 64


class MAB(nn.Module):
    """Multihead attention block ``MAB(Q, K)``: queries from ``Q``, keys and values from ``K``."""

    def __init__(self, dim_Q: int, dim_K: int, dim_V: int, num_heads: int, ln: bool = False) -> None:
        super().__init__()
        if dim_V % num_heads:
            raise ValueError(f"dim_V={dim_V} must be divisible by num_heads={num_heads}")
        self.dim_V = dim_V
        self.num_heads = num_heads
        self.fc_q = nn.Linear(dim_Q, dim_V)
        self.fc_k = nn.Linear(dim_K, dim_V)
        self.fc_v = nn.Linear(dim_K, dim_V)
        if ln:  # never used by MetaD2A (ln=False everywhere); kept for upstream parity
            self.ln0 = nn.LayerNorm(dim_V)
            self.ln1 = nn.LayerNorm(dim_V)
        self.fc_o = nn.Linear(dim_V, dim_V)

    def forward(self, Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """``Q`` [b, m, dim_Q], ``K`` [b, n, dim_K] -> [b, m, dim_V]."""
        if Q is K:  # self-attention (SAB): one matmul for the three projections, same numbers
            return self.attend(*self.project_self(Q).split(self.dim_V, -1))
        return self.attend(self.fc_q(Q), self.fc_k(K), self.fc_v(K))

    def project_self(self, X: torch.Tensor) -> torch.Tensor:
        """The self-attention projections ``[fc_q(X), fc_k(X), fc_v(X)]`` in one matmul: [..., 3*dim_V].

        Row-wise: each row's output depends on that row alone, so it may be computed once per row
        of a feature file and gathered for every set that contains the row (``SetPool.project``).
        """
        w = torch.cat([self.fc_q.weight, self.fc_k.weight, self.fc_v.weight])
        b = torch.cat([self.fc_q.bias, self.fc_k.bias, self.fc_v.bias])
        return F.linear(X, w, b)

    def attend(self, Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """The block given projected queries [b, m, dim_V], keys and values [b, n, dim_V]."""
        b = Q.size(0)
        split = self.dim_V // self.num_heads
        # head-major stacking: [h*b, *, split], all sets of head 0 first, then head 1, ...
        Q_ = torch.cat(Q.split(split, 2), 0)
        K_ = torch.cat(K.split(split, 2), 0)
        V_ = torch.cat(V.split(split, 2), 0)
        A = torch.softmax(Q_.bmm(K_.transpose(1, 2)) / math.sqrt(self.dim_V), 2)
        O = torch.cat((Q_ + A.bmm(V_)).split(b, 0), 2)
        O = O if getattr(self, "ln0", None) is None else self.ln0(O)
        O = O + torch.relu(self.fc_o(O))
        O = O if getattr(self, "ln1", None) is None else self.ln1(O)
        return O

    def self_attend_inference(self, P: torch.Tensor) -> torch.Tensor:
        """Self-attention for inference given the packed projections ``P = project_self(X)``
        [b, n, 3*dim_V] -> [b, n, dim_V]: ``attend`` 's equations, other float rounding.

        Sets of at least ``FUSED_MIN_LEN`` elements go through torch's fused attention kernel, which
        never materialises the [b*h, n, n] logits (the OFA pooled loop's inter-class pooling attends
        over 100*C prototypes: 7.6x faster there on the CPU, benchmarks/bench_set_encoder.py). Short sets (a class's 20 rows) are
        moved head-major once for all three projections, the logits' scale and the residual on the
        queries are fused into the batched products (``baddbmm``): 1.06-1.18x faster than ``attend``.
        """
        if getattr(self, "ln0", None) is not None:
            return self.attend(*P.split(self.dim_V, -1))
        b, n, _ = P.shape
        h, split = self.num_heads, self.dim_V // self.num_heads
        scale = 1 / math.sqrt(self.dim_V)  # the original's: the full width dim_V, not the head width
        if n >= FUSED_MIN_LEN:
            # heads padded with zero columns to a multiple of 16: the same logits and values (the zeros add
            # nothing, the scale is explicit), and the CPU kernel runs 1.3x faster than on 14-wide heads
            pad = -split % 16
            Q, K, V = (F.pad(X.reshape(b, n, h, split).transpose(1, 2), (0, pad))
                       for X in P.split(self.dim_V, -1))  # [b, h, n, split + pad]
            A_V = F.scaled_dot_product_attention(Q, K, V, scale=scale)[..., :split]
            O = P[..., : self.dim_V] + A_V.transpose(1, 2).reshape(b, n, self.dim_V)
        else:
            # head-major as ``attend`` stacks them: [3, h*b, n, split], all sets of head 0 first
            Q, K, V = P.reshape(b, n, 3, h, split).permute(2, 3, 0, 1, 4).reshape(3, h * b, n, split)
            A = torch.baddbmm(Q.new_empty(h * b, n, n), Q, K.transpose(1, 2), beta=0, alpha=scale).softmax(-1)
            O = torch.baddbmm(Q, A, V).view(h, b, n, split).permute(1, 2, 0, 3).reshape(b, n, self.dim_V)
        return O + torch.relu(self.fc_o(O))


class SAB(nn.Module):
    """Set attention block: self-attention ``MAB(X, X)``."""

    def __init__(self, dim_in: int, dim_out: int, num_heads: int, ln: bool = False) -> None:
        super().__init__()
        self.mab = MAB(dim_in, dim_in, dim_out, num_heads, ln=ln)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.mab(X, X)


class ISAB(nn.Module):
    """Induced set attention block. Present upstream, never instantiated by MetaD2A's ``sabPF`` mode."""

    def __init__(self, dim_in: int, dim_out: int, num_heads: int, num_inds: int, ln: bool = False) -> None:
        super().__init__()
        self.I = nn.Parameter(torch.empty(1, num_inds, dim_out))
        nn.init.xavier_uniform_(self.I)
        self.mab0 = MAB(dim_out, dim_in, dim_out, num_heads, ln=ln)
        self.mab1 = MAB(dim_in, dim_out, dim_out, num_heads, ln=ln)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        H = self.mab0(self.I.expand(X.size(0), -1, -1), X)
        return self.mab1(X, H)


class PMA(nn.Module):
    """Pooling by multihead attention with ``num_seeds`` learned seed vectors ``S``."""

    def __init__(self, dim: int, num_heads: int, num_seeds: int, ln: bool = False) -> None:
        super().__init__()
        self.S = nn.Parameter(torch.empty(1, num_seeds, dim))
        nn.init.xavier_uniform_(self.S)
        self.mab = MAB(dim, dim, dim, num_heads, ln=ln)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.mab(self.S.expand(X.size(0), -1, -1), X)

    def pool_inference(self, X: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference: the same numbers up to float rounding, without the per-element
        key and value projections [b, n, dim] -> [b, num_seeds, dim].

        The seeds' queries are the same for every set, so each head's logit of an element is
        ``(q_h W_k,h) . x / sqrt(dim) + q_h . b_k,h``: one dot product with a folded vector, and the
        bias term, equal for all elements of a set, cancels in the softmax. The weights sum to one,
        so the attention-weighted values are ``W_v,h (sum_j a_j x_j) + b_v,h``: the projection is
        applied once per head to the weighted mean instead of to every element.
        """
        mab = self.mab
        if getattr(mab, "ln0", None) is not None:
            return self.forward(X)
        b = X.size(0)
        s, h, dim = self.S.size(1), mab.num_heads, mab.dim_V
        split = dim // h
        q = mab.fc_q(self.S[0]).view(s, h, split)  # the seeds' projected queries, per head
        w_k = mab.fc_k.weight.view(h, split, -1)
        folded = torch.einsum("shp,hpd->shd", q, w_k).reshape(s * h, -1) / math.sqrt(dim)  # [s*h, dim]
        a = torch.softmax(X @ folded.t(), 1)  # [b, n, s*h]: each (seed, head) column sums to one over n
        mean = (a.transpose(1, 2) @ X).view(b, s, h, 1, -1)  # weighted means of the elements
        A_V = (mean @ mab.fc_v.weight.view(h, split, -1).transpose(1, 2)).view(b, s, dim) + mab.fc_v.bias
        O = q.reshape(s, dim) + A_V
        return O + torch.relu(mab.fc_o(O))
