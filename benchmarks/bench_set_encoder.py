"""The search-time set encoder: the modules' plain forward against the inference path
(docs/fidelity.md#fast-inference), and what this CPU's matrix products reach at the encoder's shapes.

    python benchmarks/bench_set_encoder.py [--reps 8] [--threads 2] [--no-write]

Writes its table into BENCHMARKS.md (section ``bench_set_encoder``). Random weights (nz 56, 4 heads, as
MetaD2A's encoder) and random 512-d rows: speed does not depend on the values. Every timing alternates
plain and inference (``interleaved``); figures are medians (min–max), and the largest absolute
difference of the outputs is shown.

* **short sets**: 1,000 CIFAR-10-sized resampled sets (10 classes x 20 rows) from projected rows, as
  the NB201 search encodes them; plain = the loop before the inference path (50 sets per group, the
  modules' forward); inference = ``set_pool.encode_projected``.
* **OFA pooled sets**: 8 pooled sets of 100 x 10 x 20 rows (1,000 prototypes each), the same two paths.
* **self-attention over 1,000 elements**: ``MAB.attend`` (the written-out equations) against
  ``MAB.self_attend_inference`` (torch's fused kernel), 8 sets.
* **fused attention, 14- vs 16-wide heads**: ``scaled_dot_product_attention`` over 1,000 elements, 4
  heads of 14 columns, as is and zero-padded to 16.
* **matrix products**: one [200,000 x 56] x [56 x 168] product (the second block's projections of 1,000
  sets in one piece) and a 4,096-cube one, in GFLOP/s.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from _search_common import interleaved, machine, median, spread, write_section

from metad2a.nn.set_pool import SetPool, encode_projected  # noqa: E402

ROWS, DIM, NZ, SAMPLE = 50_000, 512, 56, 20


def plain(intra: SetPool, inter: SetPool, P: torch.Tensor, idx: torch.Tensor, sets_per_group: int) -> torch.Tensor:
    """The encoding before the inference path: the modules' forward on the gathered projections."""
    c = idx.size(1) // SAMPLE
    out = []
    for part in idx.split(sets_per_group):
        qkv = P.index_select(0, part.reshape(-1)).reshape(len(part) * c, SAMPLE, -1)
        mab = intra.enc[0].mab
        protos = intra.dec(intra.enc[1:](mab.attend(*qkv.split(mab.dim_V, -1))))
        out.append(inter(protos.reshape(len(part), c, -1)).reshape(len(part), -1))
    return torch.cat(out)


def gflops(a: torch.Tensor, b: torch.Tensor, reps: int) -> float:
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * a.size(0) * a.size(1) * b.size(1) * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    intra, inter = SetPool(DIM, 1, NZ, NZ).eval(), SetPool(NZ, 1, NZ, NZ).eval()
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(ROWS, DIM, generator=g)
    cases = [("short sets: 1,000 sets of 10 x 20 rows", torch.randint(0, ROWS, (1000, 10 * SAMPLE), generator=g), 50),
             ("OFA pooled sets: 8 of 100 x 10 x 20 rows", torch.randint(0, ROWS, (8, 1000 * SAMPLE), generator=g), 1)]
    lines = ["| encoding | plain forward, ms | inference path, ms | plain / inference | max abs difference |",
             "|---|---|---|---|---|"]
    with torch.no_grad():
        P = intra.project(rows)
        for label, idx, group in cases:
            tp, ti, outs = interleaved(lambda i: plain(intra, inter, P, idx, group),
                                       lambda i: encode_projected(intra, inter, P, idx, SAMPLE), a.reps)
            diff = max(float((x - y).abs().max()) for x, y in outs)
            ms = [1000 * t for t in tp], [1000 * t for t in ti]
            lines.append(f"| {label} | {spread(ms[0], '{:.0f}')} | **{spread(ms[1], '{:.0f}')}** | "
                         f"{median(tp) / median(ti):.2f}x | {diff:.1e} |")
        mab = inter.enc[0].mab
        packed = mab.project_self(torch.randn(8, 1000, NZ, generator=g))
        tp, ti, outs = interleaved(lambda i: mab.attend(*packed.split(NZ, -1)),
                                   lambda i: mab.self_attend_inference(packed), a.reps)
        diff = max(float((x - y).abs().max()) for x, y in outs)
        ms = [1000 * t for t in tp], [1000 * t for t in ti]
        lines.append(f"| self-attention block over 1,000 elements (8 sets): written out / fused kernel | "
                     f"{spread(ms[0], '{:.0f}')} | **{spread(ms[1], '{:.0f}')}** | {median(tp) / median(ti):.2f}x | "
                     f"{diff:.1e} |")
        q, k, v = (torch.randn(1, 4, 1000, 14, generator=g) for _ in range(3))
        scale = 1 / math.sqrt(NZ)
        pad = (0, 2)
        reps = 10 * a.reps
        tp, ti, outs = interleaved(
            lambda i: F.scaled_dot_product_attention(q, k, v, scale=scale),
            lambda i: F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), scale=scale)[..., :14],
            reps)
        diff = max(float((x - y).abs().max()) for x, y in outs)
        ms = [1000 * t for t in tp], [1000 * t for t in ti]
        lines.append(f"| fused attention over 1,000 elements, 4 heads: 14 columns / padded to 16 | "
                     f"{spread(ms[0])} | **{spread(ms[1])}** | {median(tp) / median(ti):.2f}x | {diff:.1e} |")
        skinny = gflops(torch.randn(200_000, NZ), torch.randn(NZ, 3 * NZ), 5)
        cube = gflops(torch.randn(4096, 4096), torch.randn(4096, 4096), 3)
    text = "\n".join([
        f"```bash\npython benchmarks/bench_set_encoder.py{f' --threads {a.threads}' if a.threads != 2 else ''}\n```", "",
        f"Measured on {machine()}; torch {torch.__version__}, {a.threads} thread(s); random weights (nz 56, 4 heads) "
        f"and rows; plain and inference alternated, medians (min–max) of {a.reps} repetitions "
        f"({reps} for the attention row).", "", *lines, "",
        f"Matrix products on this CPU: {skinny:.0f} GFLOP/s for one [200,000 x 56] x [56 x 168] product, "
        f"{cube:.0f} GFLOP/s for a 4,096-cube one."])
    print(text)
    if not a.no_write:
        write_section("bench_set_encoder", "### The search-time set encoder: plain forward vs inference path\n\n" + text)


if __name__ == "__main__":
    main()
