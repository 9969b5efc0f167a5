"""Generator: meta-training and architecture generation for a dataset, ranked by the predictor
where the space's search is one step (docs/fidelity.md#generator, docs/fidelity.md#loop-styles)."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from tqdm import tqdm

from metad2a import paths
from metad2a.config import PREDICTOR_HS, MetaTestConfig, TrainConfig
from metad2a.data.archive import write_archive
from metad2a.data.meta_test import TargetDataset, load_target
from metad2a.data.meta_train import predicted_accuracy
from metad2a.engine.budget import PARETO_FILE, BudgetFilter, admit, make_filter
from metad2a.engine.predictor_runner import PredictorRunner
from metad2a.engine.runner import Runner, optimise, set_encode_batch
from metad2a.engine.trainer import EpochResult, fit
from metad2a.errors import CheckpointError, MetaD2AError
from metad2a.files import write_json
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch

log = logging.getLogger("metad2a")


@dataclass
class SearchResult:
    """One search run: unique valid architectures sorted by predicted score (descending)."""

    archs: list[Any]
    scores: list[float]
    seconds: float  # generation + prediction, as the original times it
    decoded: int  # graphs decoded


class GeneratorRunner(Runner):
    kind = "generator"

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

    def _archs(self, g: GraphBatch) -> list[Any | None]:
        """The architecture of each decoded graph, or None where the space rejects it."""
        ok = g.dag_valid_mask(self.space.start_type, self.space.end_type).tolist()
        types, nv = g.types.tolist(), g.num_vertices.tolist()
        return [self.space.arch_from_types(types[i][: nv[i]]) if ok[i] else None for i in range(len(ok))]

    def generate(self, model: GeneratorModel, target: TargetDataset, num_gen_arch: int, tc: MetaTestConfig,
                 generator: torch.Generator | None = None,
                 feasible: BudgetFilter | None = None) -> tuple[list[Any], float, int]:
        """Decode until ``num_gen_arch`` unique valid (and, with a budget filter, feasible)
        architectures; one graph per resampled set.

        Returns:
            (architectures in generation order, seconds, graphs decoded).
        """
        t0 = time.time()
        archs: list[Any] = []
        seen: set[str] = set()
        decoded = 0
        with tqdm(total=num_gen_arch, desc=f"generate {target.name}", leave=False, disable=None) as bar:
            for _ in range(tc.max_gen_batches):
                x = target.sample(tc.gen_batch_size, generator).to(self.device)
                with torch.no_grad():
                    mu, _ = model.set_encode(x)
                    g = model.decode(mu, generator=generator)
                decoded += len(mu)
                new = []
                for a in self._archs(g):
                    if a is None:
                        continue
                    key = self.space.arch_key(a)
                    if key not in seen:
                        seen.add(key)
                        new.append(a)
                kept = admit(new, num_gen_arch - len(archs), feasible)
                archs += kept
                bar.update(len(kept))
                if len(archs) == num_gen_arch:
                    return archs, time.time() - t0, decoded
                if feasible is not None and feasible.exhausted:
                    break
        log.warning(f"warning: only {len(archs)} unique valid{self._over(feasible)} architectures after {decoded} "
                    f"decoded graphs ({self._stop(feasible, f'cap {tc.max_gen_batches} batches')}); keeping them")
        return archs, time.time() - t0, decoded

    @staticmethod
    def _over(feasible: BudgetFilter | None) -> str:
        """The budget's part of the count when a search stopped short."""
        return "" if feasible is None else f" and feasible ({feasible.rejected} over the budget)"

    @staticmethod
    def _stop(feasible: BudgetFilter | None, cap: str) -> str:
        """Why a search stopped short: the budget's patience, or the cap."""
        return feasible.stop_reason() if feasible is not None and feasible.exhausted else cap

    def _generate_pooled(self, model: GeneratorModel, predictor: PredictorModel, target: TargetDataset,
                         num_gen_arch: int, tc: MetaTestConfig, generator: torch.Generator | None,
                         feasible: BudgetFilter | None = None) -> tuple[list[Any], list[float], int]:
        """The pooled search loop (docs/fidelity.md#pooled-search): one graph and one score per
        loader batch of resampled sets."""
        archs: list[Any] = []
        scores: list[float] = []
        seen: set[str] = set()
        decoded = 0
        with tqdm(total=num_gen_arch, desc=f"generate {target.name}", leave=False, disable=None) as bar:
            for _ in range(self.loop.max_pooled_batches):
                x = target.sample(tc.gen_batch_size, generator).to(self.device)  # [100, C*n, d]
                # Reproduction quirk (docs/fidelity.md#pooled-search): the original adds a leading axis
                # to the loader batch of 100 resampled sets, so the set encoder sees ONE set in which
                # all 100*C class groups are pooled together by the inter-class pooling -> one
                # latent, one graph.
                pooled = x.reshape(1, -1, x.size(-1))
                with torch.no_grad():
                    mu, _ = model.set_encode(pooled)
                    g = model.decode(mu, generator=generator)
                decoded += 1
                a = self._archs(g)[0]
                if a is None or self.space.arch_key(a) in seen:
                    continue  # the original also scores these; the result is never used
                if not admit([a], 1, feasible):
                    seen.add(self.space.arch_key(a))  # over the budget: not scored, not kept
                    if feasible.exhausted:
                        break
                    continue
                with torch.no_grad():
                    # Quirk (docs/fidelity.md#pooled-search): scored on the same pooled set, and on the
                    # decoded graph WITH its sampled edges, although the predictor was trained on
                    # canonical graphs only.
                    s = predictor.predict(predictor.set_encode(pooled), predictor.graph_encode(g))
                seen.add(self.space.arch_key(a))
                archs.append(a)
                scores.append(float(s.item()))
                bar.update(1)
                if len(archs) == num_gen_arch:
                    return archs, scores, decoded
        log.warning(f"warning: only {len(archs)} unique valid{self._over(feasible)} architectures after {decoded} "
                    f"decoded graphs ({self._stop(feasible, f'cap {self.loop.max_pooled_batches} pooled batches')}); "
                    f"keeping them")
        return archs, scores, decoded

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
            archs, scores, decoded = self._generate_pooled(model, predictor, target, num_gen_arch, tc, generator,
                                                           feasible)
        else:
            archs, _, decoded = self.generate(model, target, num_gen_arch, tc, generator, feasible)
            scores = self.ranker().score(predictor, target, archs, tc.pred_num_sets, generator).tolist() if archs else []
        seconds = time.time() - t0
        order = sorted(range(len(archs)), key=lambda i: -scores[i])  # stable: ties keep generation order
        return SearchResult([archs[i] for i in order], [scores[i] for i in order], seconds, decoded)

    def meta_test(self, tc: MetaTestConfig) -> None:
        model = self.load(tc.load_epoch)
        ranker, ranker_meta = self.ranker().load() if self.space.generator_ranks else (None, {})
        if ranker is not None and ranker.feature_dim != model.feature_dim:
            raise CheckpointError(f"the predictor expects {ranker.feature_dim}-d features but the generator "
                                  f"{model.feature_dim}-d; both must be meta-trained on the same features")
        for name in tc.data_names:
            target = load_target(self.run.data_path, name, self.mc.num_sample,
                                 self.space.dataset_info(name, tc.num_class), model.feature_dim)
            out = paths.meta_test_dir(self.run.save_path, name,
                                      tc.num_gen_arch if self.space.num_gen_arch_dir else None)
            log.info(f"==> generate architectures for {name}")
            feasible = make_filter(self.space, tc.budget, target.info.num_classes,
                                   paths.latency_cache(self.run.save_path))
            times, records, found = [], [], []
            for run in range(1, target.info.runs + 1):
                log.info(f"==> run {run}/{target.info.runs}")
                if feasible is not None:
                    feasible.over_in_a_row = 0  # each run has its own patience
                if ranker is None:
                    archs, secs, decoded = self.generate(model, target, tc.num_gen_arch, tc, feasible=feasible)
                else:
                    res = self.search(model, ranker, target, tc.num_gen_arch, tc, feasible=feasible)
                    archs, secs, decoded = res.archs, res.seconds, res.decoded
                    records.append(self._record(run, res, ranker_meta, feasible))
                if not archs and feasible is not None and feasible.records:
                    raise feasible.infeasible(f"unique valid architectures decoded for {name}")
                if not archs:
                    raise MetaD2AError(f"no valid architecture among {decoded} decoded graphs for {name}; "
                                       f"is the generator checkpoint trained?")
                found.append((run, archs, secs))
                times.append(secs)
                log.info(f"elapsed time: {secs:6.2f}s ({len(archs)} unique valid"
                         f"{'' if feasible is None else ' and feasible'} of {decoded} decoded)")
            # written once every run has its architectures: a failed run leaves no partial set
            for run, archs, secs in found:
                path = paths.generated_arch_file(out, run)
                # arch_key is the original output line of the space (``SearchSpace.arch_key``)
                write_archive(path, secs, [self.space.arch_key(a) for a in archs])
                log.info(f"==> save generated architectures in {path}")
            with open(out / "time.txt", "w") as f:
                f.write(f"generator elasped time {statistics.mean(times):.2f}s\n")  # sic, original spelling
            if ranker is not None:
                self._write_result(out, target, tc, records, times, feasible, found[0][1])
            log.info("==> done")

    def _record(self, run: int, res: SearchResult, ranker_meta: dict, feasible: BudgetFilter | None = None) -> dict:
        rec = {"run": run, "top1_arch": self.space.arch_key(res.archs[0]) if res.archs else None,
               "top1_score": res.scores[0] if res.scores else None, "top1_predicted_acc": None,
               "num_archs": len(res.archs), "decoded": res.decoded, "seconds": res.seconds,
               "scores": res.scores}  # aligned with the lines of run_<k>.txt
        if res.scores:
            rec["top1_predicted_acc"] = predicted_accuracy(res.scores[0], ranker_meta)
        if feasible is not None:  # docs/fidelity.md#budget: aligned with the lines of run_<k>.txt too
            rec["costs"] = feasible.costs(res.archs)
            rec["pareto_front"] = feasible.front(res.archs, res.scores)
        return rec

    def _write_result(self, out, target: TargetDataset, tc: MetaTestConfig, records: list[dict],
                      times: list[float], feasible: BudgetFilter | None = None, first: list[Any] = ()) -> None:
        result = {
            "dataset": target.name, "num_classes": target.info.num_classes, "search_space": self.space.name,
            "num_gen_arch": tc.num_gen_arch,
            "mode": ("original: 100 resampled sets pooled per decoded graph, scored with its sampled edges"
                     if self.loop.pooled_search else "per-set: one graph per resampled set, scored on canonical graphs"),
            "top1_arch": records[0]["top1_arch"], "top1_score": records[0]["top1_score"],
            "runs": records, "generator_seconds_mean": statistics.mean(times),
            "note": "architectures as in run_<k>.txt; "
                    "top1_score is the predictor's normalised output ((acc - mean) / std) / 100; "
                    "top1_predicted_acc converts it back when the predictor checkpoint has a sidecar "
                    "with its training mean/std (released checkpoints have none)",
        }
        if feasible is not None:
            result["budget"] = feasible.summary(first[0] if first else None)
            feasible.plot(out / PARETO_FILE, first, records[0]["scores"], f"{target.name}, run 1")
        write_json(out / "result.json", result)
