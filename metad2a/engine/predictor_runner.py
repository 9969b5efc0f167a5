"""Predictor: meta-training and ranking of generated architectures; the ranked architectures are
looked up in the space's accuracy table or trained where the space can (docs/fidelity.md#predictor)."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from metad2a import paths
from metad2a.checkpoint import read_sidecar
from metad2a.config import GENERATOR_HS, MetaTestConfig, TrainConfig
from metad2a.data.archive import read_archive
from metad2a.data.catalog import DatasetInfo
from metad2a.data.meta_test import TargetDataset, load_target
from metad2a.data.meta_train import predicted_accuracy
from metad2a.engine.budget import PARETO_FILE, make_filter
from metad2a.engine.runner import Runner, optimise, set_encode_batch
from metad2a.engine.trainer import EpochResult, fit
from metad2a.errors import CheckpointError
from metad2a.evaluation.metrics import mean_confidence_interval, pearson
from metad2a.files import make_dirs, to_json, write_files
from metad2a.models.generator import GeneratorModel, likelihood_sets
from metad2a.models.predictor import PredictorModel, pairwise_rank_loss, score_sets
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.base import AccuracyTable

log = logging.getLogger("metad2a")


def standardise(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` over the candidates; all zeros when they are all equal."""
    std = x.std() if x.numel() > 1 else x.new_zeros(())
    return (x - x.mean()) / std if float(std) > 0 else torch.zeros_like(x)


