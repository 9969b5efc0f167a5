"""Generator: meta-training and architecture generation for a dataset, ranked by the predictor
where the space's search is one step (docs/fidelity.md#generator, docs/fidelity.md#loop-styles)."""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from metad2a import paths
from metad2a.config import PREDICTOR_HS, MetaTestConfig, TrainConfig
from metad2a.data.archive import archive_text
from metad2a.data.meta_test import TargetDataset, load_target
from metad2a.data.meta_train import predicted_accuracy
from metad2a.engine.budget import PARETO_FILE, BudgetFilter, admit, make_filter
from metad2a.engine.predictor_runner import PredictorRunner
from metad2a.engine.runner import Runner, optimise, set_encode_batch
from metad2a.engine.trainer import EpochResult, fit
from metad2a.errors import CheckpointError, MetaD2AError
from metad2a.files import to_json, write_files
from metad2a.log import Progress
from metad2a.models.generator import DecodeConstraints, GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.seeding import restore_rng_state, rng_state

log = logging.getLogger("metad2a")


# Decoding in chunks (docs/fidelity.md#chunked-search): random numbers are drawn loader batch by loader
# batch as before; the sets of up to CHUNK_SETS resampled sets are then encoded and decoded together.
CHUNK_SETS = 1_000
# The pooled loop decodes up to this many pooled sets (one graph each) together, fewer when a pooled
# set has more than POOLED_CHUNK_ROWS / POOLED_CHUNK feature rows.
POOLED_CHUNK = 256
POOLED_CHUNK_ROWS = 2_000_000
# Early stop (docs/fidelity.md#early-stop): the yield is judged after this many decoded graphs, or
# after a tenth of the cap, or after this many resampled sets encoded (the pooled loop encodes 100 per
# graph), whichever comes first.
VERDICT_DECODED = 10_000
VERDICT_SETS = 30_000


