"""The search loops as they were before chunked decoding (docs/fidelity.md#chunked-search): one
loader batch at a time, the set encoder on the sampled feature rows, validity per graph.

Kept as the reference the chunked loops of ``engine/generator_runner.py`` are compared with: the
same seed must give the same architectures (and the same scores up to float rounding).
"""

from __future__ import annotations

from typing import Any

import torch


def _archs(space, g) -> list[Any | None]:
    ok = g.dag_valid_mask(space.start_type, space.end_type).tolist()
    types, nv = g.types.tolist(), g.num_vertices.tolist()
    return [space.arch_from_types(types[i][: nv[i]]) if ok[i] else None for i in range(len(ok))]


def generate(space, model, target, num_gen_arch: int, batch_size: int = 100, max_batches: int = 2000,
             generator: torch.Generator | None = None, device: str = "cpu",
             constraints=None) -> tuple[list[Any], int]:
    """One graph per resampled set, batch by batch, until ``num_gen_arch`` unique valid ones
    (``constraints``: passed to the decoder, for the benchmarks' constrained "before").

    Returns:
        (architectures in generation order, graphs decoded).
    """
    archs: list[Any] = []
    seen: set[str] = set()
    decoded = 0
    for _ in range(max_batches):
        x = target.sample(batch_size, generator).to(device)
        with torch.no_grad():
            mu, _ = model.set_encode(x)
            g = model.decode(mu, generator=generator, constraints=constraints)
        decoded += len(mu)
        for a in _archs(space, g):
            if a is None:
                continue
            key = space.arch_key(a)
            if key not in seen:
                seen.add(key)
                archs.append(a)
                if len(archs) == num_gen_arch:
                    return archs, decoded
    return archs, decoded


def generate_pooled(space, model, predictor, target, num_gen_arch: int, batch_size: int = 100,
                    max_batches: int = 10_000, generator: torch.Generator | None = None,
                    device: str = "cpu", constraints=None) -> tuple[list[Any], list[float], int]:
    """The original pooled loop: each loader batch of resampled sets pooled into one set, one graph,
    scored on the same pooled set and the graph's sampled edges.

    Returns:
        (architectures in generation order, their scores, graphs decoded).
    """
    archs: list[Any] = []
    scores: list[float] = []
    seen: set[str] = set()
    decoded = 0
    for _ in range(max_batches):
        x = target.sample(batch_size, generator).to(device)
        pooled = x.reshape(1, -1, x.size(-1))
        with torch.no_grad():
            mu, _ = model.set_encode(pooled)
            g = model.decode(mu, generator=generator, constraints=constraints)
        decoded += 1
        a = _archs(space, g)[0]
        if a is None or space.arch_key(a) in seen:
            continue
        with torch.no_grad():
            s = predictor.predict(predictor.set_encode(pooled), predictor.graph_encode(g))
        seen.add(space.arch_key(a))
        archs.append(a)
        scores.append(float(s.item()))
        if len(archs) == num_gen_arch:
            return archs, scores, decoded
    return archs, scores, decoded
