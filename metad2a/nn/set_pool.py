"""Set pooling and the two-level dataset encoder of MetaD2A (docs/fidelity.md#set-encoder).

``SetPool`` in MetaD2A's only used mode ``sabPF``: two SABs, then PMA and a Linear layer. The
dataset encoder pools each class's samples into a prototype (intra-class), then pools the
prototypes into one dataset vector (inter-class).

Shape legend: ``b`` datasets (tasks) in the batch, ``c`` classes, ``n`` samples per class,
``d`` feature dimension (512 for ResNet-18 features), ``z`` output width (``nz``).
"""

from __future__ import annotations

import torch
from torch import nn

from metad2a.nn.set_transformer import PMA, SAB


class SetPool(nn.Module):
    """``dec(enc(X))`` with ``enc = SAB, SAB`` and ``dec = PMA, Linear`` (MetaD2A mode ``sabPF``).

    Args:
        dim_input: width of the set elements.
        num_outputs: number of PMA seeds (1 in MetaD2A).
        dim_output: width of each pooled output.
        dim_hidden: width inside the attention blocks.
        num_heads: attention heads.
        ln: LayerNorm inside the attention blocks (False in MetaD2A).
    """

    def __init__(
        self,
        dim_input: int,
        num_outputs: int,
        dim_output: int,
        dim_hidden: int = 128,
        num_heads: int = 4,
        ln: bool = False,
    ) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            SAB(dim_input, dim_hidden, num_heads, ln=ln),
            SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
        )
        self.dec = nn.Sequential(
            PMA(dim_hidden, num_heads, num_outputs, ln=ln),
            nn.Linear(dim_hidden, dim_output),
        )

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``X`` [b, n, dim_input] -> [b, num_outputs, dim_output]."""
        return self.dec(self.enc(X))

    def project(self, X: torch.Tensor) -> torch.Tensor:
        """The first block's per-row work (its query/key/value projections): [..., dim_input] ->
        [..., 3 * dim_hidden]. Each output row depends on its input row alone."""
        return self.enc[0].mab.project_self(X)

    def infer(self, X: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference (``MAB.self_attend_inference``, ``PMA.pool_inference``): the same
        numbers up to float rounding, [b, n, dim_input] -> [b, num_outputs, dim_output]."""
        return self.infer_projected(self.project(X))

    def infer_projected(self, P: torch.Tensor) -> torch.Tensor:
        """``infer`` given ``P = project(X)`` [b, n, 3 * dim_hidden] -> [b, num_outputs, dim_output]."""
        first, second = self.enc[0].mab, self.enc[1].mab
        O = second.self_attend_inference(second.project_self(first.self_attend_inference(P)))
        return self.dec[1](self.dec[0].pool_inference(O))


def encode_dataset(
    intra_setpool: SetPool, inter_setpool: SetPool, X: torch.Tensor, num_sample: int
) -> torch.Tensor:
    """Two-level set encoding of a batch of datasets.

    Args:
        intra_setpool: pools the ``num_sample`` rows of one class into one prototype.
        inter_setpool: pools the class prototypes into one dataset vector.
        X: [b, c*n, d] features, rows grouped by class (``n = num_sample`` consecutive rows per class).
        num_sample: rows per class.

    Returns:
        [b, z]. Unlike the original, a batch of one keeps its batch axis (docs/fidelity.md#batch-of-one).

    The original loops over the batch and pools each task separately; because every set is pooled
    independently, folding the batch into the set axis gives the same numbers in one call.
    """
    if X.dim() != 3:
        raise ValueError(f"expected features of shape [batch, classes*samples, dim], got {tuple(X.shape)}")
    b, rows, d = X.shape
    if rows % num_sample:
        raise ValueError(f"{rows} rows per task is not a multiple of num_sample={num_sample}")
    c = rows // num_sample
    protos = intra_setpool(X.reshape(b * c, num_sample, d))  # [b*c, 1, z]
    pooled = inter_setpool(protos.reshape(b, c, -1))  # [b, 1, z]
    return pooled.reshape(b, -1)


def encode_projected(intra_setpool: SetPool, inter_setpool: SetPool, P: torch.Tensor, idx: torch.Tensor,
                     num_sample: int, max_rows: int = 10_000) -> torch.Tensor:
    """``encode_dataset`` of the sets ``rows[idx]`` given ``P = intra_setpool.project(rows)``.

    The intra-class pooling's first projections are per-row linear maps of the features, and they
    are most of the encoder's arithmetic (512 -> 3 x 56 per row). Computed once for every row of a
    dataset, they are gathered for each resampled set instead of recomputed: the same numbers, up
    to the float rounding of a matrix product over a different number of rows (docs/fidelity.md#set-encoder).
    The rest goes through the inference path (``SetPool.infer_projected``, ``SetPool.infer``): the same
    equations, other float rounding (docs/fidelity.md#fast-inference).

    Args:
        P: [R, 3 * dim_hidden] projections of the R feature rows.
        idx: [b, c*n] row indices into ``P``, ``n = num_sample`` consecutive rows per class.
        num_sample: rows per class.
        max_rows: the class groups are pooled in groups of at most this many rows (one class at
            least), the prototypes of whole sets likewise. Small groups keep every intermediate tensor
            in the cache and under glibc's mmap threshold (32 MB): larger ones are mapped and unmapped
            at every call, and the page faults cost more than the arithmetic (a CPU encode of 200,000
            rows took 2.5 s in one group, 0.7 s in groups of 10,000). A pooled set of the OFA loop
            (20,000 rows) is split too: its classes are pooled independently.

    Returns:
        [b, z], as ``encode_dataset(intra_setpool, inter_setpool, rows[idx], num_sample)``.
    """
    b, r = idx.shape
    if r % num_sample:
        raise ValueError(f"{r} rows per set is not a multiple of num_sample={num_sample}")
    c = r // num_sample
    groups = idx.reshape(b * c, num_sample)  # one row per class group, sets in order
    protos = torch.cat([intra_setpool.infer_projected(P.index_select(0, g.reshape(-1)).reshape(len(g), num_sample, -1))
                        for g in groups.split(max(1, max_rows // num_sample))])  # [b*c, 1, z]
    protos = protos.reshape(b, c, -1)
    return torch.cat([inter_setpool.infer(p).reshape(len(p), -1) for p in protos.split(max(1, max_rows // c))])