def verdict_point(cap: int, sets_per_graph: int = 1) -> int:
    """Decoded graphs after which the yield is judged (``yield_verdict``)."""
    return max(1, min(VERDICT_DECODED, cap // 10, VERDICT_SETS // max(sets_per_graph, 1)))


@dataclass
class Generation:
    """What one run's generation produced."""

    archs: list[Any]  # unique valid architectures in generation order
    seconds: float
    decoded: int  # graphs decoded (whole loader batches, as the original counts)
    valid: int  # valid graphs among them, repeats included
    stop_reason: str | None = None  # why fewer than requested were found (early stop, cap); None if all were
    scores: list[float] | None = None  # the pooled loop's scores, aligned with ``archs``


@dataclass
class SearchResult:
    """One search run: unique valid architectures sorted by predicted score (descending)."""

    archs: list[Any]
    scores: list[float]
    seconds: float  # generation + prediction, as the original times it
    decoded: int  # graphs decoded
    valid: int = 0  # valid graphs among them, repeats included
    stop_reason: str | None = None  # see ``Generation``


def yield_verdict(decoded: int, valid: int, unique: int, wanted: int, cap: int, judge_at: int | None = None,
                  constrained: bool = False) -> str | None:
    """Why generation should stop before ``wanted`` architectures, or None (docs/fidelity.md#early-stop).

    At the cap of ``cap`` decoded graphs it stops. Before, the yield is judged once ``judge_at``
    graphs are decoded (default ``verdict_point(cap)``): stop when none was valid, or when even the
    unique rate so far (which only falls as repeats accumulate) would not give ``wanted``
    architectures within the cap.
    """
    if unique >= wanted:
        return None
    counts = f"{valid:,} valid and {unique:,} unique of {decoded:,} decoded graphs"
    if decoded >= cap:
        why = f"reached the cap with {counts} ({wanted:,} requested)"
    elif decoded < (verdict_point(cap) if judge_at is None else judge_at):
        return None
    elif valid == 0:
        why = f"stopped early: {counts} ({wanted:,} requested)"
    else:
        projected = unique + unique / decoded * (cap - decoded)
        if projected >= wanted:
            return None
        why = (f"stopped early: {counts}; at this rate the cap of {cap:,} decoded graphs gives about "
               f"{int(projected):,} of the {wanted:,} requested")
    advice = "meta-train it longer" + ("" if constrained else
                                       ", or search with --constrained-decoding (only valid architectures)")
    return f"{why}; the generator looks under-trained: {advice}"


class _Collector:
    """Unique valid architectures from decoded graphs, in order, with the counts of a run.

    Validity is decided on tensors (the generic DAG check and the space's ``valid_mask``) and
    repeats are recognised by the vertex types' tensor key (``GraphBatch.type_key``); only a type
    sequence not seen before reaches the space's codec (``arch_from_types``, ``arch_key``).
    """

    def __init__(self, space: Any, wanted: int, cap: int, constrained: bool, sets_per_graph: int = 1,
                 feasible: BudgetFilter | None = None) -> None:
        self.space, self.wanted, self.cap, self.constrained = space, wanted, cap, constrained
        self.feasible = feasible  # a budget: only feasible architectures are kept (docs/fidelity.md#budget)
        self.judge_at = verdict_point(cap, sets_per_graph)
        self.archs: list[Any] = []
        self.seen_types: set[tuple[int, ...]] = set()
        self.seen: set[str] = set()
        self.decoded = self.valid = 0
        self.stop_reason: str | None = None

    @property
    def done(self) -> bool:
        return len(self.archs) >= self.wanted or self.stop_reason is not None

    def units(self, per_unit: int, first: int, most: int) -> int:
        """Loader batches (or pooled sets) of ``per_unit`` graphs to draw next: about what the
        missing architectures need at the unique rate so far, between 1 and ``most``."""
        if self.decoded == 0:
            return max(1, min(first, most))
        rate = len(self.archs) / self.decoded
        if rate == 0:
            return most
        need = math.ceil(1.1 * (self.wanted - len(self.archs)) / rate / per_unit)
        return max(1, min(most, need))

    def consume(self, g: GraphBatch, per_unit: int) -> tuple[int | None, list[int]]:
        """Take the graphs of ``g`` in order, ``per_unit`` graphs per loader batch, until the run is
        done. Returns (the batch in which it finished, or None; rows of ``g`` newly kept)."""
        ok = g.dag_valid_mask(self.space.start_type, self.space.end_type) & self.space.valid_mask(g)
        per_batch = ok.reshape(-1, per_unit).sum(1).tolist()
        rows = ok.nonzero().squeeze(1).tolist()
        keys = g.type_key(self.space.nvt)[ok].tolist()
        types = [t[:n] for t, n in zip(g.types[ok].tolist(), g.num_vertices[ok].tolist())]
        kept: list[int] = []
        r = 0
        for b, nvalid in enumerate(per_batch):
            self.decoded += per_unit
            self.valid += nvalid
            new: list[tuple[int, Any]] = []  # (row, architecture) new to the run, in decoding order
            for row, key, ty in zip(rows[r: r + nvalid], keys[r: r + nvalid], types[r: r + nvalid]):
                key = tuple(key)
                if key in self.seen_types:
                    continue  # the same types give the same architecture (or the same rejection)
                self.seen_types.add(key)
                a = self.space.arch_from_types(ty)
                if a is None or (name := self.space.arch_key(a)) in self.seen:
                    continue
                self.seen.add(name)  # over the budget or not, it is not looked at again
                new.append((row, a))
                if self.feasible is None and len(self.archs) + len(new) == self.wanted:
                    break  # the plain loop keeps no more (and, without a budget, needs no more codec calls)
            r += nvalid
            # a batch's new architectures go through the budget together, as in the plain loop (``admit``)
            admitted = {id(a) for a in admit([a for _, a in new], self.wanted - len(self.archs), self.feasible)}
            for row, a in new:
                if id(a) in admitted:
                    self.archs.append(a)
                    kept.append(row)
            if len(self.archs) == self.wanted:
                return b, kept
            if self.feasible is not None and self.feasible.exhausted:
                self.stop_reason = self.feasible.stop_reason()
                return b, kept
            self.stop_reason = yield_verdict(self.decoded, self.valid, len(self.archs), self.wanted, self.cap,
                                             self.judge_at, self.constrained)
            if self.stop_reason is not None:
                if self.feasible is not None:
                    self.stop_reason += (f" (the counts include {self.feasible.rejected} architecture(s) over the "
                                         f"budget {self.feasible.describe_limits()}; only feasible ones are kept)")
                return b, kept
        return None, kept

    def counts(self) -> dict[str, int]:
        return {"decoded": self.decoded, "valid": self.valid, "unique": len(self.archs)}


class GeneratorRunner(Runner):
    kind = "generator"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per model: (model, target, weights' versions, per-row projections of the target's rows)
        self._projections: dict[int, tuple[Any, Any, tuple[int, ...], torch.Tensor]] = {}

    # ------------------------------------------------------------------ meta-training
    def meta_train(self, tc: TrainConfig) -> dict:
        model, db = self.prepare_meta_train()
        log.info(f"==> The number of tasks for meta-training: {len(db.split['train'])}")
        per_sample = self.loop.step_per_sample
        meta = self.checkpoint_meta(model, step_per_sample=per_sample)

        def epoch(mode: str, ep: int, opt: torch.optim.Optimizer | None) -> EpochResult:
            sums, count = {"loss": 0.0, "recon_loss": 0.0, "kld": 0.0}, 0

            def add(values: tuple[torch.Tensor, ...], divisor: int) -> None:
                nonlocal count
                for k, v in zip(sums, values):
                    sums[k] += v.item() / divisor
                count += 1

            for b, bar in self.epoch_batches(db, mode, tc.batch_size, f"[{mode}] Ep {ep}"):
                if per_sample:
                    # Original per-task steps (docs/fidelity.md#loop-styles): the loader batch only
                    # groups iterations; every task takes its own optimizer step (effective batch
                    # size 1), and the logged values are divided by the task's feature rows
                    # (way * num_sample), not the batch size.
                    for i, x in enumerate(b.xs):
                        x = x[None].to(self.device)
                        out = optimise(opt, lambda: model.loss(*model.set_encode(x), b.graphs[[i]].to(self.device)))
                        add(out, x.size(1))
                    bar.set_postfix(loss=f"{out[0].item() / x.size(1):.4f}")
                    continue
                g = b.graphs.to(self.device)
                out = optimise(opt, lambda: model.loss(*set_encode_batch(model, b, self.device), g))
                add(out, len(g))  # the original averages per-batch sums / batch size
                bar.set_postfix(loss=f"{out[0].item() / len(g):.4f}")
            m = {k: v / max(count, 1) for k, v in sums.items()}
            tag = "train" if mode == "train" else "valid"
            line = f"{tag}: loss {m['loss']:.4f}, recon_loss {m['recon_loss']:.4f}, kld {m['kld']:.4f}, "
            return EpochResult(m["loss"], m, [line])

        return fit(model, lambda ep, opt: epoch("train", ep, opt), lambda ep: epoch("valid", ep, None), tc,
                   self.run.save_path, "generator", meta, self.run.resume)

    # ------------------------------------------------------------------ meta-test (search)
    def load(self, load_epoch: int) -> GeneratorModel:
        path = paths.ckpt(self.run.save_path, "generator", load_epoch)
        hint = (f"download the released one with `{self.space.get_files.generator_checkpoint}` "
                f"(then --load-epoch {self.space.released_generator_epoch}) or meta-train one first")
        model, _ = self.load_model("generator", path, hint)
        log.info(f"==> load model from {path} ...")
        return model

    def ranker(self) -> PredictorRunner:
        """The predictor's runner at the predictor's own hidden size. The original sets
        ``args.hs = 512`` while it builds the predictor; here the predictor gets its own config."""
        return PredictorRunner(self.space, self.run, replace(self.mc, hs=PREDICTOR_HS), self.device, self.options)

    def _constraints(self, tc: MetaTestConfig) -> DecodeConstraints | None:
        """The space's decoding masks under ``--constrained-decoding`` (docs/fidelity.md#constrained-decoding)."""
        if not tc.constrained_decoding:
            return None
        if not self.space.has_constrained_decoding:
            raise MetaD2AError(f"--constrained-decoding: the {self.space.name} search space defines no "
                               f"decoding constraints; search without it")
        return self.space

    def _projected(self, model: GeneratorModel | PredictorModel, target: TargetDataset) -> torch.Tensor:
        """``model``'s per-row encoder work for every row of ``target`` (``TargetDataset.rows`` order),
        computed once per model, target and weights, and gathered by every resampled set."""
        mab = model.intra_setpool.enc[0].mab
        version = tuple(p._version for p in (mab.fc_q.weight, mab.fc_q.bias, mab.fc_k.weight, mab.fc_k.bias,
                                             mab.fc_v.weight, mab.fc_v.bias))
        cache = self._projections
        hit = cache.get(id(model))
        if hit is not None and hit[0] is model and hit[1] is target and hit[2] == version:
            return hit[3]
        with torch.no_grad():
            P = torch.cat([model.project_rows(f.to(self.device).float())
                           for f in target.feats[: target.info.num_classes]])
        cache[id(model)] = (model, target, version, P)
        return P

    def _draw(self, model: GeneratorModel, target: TargetDataset, batches: int, batch_size: int, pooled: bool,
              generator: torch.Generator | None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], list]:
        """The random numbers of ``batches`` loader batches, drawn in the plain loop's order: each
        batch's resampled sets (as row indices), then its decoding uniforms (one graph per set, or
        one per batch when ``pooled``).

        Returns:
            (row indices [batches * batch_size, C*n], or [batches, batch_size * C*n] when pooled;
            the uniforms of all graphs; the random state after each batch, for ``restore_rng_state``).
        """
        idx, type_u, edge_u, states = [], [], [], []
        for _ in range(batches):
            rows = target.sample_indices(batch_size, generator)
            idx.append(rows.reshape(1, -1) if pooled else rows)
            tu, eu = model.draw_uniforms(1 if pooled else batch_size, self.device, generator)
            type_u.append(tu)
            edge_u.append(eu)
            states.append(rng_state(generator, self.device))
        return torch.cat(idx).to(self.device), (torch.cat(type_u), torch.cat(edge_u)), states

    def _progress(self, target: TargetDataset, num_gen_arch: int) -> Progress:
        return Progress(num_gen_arch, f"generate {target.name}", unit="unique", rate_of="decoded")

    @staticmethod
    def _finish(col: _Collector, t0: float, scores: list[float] | None = None) -> Generation:
        return Generation(col.archs, time.time() - t0, col.decoded, col.valid, col.stop_reason, scores)

    def generate(self, model: GeneratorModel, target: TargetDataset, num_gen_arch: int, tc: MetaTestConfig,
                 generator: torch.Generator | None = None, feasible: BudgetFilter | None = None) -> Generation:
        """Decode until ``num_gen_arch`` unique valid (and, with a budget filter, feasible)
        architectures; one graph per resampled set.

        Random numbers are drawn per loader batch of ``tc.gen_batch_size`` sets as in the plain
        loop (the sets' rows, then the decoding uniforms); up to ``CHUNK_SETS`` sets are then
        encoded from the dataset's per-row projections and decoded together, and the random state
        is put back to where the plain loop would have stopped (docs/fidelity.md#chunked-search).
        Stops early when the yield is hopeless (``yield_verdict``).
        """
        t0 = time.time()
        constraints = self._constraints(tc)
        P = self._projected(model, target)
        bs, cap = tc.gen_batch_size, tc.max_gen_batches
        col = _Collector(self.space, num_gen_arch, cap * bs, tc.constrained_decoding, feasible=feasible)
        per_chunk = max(1, CHUNK_SETS // bs)
        drawn = 0
        with self._progress(target, num_gen_arch) as bar:
            while drawn < cap and not col.done:
                k = min(col.units(bs, math.ceil(num_gen_arch / bs), per_chunk), cap - drawn)
                idx, uniforms, states = self._draw(model, target, k, bs, False, generator)
                drawn += k
                with torch.no_grad():
                    mu, _ = model.set_encode_projected(P, idx)
                    g = model.decode(mu, uniforms=uniforms, constraints=constraints)
                before = len(col.archs)
                last, _ = col.consume(g, bs)
                bar.update(len(col.archs) - before, **col.counts())
                if last is not None:
                    restore_rng_state(states[last])  # the plain loop drew no further
        return self._finish(col, t0)

    def _generate_pooled(self, model: GeneratorModel, predictor: PredictorModel, target: TargetDataset,
                         num_gen_arch: int, tc: MetaTestConfig, generator: torch.Generator | None,
                         feasible: BudgetFilter | None = None) -> Generation:
        """The pooled search loop (docs/fidelity.md#pooled-search): one graph and one score per
        loader batch of resampled sets; up to ``POOLED_CHUNK`` pooled sets encoded, decoded and
        scored together (docs/fidelity.md#chunked-search)."""
        t0 = time.time()
        constraints = self._constraints(tc)
        Pg, Pp = self._projected(model, target), self._projected(predictor, target)
        bs, cap = tc.gen_batch_size, self.loop.max_pooled_batches
        col = _Collector(self.space, num_gen_arch, cap, tc.constrained_decoding, sets_per_graph=bs,
                         feasible=feasible)
        rows = bs * target.info.num_classes * target.num_sample  # feature rows of one pooled set
        most = max(1, min(POOLED_CHUNK, POOLED_CHUNK_ROWS // rows))
        scores: list[float] = []
        drawn = 0
        with self._progress(target, num_gen_arch) as bar:
            while drawn < cap and not col.done:
                k = min(col.units(1, min(8, num_gen_arch), most), cap - drawn)
                # Reproduction quirk (docs/fidelity.md#pooled-search): the original adds a leading axis
                # to the loader batch of 100 resampled sets, so the set encoder sees ONE set in which
                # all 100*C class groups are pooled together by the inter-class pooling -> one latent,
                # one graph. Here: k such pooled sets, each one row of `pooled`.
                pooled, uniforms, states = self._draw(model, target, k, bs, True, generator)
                drawn += k
                with torch.no_grad():
                    mu, _ = model.set_encode_projected(Pg, pooled)
                    g = model.decode(mu, uniforms=uniforms, constraints=constraints)
                before = len(col.archs)
                last, kept = col.consume(g, 1)  # the original also scores the others; the result is never used
                if kept:
                    with torch.no_grad():
                        # Quirk (docs/fidelity.md#pooled-search): scored on the same pooled set, and on the
                        # decoded graph WITH its sampled edges, although the predictor was trained on
                        # canonical graphs only.
                        s = predictor.predict(predictor.set_encode_projected(Pp, pooled[kept]),
                                              predictor.graph_encode(g[kept]))
                    scores.extend(s.squeeze(1).tolist())
                bar.update(len(col.archs) - before, **col.counts())
                if last is not None:
                    restore_rng_state(states[last])
        return self._finish(col, t0, scores)

    def search(self, model: GeneratorModel, predictor: PredictorModel, target: TargetDataset, num_gen_arch: int,
               tc: MetaTestConfig, generator: torch.Generator | None = None,
               feasible: BudgetFilter | None = None) -> SearchResult:
        """Generate ``num_gen_arch`` unique valid architectures and rank them by the predictor.

        With the space's ``pooled_search`` loop style: the original's pooled loop. Otherwise one
        graph per resampled set (``generate``), then every architecture is scored on its canonical
        graph against one pool of ``tc.pred_num_sets`` resampled sets (the predictor's ``score``).
        """
        t0 = time.time()
        if self.loop.pooled_search:
            gen = self._generate_pooled(model, predictor, target, num_gen_arch, tc, generator, feasible)
            scores = gen.scores or []
        else:
            gen = self.generate(model, target, num_gen_arch, tc, generator, feasible)
            scores = (self.ranker().score(predictor, target, gen.archs, tc.pred_num_sets, generator).tolist()
                      if gen.archs else [])
        seconds = time.time() - t0
        archs = gen.archs
        order = sorted(range(len(archs)), key=lambda i: -scores[i])  # stable: ties keep generation order
        return SearchResult([archs[i] for i in order], [scores[i] for i in order], seconds, gen.decoded,
                            gen.valid, gen.stop_reason)

    def meta_test(self, tc: MetaTestConfig) -> None:
        model = self.load(tc.load_epoch)
        ranker, ranker_meta = self.ranker().load() if self.space.generator_ranks else (None, {})
        if ranker is not None and ranker.feature_dim != model.feature_dim:
            raise CheckpointError(f"the predictor expects {ranker.feature_dim}-d features but the generator "
                                  f"{model.feature_dim}-d; both must be meta-trained on the same features")
        for name in tc.data_names:
            target = load_target(self.run.data_path, name, self.mc.num_sample,
                                 self.space.dataset_info(name, tc.num_class), model.feature_dim,
                                 tc.fast_resampling)
            out = paths.meta_test_dir(self.run.save_path, name,
                                      tc.num_gen_arch if self.space.num_gen_arch_dir else None)
            log.info(f"==> generate architectures for {name}")
            feasible = make_filter(self.space, tc.budget, target.info.num_classes,
                                   paths.latency_cache(self.run.save_path))
            times, records, counts, files, first = [], [], [], {}, []
            for run in range(1, target.info.runs + 1):
                log.info(f"==> run {run}/{target.info.runs}")
                if feasible is not None:
                    feasible.over_in_a_row = 0  # each run has its own patience
                if ranker is None:
                    res = self.generate(model, target, tc.num_gen_arch, tc, feasible=feasible)
                else:
                    res = self.search(model, ranker, target, tc.num_gen_arch, tc, feasible=feasible)
                    records.append(self._record(run, res, ranker_meta, feasible))
                if not res.archs and feasible is not None and feasible.records:
                    raise feasible.infeasible(f"unique valid architectures decoded for {name}")
                if not res.archs:  # nothing valid: the early stop's reason says why (docs/fidelity.md#early-stop)
                    raise MetaD2AError(f"{name}: {res.stop_reason}")
                if res.stop_reason:
                    log.warning(f"warning: {res.stop_reason}")
                path = paths.generated_arch_file(out, run)
                # arch_key is the original output line of the space (``SearchSpace.arch_key``)
                files[path] = archive_text(res.seconds, [self.space.arch_key(a) for a in res.archs])
                times.append(res.seconds)
                first = first or res.archs
                counts.append(self._counts(run, res))
                log.info(f"==> save generated architectures in {path}")
                log.info(f"elapsed time: {res.seconds:6.2f}s ({len(res.archs)} unique valid of {res.decoded} "
                         f"decoded, {res.valid} valid)")
            files[out / "time.txt"] = f"generator elasped time {statistics.mean(times):.2f}s\n"  # sic, original
            files[out / "generation.json"] = to_json(self._generation(target, tc, counts), indent=2) + "\n"
            if ranker is not None:
                result = self._result(target, tc, records, times)
                if feasible is not None:
                    result["budget"] = feasible.summary(first[0] if first else None)
                    feasible.plot(out / PARETO_FILE, first, records[0]["scores"], f"{target.name}, run 1")
                files[out / "result.json"] = to_json(result, indent=2) + "\n"
            # all or nothing, once every run is done (docs/fidelity.md#atomic-outputs)
            write_files(files)
            log.info("==> done")

    @staticmethod
    def _counts(run: int, res: Generation | SearchResult) -> dict:
        """A run's generation counts (generation.json, docs/data.md#generation-json)."""
        return {"run": run, "decoded": res.decoded, "valid": res.valid, "unique": len(res.archs),
                "seconds": res.seconds, "stop_reason": res.stop_reason}

    def _generation(self, target: TargetDataset, tc: MetaTestConfig, counts: list[dict]) -> dict:
        """``generation.json``: the counts of every run (docs/data.md#generation-json)."""
        return {
            "dataset": target.name, "search_space": self.space.name, "num_gen_arch": tc.num_gen_arch,
            "constrained_decoding": tc.constrained_decoding, "fast_resampling": tc.fast_resampling, "runs": counts,
            "note": "per run: graphs decoded, valid graphs among them (repeats included), unique valid "
                    "architectures kept (the lines of run_<k>.txt), seconds, and why a run stopped "
                    "before num_gen_arch (null when it did not)",
        }

    def _record(self, run: int, res: SearchResult, ranker_meta: dict, feasible: BudgetFilter | None = None) -> dict:
        rec = {"run": run, "top1_arch": self.space.arch_key(res.archs[0]) if res.archs else None,
               "top1_score": res.scores[0] if res.scores else None, "top1_predicted_acc": None,
               "num_archs": len(res.archs), "decoded": res.decoded, "valid": res.valid, "unique": len(res.archs),
               "stop_reason": res.stop_reason, "seconds": res.seconds,
               "scores": res.scores}  # aligned with the lines of run_<k>.txt
        if res.scores:
            rec["top1_predicted_acc"] = predicted_accuracy(res.scores[0], ranker_meta)
        if feasible is not None:  # docs/fidelity.md#budget: aligned with the lines of run_<k>.txt too
            rec["costs"] = feasible.costs(res.archs)
            rec["pareto_front"] = feasible.front(res.archs, res.scores)
        return rec

    def _result(self, target: TargetDataset, tc: MetaTestConfig, records: list[dict],
                times: list[float]) -> dict:
        """``result.json`` of a search whose generator ranks its architectures."""
        return {
            "dataset": target.name, "num_classes": target.info.num_classes, "search_space": self.space.name,
            "num_gen_arch": tc.num_gen_arch, "constrained_decoding": tc.constrained_decoding,
            "fast_resampling": tc.fast_resampling,
            "mode": ("original: 100 resampled sets pooled per decoded graph, scored with its sampled edges"
                     if self.loop.pooled_search else "per-set: one graph per resampled set, scored on canonical graphs"),
            "top1_arch": records[0]["top1_arch"], "top1_score": records[0]["top1_score"],
            "runs": records, "generator_seconds_mean": statistics.mean(times),
            "note": "architectures as in run_<k>.txt; "
                    "top1_score is the predictor's normalised output ((acc - mean) / std) / 100; "
                    "top1_predicted_acc converts it back when the predictor checkpoint has a sidecar "
                    "with its training mean/std (released checkpoints have none)",
        }