@torch.no_grad()
def rank_scores(predictors: Sequence[PredictorModel], sets: torch.Tensor, graphs: GraphBatch,
                generator: GeneratorModel | None = None, likelihood_weight: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ranking of candidate architectures (docs/fidelity.md#ranking-options).

    The predictors' mean prediction over the same resampled ``sets`` (one predictor: the original
    ranking; several: an ensemble), optionally mixed with the generator's log-likelihood of each
    architecture given the same sets: ``(1 - w) * standardise(prediction) + w *
    standardise(log-likelihood)`` with ``w = likelihood_weight`` in [0, 1], both standardised over
    the candidates (1: the likelihood alone).

    Returns:
        (ranking scores [A], the predictors' mean prediction [A]), on the CPU.
    """
    predicted = torch.stack([score_sets(p, sets, graphs) for p in predictors]).mean(0)
    if not likelihood_weight:
        return predicted, predicted
    if generator is None:
        raise ValueError("likelihood_weight needs the generator")
    ll = likelihood_sets(generator, sets, graphs)
    w = likelihood_weight
    return (1 - w) * standardise(predicted) + w * standardise(ll), predicted


class PredictorRunner(Runner):
    kind = "predictor"

    # ------------------------------------------------------------------ meta-training
    def meta_train(self, tc: TrainConfig) -> dict:
        model, db = self.prepare_meta_train()
        log.info(f"==> The number of tasks for meta-training: {len(db.split['train'])}")
        meta = self.checkpoint_meta(model, acc_mean=db.mean, acc_std=db.std, rank_loss=tc.rank_loss)
        best = {"loss": float("nan"), "corr": float("-inf")}

        def epoch(mode: str, ep: int, opt: torch.optim.Optimizer | None) -> EpochResult:
            total, n_all, preds, ys = 0.0, 0, [], []
            tag = "train" if mode == "train" else "val"
            for b, bar in self.epoch_batches(db, mode, tc.batch_size, f"[{tag}] Ep {ep}"):
                g, y = b.graphs.to(self.device), b.y.to(self.device)

                def compute() -> tuple[torch.Tensor, torch.Tensor]:
                    # Tasks of a ragged database differ in class count: their sets are encoded
                    # separately (as the original's per-sample loop) and the summed loss still takes
                    # one step per batch.
                    y_pred = model.predict(set_encode_batch(model, b, self.device), model.graph_encode(g))
                    loss = model.mseloss(y_pred, y[:, None])
                    if tc.rank_loss:  # new option (docs/fidelity.md#rank-loss); 0 keeps the original loss
                        loss = loss + tc.rank_loss * pairwise_rank_loss(y_pred.squeeze(1), y)
                    return loss, y_pred

                loss, y_pred = optimise(opt, compute)
                total += loss.item()
                n_all += len(y)
                p = y_pred.detach().squeeze(1).cpu()
                preds.append(p)
                ys.append(b.y)
                bar.set_description(
                    f"[{tag}] Ep {ep} loss {loss.item() / len(y):0.4f} pacc {p[0]:0.4f}"
                    f"({db.denormalise(p[0]):0.4f}) acc {b.y[0]:0.4f}({b.acc[0]:0.4f})")
            corr = pearson(torch.cat(preds).numpy(), torch.cat(ys).numpy())
            m = {"loss": total / max(n_all, 1), "corr": corr}
            if mode == "train":
                return EpochResult(m["loss"], m, [f"train: loss {m['loss']:.6f} corr {corr:.4f}"])
            if corr == corr and corr > best["corr"]:
                best.update(loss=m["loss"], corr=corr)
            line = f"valid: loss {m['loss']:.6f} ({best['loss']:.6f}) corr {corr:.4f} ({best['corr']:.4f})"
            return EpochResult(m["loss"], m, [line])

        summary = fit(model, lambda ep, opt: epoch("train", ep, opt), lambda ep: epoch("valid", ep, None), tc,
                      self.run.save_path, "predictor", meta, self.run.resume, best_metric="corr",
                      running=best)  # the log's running best, restored on --resume
        log.info(f"[epoch {summary['best_epoch']}] max correlation: {summary['best']:.4f}, loss: {best['loss']:.6f}")
        return summary

    # ------------------------------------------------------------------ meta-test (ranking)
    def load(self, path: Path | None = None) -> tuple[PredictorModel, dict]:
        """The predictor ``<save>/predictor/model/ckpt_max_corr.pt`` (or ``path``), with its sidecar."""
        path = path or paths.model_dir(self.run.save_path, "predictor") / "ckpt_max_corr.pt"
        hint = f"download the released one with `{self.space.get_files.predictor_checkpoint}` or meta-train one first"
        model, meta = self.load_model("predictor", path, hint)
        log.info(f"==> load model from {path} ...")
        return model, meta

    def load_generator(self, load_epoch: int) -> GeneratorModel:
        """The generator of the search (``ckpt_<load_epoch>.pt``), for ``--likelihood-weight``; its
        hidden size comes from its sidecar (the README's 56 when it has none)."""
        path = paths.ckpt(self.run.save_path, "generator", load_epoch)
        hs = read_sidecar(path).get("hs", GENERATOR_HS) if path.is_file() else GENERATOR_HS
        model, _ = self.load_model("generator", path, "--likelihood-weight scores with the generator of the "
                                   "search: pass its --load-epoch", mc=replace(self.mc, hs=hs))
        log.info(f"==> load generator from {path} for the likelihood term ...")
        return model

    def _graphs(self, archs: list[str]) -> GraphBatch:
        types = [self.space.arch_types(a) for a in archs]
        edges = [self.space.arch_edges(a) for a in archs]
        return GraphBatch.from_lists(types, edges, self.space.max_n).to(self.device)

    @torch.no_grad()
    def score(self, model: PredictorModel | Sequence[PredictorModel], target: TargetDataset, archs: list[str],
              num_sets: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean prediction over ``num_sets`` resampled sets of the target, per architecture: [A]
        (several models: the mean of their predictions on the same sets).

        Deliberate deviation (documented in the README): the original draws 10 fresh sets for every
        architecture; we encode one pool of ``num_sets`` sets per run and pair it with every
        architecture (common random numbers). The ranking then compares architectures on the same
        sets, and the dataset is encoded once instead of once per architecture.
        """
        models = [model] if isinstance(model, PredictorModel) else list(model)
        return rank_scores(models, target.sample(num_sets, generator).to(self.device), self._graphs(archs))[0]

    def _trains(self, info: DatasetInfo, tc: MetaTestConfig) -> bool:
        """Whether ``--train-arch`` trains the top-1 architecture of this dataset in this space."""
        return tc.train_arch and self.space.trains_selected(info, self.options)

    def meta_test(self, tc: MetaTestConfig) -> list[dict]:
        for name in tc.data_names:  # fail before any model work when training would fail
            if self._trains(self.space.dataset_info(name, tc.num_class), tc):
                best_arch = paths.meta_test_dir(self.run.save_path, name) / "best_arch"
                self.space.check_train_selected(self.run.data_path, name, best_arch, self.options)
        model, meta = self.load()
        models = [model] + [self.load(Path(p))[0] for p in tc.ensemble]
        gen = self.load_generator(tc.load_epoch) if tc.likelihood_weight else None
        for m in models[1:] + ([gen] if gen is not None else []):
            if m.feature_dim != model.feature_dim:
                raise CheckpointError(f"the ranking models expect {m.feature_dim}-d and {model.feature_dim}-d "
                                      f"features; all must be meta-trained on the same features")
        table = self.space.accuracy_table(self.run.data_path, self.options)
        results = []
        for name in tc.data_names:
            target = load_target(self.run.data_path, name, self.mc.num_sample,
                                 self.space.dataset_info(name, tc.num_class), model.feature_dim,
                                 tc.fast_resampling)
            results.append(self._meta_test_one(models, meta, target, table, tc, gen))
        return results

    def _meta_test_one(self, models: list[PredictorModel], meta: dict, target: TargetDataset,
                       table: AccuracyTable | None, tc: MetaTestConfig, gen: GeneratorModel | None = None) -> dict:
        name, info = target.name, target.info
        test_dir = paths.meta_test_dir(self.run.save_path, name)
        out = test_dir / "best_arch"
        column = info.table_column or name
        use_table = table is not None and table.has(column)
        # docs/fidelity.md#budget: the same budget applies to the archived candidates
        feasible = make_filter(self.space, tc.budget, info.num_classes, paths.latency_cache(self.run.save_path))
        runs, times, missing, ranked = [], [], set(), []
        for k in range(1, info.runs + 1):
            path = paths.generated_arch_file(test_dir, k)
            _, archs = read_archive(path, hint="run the generator step first (--model generator --test)")
            if feasible is not None:
                archs = feasible(archs)
                if not archs:
                    raise feasible.infeasible(f"candidates of {path}", "raise the limits, or run the generator step "
                                              "with the same budget flags so that it keeps feasible candidates")
            t0 = time.time()
            sets = target.sample(tc.pred_num_sets).to(self.device)
            scores, predicted = rank_scores(models, sets, self._graphs(archs), gen, tc.likelihood_weight)
            order = torch.argsort(scores, descending=True, stable=True).tolist()
            top = [archs[i] for i in order[: info.top_n]]
            times.append(time.time() - t0)
            accs = [table.lookup(column, a) for a in top] if use_table else [None] * len(top)
            missing.update(a for a, acc in zip(top, accs) if use_table and acc is None)
            known = [a for a in accs if a is not None]
            rec = {"run": k, "top1_arch": top[0], "top1_score": float(scores[order[0]]),
                   "top1_predicted_acc": predicted_accuracy(float(predicted[order[0]]), meta),
                   "top1_acc": accs[0], f"best_of_top{info.top_n}_acc": max(known) if known else None,
                   "top_n": [{"arch": archs[i], "score": float(scores[i]), "acc": acc}
                             for i, acc in zip(order, accs)], "num_candidates": len(archs)}
            if feasible is not None:  # every candidate's costs, by descending score, and the front
                ranked.append(([archs[i] for i in order], [float(scores[i]) for i in order]))
                rec["candidates"] = [{"arch": a, "score": sc, **c} for a, sc, c in
                                     zip(*ranked[-1], feasible.costs(ranked[-1][0]))]
                rec["pareto_front"] = feasible.front(*ranked[-1])
            runs.append(rec)
        for r in runs:
            log.info(r["top1_arch"])
        make_dirs(out)  # only once every run has its candidates (an infeasible budget writes nothing)
        trained = (self.space.train_selected(runs[0]["top1_arch"], name, self.run.data_path, out, self.options,
                                             self.device) if self._trains(info, tc) else None)
        summary, accuracy_txt = self._report(out, runs, info.top_n, use_table, trained)
        result = {"dataset": name, "num_classes": info.num_classes, "search_space": self.space.name,
                  "table": table.source if use_table else None, "runs": runs, "summary": summary,
                  "ranking": {"predictors": len(models), "sets": tc.pred_num_sets,
                              "likelihood_weight": tc.likelihood_weight},
                  "predictor_trained_on": meta.get("trained_on"),
                  "dataset_conditioning": meta.get("dataset_conditioning"),
                  "predictor_seconds_mean": statistics.mean(times), "missing_from_table": sorted(missing),
                  "trained": trained, **({"budget": feasible.summary(ranked[0][0][0])} if feasible else {}),
                  "note": ("top1_acc is the accuracy of the architecture ranked first (what a user gets); "
                           f"best_of_top{info.top_n}_acc is the best table accuracy among the top "
                           f"{info.top_n} (the original's reported CIFAR figure, an oracle pick)")}
        if feasible is not None:
            feasible.plot(out / PARETO_FILE, *ranked[0], f"{name}, run 1")
        time_txt = test_dir / "time.txt"  # the generator's line, then this one appended (as the original)
        before = time_txt.read_text(errors="replace") if time_txt.is_file() else ""
        line = f"predictor average elasped time {statistics.mean(times):.2f}s\n"  # sic
        # all or nothing (docs/fidelity.md#atomic-outputs): a full disk leaves the earlier files, consistent
        write_files({out / "architecture.txt": "".join(f"{r['top1_arch']}\n" for r in runs),
                     time_txt: before + line,
                     out / "accuracy.txt": accuracy_txt,
                     out / "result.json": to_json(result, indent=2) + "\n"})
        if missing:
            log.warning(f"warning: {len(missing)} selected architecture(s) not in the accuracy table")
        return result

    def _report(self, out: Path, runs: list[dict], top_n: int, use_table: bool,
                trained: dict | None = None) -> tuple[dict, str]:
        """accuracy.txt in the original format (CIFAR: best-of-top-30 per run; trained datasets: the x-test
        accuracy of each seed), plus the figures labelled on the console and in result.json.

        Returns:
            (the summary for result.json, the text of accuracy.txt).
        """
        key = f"best_of_top{top_n}_acc"
        summary: dict = {}
        lines: list[str] = []
        if trained is not None:
            log.info(f"==> save results in {out}")
            for r, acc in enumerate(trained["x_test_acc"], 1):
                lines.append(f"run {r} {acc:.2f} (%)")
                log.info(f"run {r} {acc:.2f} (%)")
            m, ci = mean_confidence_interval(trained["x_test_acc"])
            lines.append(f"Avg {m:.2f}+-{ci:.2f} (%)")
            log.info(f"Avg {m:.2f}+-{ci:.2f} (%)")
            summary["trained_x_test_acc"] = {"mean": m, "ci95": ci}
            return summary, "".join(f"{ln}\n" for ln in lines)
        if not use_table:
            return summary, ""
        orig = [r[key] for r in runs if r[key] is not None]
        for r in runs:
            if r[key] is not None:
                lines.append(f"run {r['run']} {r[key]:.2f} (%)")
        if orig:
            m, ci = mean_confidence_interval(orig)
            lines.append(f"Avg {m:.2f}+-{ci:.2f} (%)")
            summary[key] = {"mean": m, "ci95": ci}
        top1 = [r["top1_acc"] for r in runs if r["top1_acc"] is not None]
        if top1:
            m1, ci1 = mean_confidence_interval(top1)
            summary["top1_acc"] = {"mean": m1, "ci95": ci1}
            log.info(f"top-1 architecture accuracy (what you get): {m1:.2f}+-{ci1:.2f} (%)")
        if key in summary and top_n > 1:
            log.info(f"best of top-{top_n} accuracy (original's reported figure): "
                     f"{summary[key]['mean']:.2f}+-{summary[key]['ci95']:.2f} (%)")
        return summary, "".join(f"{ln}\n" for ln in lines)
