"""Generator: meta-training (ORIGINAL.md §2.6) and architecture generation for a dataset (§2.8)."""

from __future__ import annotations

import logging
import statistics
import time

import torch
from tqdm import tqdm

from metad2a import paths
from metad2a.config import MetaTestConfig, ModelConfig, RunConfig, TrainConfig
from metad2a.data.meta_test import TargetDataset, load_target
from metad2a.engine.archive import write_archive
from metad2a.engine.common import build_model, load_meta_train_db, load_trained
from metad2a.engine.trainer import EpochResult, fit
from metad2a.models.generator import GeneratorModel
from metad2a.search_spaces.base import SearchSpace

log = logging.getLogger("metad2a")


class GeneratorRunner:
    def __init__(self, space: SearchSpace, run: RunConfig, mc: ModelConfig, device: torch.device) -> None:
        self.space, self.run, self.mc, self.device = space, run, mc, device

    # ------------------------------------------------------------------ meta-training
    def meta_train(self, tc: TrainConfig) -> dict:
        db = load_meta_train_db(self.space, self.run.data_path, "generator", self.mc.num_sample)
        log.info(f"==> The number of tasks for meta-training: {len(db.split['train'])}")
        model = build_model("generator", self.space, self.mc, db.feats[0].size(1)).to(self.device)
        meta = {"model": "generator", "space": self.space.name, "hs": self.mc.hs, "nz": self.mc.nz,
                "nvt": self.space.nvt, "max_n": self.space.max_n, "num_sample": self.mc.num_sample,
                "feature_dim": model.feature_dim}

        def epoch(mode: str, ep: int, opt: torch.optim.Optimizer | None) -> EpochResult:
            sums, nb = {"loss": 0.0, "recon_loss": 0.0, "kld": 0.0}, 0
            bar = tqdm(db.batches(mode, tc.batch_size, shuffle=mode == "train"), total=db.num_batches(mode, tc.batch_size),
                       desc=f"[{mode}] Ep {ep}", leave=False, disable=None)
            for b in bar:
                x, g = b.x.to(self.device), b.graphs.to(self.device)
                if opt is not None:
                    opt.zero_grad()
                loss, recon, kld = model.loss(*model.set_encode(x), g)
                if opt is not None:
                    loss.backward()
                    opt.step()
                n = len(x)
                for k, v in (("loss", loss), ("recon_loss", recon), ("kld", kld)):
                    sums[k] += v.item() / n  # the original averages per-batch sums / batch size
                nb += 1
                bar.set_postfix(loss=f"{loss.item() / n:.4f}")
            m = {k: v / max(nb, 1) for k, v in sums.items()}
            tag = "train" if mode == "train" else "valid"
            line = f"{tag}: loss {m['loss']:.4f}, recon_loss {m['recon_loss']:.4f}, kld {m['kld']:.4f}, "
            return EpochResult(m["loss"], m, [line])

        return fit(model, lambda ep, opt: epoch("train", ep, opt), lambda ep: epoch("valid", ep, None), tc,
                   self.run.save_path, "generator", meta, self.run.resume)

    # ------------------------------------------------------------------ meta-test (search)
    def load(self, load_epoch: int) -> GeneratorModel:
        path = paths.ckpt(self.run.save_path, "generator", load_epoch)
        hint = (f"download the released one with `{paths.GET_GENERATOR_CKPT[self.space.name]}` "
                f"(then --load-epoch 400 for NB201) or meta-train one first")
        model, _ = load_trained("generator", self.space, self.mc, path, hint, self.device)
        log.info(f"==> load model from {path} ...")
        return model

    def generate(self, model: GeneratorModel, target: TargetDataset, num_gen_arch: int, tc: MetaTestConfig,
                 generator: torch.Generator | None = None) -> tuple[list[str], float, int]:
        """Decode until ``num_gen_arch`` unique valid architectures; one graph per resampled set.

        Returns:
            (architectures in generation order, seconds, graphs decoded).
        """
        t0 = time.time()
        archs: list[str] = []
        seen: set[str] = set()
        decoded = 0
        with tqdm(total=num_gen_arch, desc=f"generate {target.name}", leave=False, disable=None) as bar:
            for _ in range(tc.max_gen_batches):
                x = target.sample(tc.gen_batch_size, generator).to(self.device)
                with torch.no_grad():
                    mu, _ = model.set_encode(x)
                    g = model.decode(mu, generator=generator)
                decoded += len(mu)
                ok = g.dag_valid_mask(self.space.start_type, self.space.end_type).tolist()
                types, nv = g.types.tolist(), g.num_vertices.tolist()
                for i in range(len(ok)):
                    if not ok[i]:
                        continue
                    a = self.space.arch_from_types(types[i][: nv[i]])
                    if a is None:
                        continue
                    key = self.space.arch_key(a)
                    if key not in seen:
                        seen.add(key)
                        archs.append(a)
                        bar.update(1)
                        if len(archs) == num_gen_arch:
                            return archs, time.time() - t0, decoded
        log.warning(f"warning: only {len(archs)} unique valid architectures after {decoded} decoded graphs "
                    f"(cap {tc.max_gen_batches} batches); keeping them")
        return archs, time.time() - t0, decoded

    def meta_test(self, tc: MetaTestConfig) -> None:
        model = self.load(tc.load_epoch)
        for name in tc.data_names:
            target = load_target(self.run.data_path, name, self.mc.num_sample, tc.num_class, model.feature_dim)
            out = paths.meta_test_dir(self.run.save_path, name)
            log.info(f"==> generate architectures for {name}")
            times = []
            for run in range(1, target.info.runs + 1):
                log.info(f"==> run {run}/{target.info.runs}")
                archs, secs, decoded = self.generate(model, target, tc.num_gen_arch, tc)
                if not archs:
                    raise RuntimeError(f"no valid architecture among {decoded} decoded graphs for {name}; "
                                       f"is the generator checkpoint trained?")
                path = paths.generated_arch_file(out, run)
                write_archive(path, secs, archs)
                times.append(secs)
                log.info(f"==> save generated architectures in {path}")
                log.info(f"elapsed time: {secs:6.2f}s ({len(archs)} unique valid of {decoded} decoded)")
            with open(out / "time.txt", "w") as f:
                f.write(f"generator elasped time {statistics.mean(times):.2f}s\n")  # sic, original spelling
            log.info("==> done")

