"""``metad2a search IMAGES --space S --out DIR``: from a folder of images to a deployable network in
one command (README "metad2a search"): features -> generation and ranking -> (training) -> verified
export -> report.

Each stage records its settings in ``DIR/state.json`` when it finishes (docs/data.md#search-report);
running the same command again skips every stage whose settings and outputs are unchanged (a stage's
settings include those of the stages it reads), so an interrupted run resumes where it stopped.
Bad input (an empty folder, a single class, unreadable images, features that do not fit the
checkpoints) is a one-line error, exit status 2, and leaves no ``DIR`` behind: everything is checked,
and the features extracted, before ``DIR`` is created.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from metad2a import api
from metad2a.config import require_positive
from metad2a.data.features import EXTRACTORS, get_extractor
from metad2a.data.formats import read_bylabel, write_bylabel
from metad2a.errors import MetaD2AError, user_command
from metad2a.files import file_sha256, make_dirs, to_json, write_json
from metad2a.parser import add_budget_flags
from metad2a.plotting import has_pyplot
from metad2a.search_spaces import DEFAULT_SPACE, space_names

log = logging.getLogger("metad2a")

STATE = "state.json"
STAGES = ("features", "search", "baseline", "train", "export", "report")
VERIFY_IMAGES = 16
CALIBRATION_IMAGES = 256  # training images that set an untrained network's batch-norm statistics


def build_parser() -> argparse.ArgumentParser:
    names = space_names()
    p = argparse.ArgumentParser(prog="metad2a search", allow_abbrev=False,
                                description="Search, train and export a network for a folder of images "
                                            "(one sub-folder per class).")
    a = p.add_argument
    a("images", help="image folder: IMAGES/<class>/<image> (or IMAGES/train/ and IMAGES/test/), or digits")
    a("--space", default=DEFAULT_SPACE, choices=names, help="search space")
    a("--out", required=True, help="output folder (run the same command again to resume)")
    a("--checkpoints", default=None,
      help="folder with the generator ckpt_<E>.pt and predictor ckpt_max_corr.pt (default: the space's shipped ones)")
    a("--extractor", default=api.DEFAULT_EXTRACTOR, choices=sorted(EXTRACTORS),
      help="image features; must be the one the checkpoints were meta-trained on")
    a("--num-archs", type=int, default=50, help="architectures to generate and rank")
    a("--constrained-decoding", action="store_true", help="decode only valid architectures")
    a("--fast-resampling", action="store_true",
      help="draw resampled sets from few random numbers (faster with a weak generator; other sets for a seed)")
    a("--random-archs", type=int, default=200, help="random architectures scored for the report's baseline")
    a("--max-per-class", type=int, default=None, help="use at most N images per class for the features")
    a("--train", action="store_true", help="train the chosen architecture with the space's recipe (from "
                                           "--network-weights when the space has pretrained weights)")
    a("--epochs", type=int, default=10, help="training epochs with --train")
    a("--top-k", type=int, default=1, help="with --train: train the K best-ranked briefly and keep the best on a "
                                          "held-out part of the training images")
    a("--image-size", type=int, default=None, help="network input side (default: the space's)")
    a("--network-weights", default=None, help="the space's pretrained network weights, where it has any (see the space's README section)")
    a("--seed", type=int, default=0, help="seed of the search, the random baseline and training")
    a("--gpu", default="cpu", help="CUDA device id, or cpu")
    add_budget_flags(p, "the network's, --image-size")  # default latency cache: OUT/latency
    return p


def _positive(args: argparse.Namespace) -> None:
    require_positive(args, "num_archs", "random_archs", "epochs", "top_k", "max_per_class", "image_size",
                     allow_none=True)


def _digest(obj: Any) -> str:
    return hashlib.sha256(to_json(obj, sort_keys=True).encode()).hexdigest()[:16]


def folder_fingerprint(images: str) -> dict[str, Any]:
    """What identifies the images: their paths, sizes and modification times (not their bytes)."""
    p = Path(images)
    if not p.is_dir():
        return {"source": images}
    h, n = hashlib.sha256(), 0
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        n += 1
    return {"source": str(p.resolve()), "files": n, "sha256": h.hexdigest()[:16]}


class Stages:
    """``state.json``: each finished stage with the digest of its settings."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE
        self.state: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            try:
                self.state = json.loads(self.path.read_text())
            except ValueError:
                log.warning(f"warning: {self.path} is unreadable; every stage runs again")

    def done(self, name: str, settings: dict[str, Any], outputs: list[Path]) -> bool:
        rec = self.state["stages"].get(name)
        return bool(rec) and rec.get("digest") == _digest(settings) and all(p.exists() for p in outputs)

    def finish(self, name: str, settings: dict[str, Any], seconds: float) -> None:
        self.state["stages"][name] = {"digest": _digest(settings), "settings": settings, "seconds": seconds,
                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(self.path, self.state)


def _say(i: int, name: str, text: str) -> None:
    log.info(f"==> [{i}/{len(STAGES)}] {name}: {text}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline; returns ``summary.json``'s contents."""
    from metad2a.runtime import select_device

    _positive(args)
    space = api.resolve_space(args.space)
    device = select_device(args.gpu)
    out = Path(args.out)
    t_all = time.time()
    # ---- checks before anything is written
    searcher = api.load_searcher(args.checkpoints, space, device)
    spec = get_extractor(args.extractor)
    searcher.check_width(spec.name, spec.feature_dim)
    _, counts = api.checked_images(args.images, args.max_per_class, searcher.checkpoints.num_sample)
    size = args.image_size or space.cost_input_size
    args.input_size = args.input_size or size  # the budget is counted at the network's size
    if args.latency_cache is None:
        args.latency_cache = str(out / "latency")
    from metad2a.cli import budget as read_budget

    limits = read_budget(args)  # checked (numbers, device) before anything is written
    weights = Path(args.network_weights) if args.network_weights else None
    if weights is not None and not weights.is_file():
        raise MetaD2AError(f"--network-weights {weights}: file not found")
    log.info(f"==> checkpoints: {searcher.description}")

    # ---- 1. features (extracted before --out is created)
    feat_settings = {"images": folder_fingerprint(args.images), "extractor": spec.name,
                     "max_per_class": args.max_per_class}
    stages = Stages(out)
    feat_file, feat_info = out / "features" / "featuresbylabel.pt", out / "features" / "features.json"
    if stages.done("features", feat_settings, [feat_file, feat_info]):
        _say(1, "features", "done before, same images and extractor: reused")
        info = json.loads(feat_info.read_text())
        features = api.Features(read_bylabel(feat_file, mmap=False), info["class_names"], info["extractor"],
                                info["source"])
    else:
        _say(1, "features", f"{spec.name} on {sum(counts)} images of {len(counts)} classes")
        t0 = time.time()
        features = api.extract_features(args.images, spec.name, max_per_class=args.max_per_class, seed=args.seed,
                                        device=device)
        searcher.check_features(features)
        make_dirs(out / "features")
        write_bylabel(features.feats, feat_file)
        write_json(feat_info, {"extractor": features.extractor, "class_names": features.class_names,
                               "source": features.source, "feature_dim": features.feature_dim,
                               "images_per_class": [int(f.size(0)) for f in features.feats]})
        stages.finish("features", feat_settings, time.time() - t0)

    # ---- 2. search
    ck = searcher.checkpoints
    search_settings = {"features": _digest(feat_settings), "space": space.name,
                       "checkpoints": [file_sha256(ck.generator)[:16], file_sha256(ck.predictor)[:16]],
                       "num_archs": args.num_archs, "seed": args.seed, "constrained": args.constrained_decoding,
                       # only when on: earlier output folders keep resuming
                       **({"fast_resampling": True} if args.fast_resampling else {}),
                       "input_size": size, "ranking": ck.ranking,
                       "budget": {k: getattr(args, k) for k in ("max_params", "max_flops", "max_latency_ms",
                                                               "latency_device", "latency_batch", "latency_threads",
                                                               "input_size")} if limits.active else None}
    cand_file = out / "candidates.json"
    from metad2a.engine.budget import PARETO_FILE

    search_outputs = [cand_file] + ([out / PARETO_FILE] if limits.active and has_pyplot() else [])
    if stages.done("search", search_settings, search_outputs):
        _say(2, "search", "done before, same settings: reused")
        found = json.loads(cand_file.read_text())
    else:
        _say(2, "search", f"generate and rank {args.num_archs} architectures")
        t0 = time.time()
        cands = searcher.search(features, args.num_archs, limits if limits.active else None, seed=args.seed,
                                constrained_decoding=args.constrained_decoding, input_size=size,
                                latency_cache=args.latency_cache, fast_resampling=args.fast_resampling)
        st = searcher.last
        found = {"stats": {"decoded": st.decoded, "valid": st.valid, "unique": st.unique, "seconds": st.seconds,
                           "stop_reason": st.stop_reason},
                 "candidates": [{"arch": space.arch_to_json(c.arch), "key": c.key, "score": c.score,
                                 "predicted_accuracy": c.predicted_accuracy, "params_m": c.params_m,
                                 "mflops": c.mflops, "latency_ms": c.latency_ms} for c in cands],
                 "budget": None}
        fb = searcher.last_budget
        if fb is not None:  # docs/fidelity.md#budget: the budget block and pareto.png, as main.py's
            found["budget"] = fb.summary(cands[0].arch)
            fb.plot(out / PARETO_FILE, [c.arch for c in cands], [c.score for c in cands], f"{args.images}")
        write_json(cand_file, found)
        stages.finish("search", search_settings, time.time() - t0)
    cands = found["candidates"]
    archs = [space.arch_from_json(c["arch"]) for c in cands]

    # ---- 3. baseline: the same predictor on random architectures of the space
    base_settings = {"search": _digest(search_settings), "random_archs": args.random_archs, "seed": args.seed}
    base_file = out / "baseline.json"
    if stages.done("baseline", base_settings, [base_file]):
        _say(3, "baseline", "done before: reused")
        base = json.loads(base_file.read_text())
    else:
        _say(3, "baseline", f"score {args.random_archs} random architectures with the same predictor")
        t0 = time.time()
        rand = space.random_archs(args.random_archs, args.seed)
        # one call: with a likelihood weight in the ranking the scores are standardised over what is scored
        both = searcher.score(features, archs + rand, args.seed, fast_resampling=args.fast_resampling)
        base = {"generated": both[:len(archs)], "random": both[len(archs):], "num_sets": searcher.num_sets}
        write_json(base_file, base)
        stages.finish("baseline", base_settings, time.time() - t0)

    # ---- 4. training (optional)
    chosen = 0
    training = None
    net_file = out / "trained" / "network.pt"
    train_settings = {"search": _digest(search_settings), "epochs": args.epochs, "top_k": args.top_k,
                      "image_size": size, "seed": args.seed, "weights": str(weights) if weights else None}
    train_file = out / "trained" / "training.json"
    if args.train:
        if stages.done("train", train_settings, [train_file, net_file]):
            _say(4, "train", "done before, same settings: reused")
            training = json.loads(train_file.read_text())
        else:
            t0 = time.time()
            training, net = _train(space, args, archs, features.class_names, size, weights, device)
            make_dirs(net_file.parent)
            from metad2a.checkpoint import save_checkpoint

            save_checkpoint(net, net_file)
            write_json(train_file, training)
            stages.finish("train", train_settings, time.time() - t0)
        chosen = training["kept_rank"] - 1
    else:
        _say(4, "train", "skipped (no --train)")

    # ---- 5. export
    export_dir = out / "export"
    exp_settings = {"search": _digest(search_settings), "chosen": cands[chosen]["key"],
                    "train": _digest(train_settings) if args.train else None, "image_size": size}
    exp_file = export_dir / "export.json"
    from metad2a.deploy import FILES

    if stages.done("export", exp_settings, [exp_file, *(export_dir / f for f in FILES)]):
        _say(5, "export", "done before: reused")
        exported = json.loads(exp_file.read_text())
    else:
        _say(5, "export", "model.pt, model.ts, model.onnx, preprocess.json, verified with onnxruntime and TorchScript")
        t0 = time.time()
        exported = _export(space, args, archs[chosen], features.class_names, size, weights,
                           net_file if args.train else None, export_dir)
        write_json(exp_file, exported)
        stages.finish("export", exp_settings, time.time() - t0)

    # ---- 6. report (always rewritten: cheap)
    _say(6, "report", f"{out / 'report.md'}")
    from metad2a.report import percentile, write_report

    rows = []
    for i, (c, a) in enumerate(zip(cands, archs)):
        rows.append({"rank": i + 1, "arch": c["key"], "describe": space.describe_arch(a), "score": c["score"],
                     "predicted_accuracy": c["predicted_accuracy"],
                     "random_percentile": percentile(base["generated"][i], base["random"]),
                     "params_m": c["params_m"], "mflops": c["mflops"], "latency_ms": c["latency_ms"]})
    ch = rows[chosen]
    summary = {
        "format": "metad2a-search-summary", "images": str(args.images), "space": space.name,
        "num_classes": features.num_classes, "class_names": features.class_names, "input_size": size,
        "checkpoints": {"generator": str(ck.generator), "predictor": str(ck.predictor),
                        "description": ck.description},
        "features": {"extractor": features.extractor, "feature_dim": features.feature_dim,
                     "images_per_class": [int(f.size(0)) for f in features.feats]},
        "search": {**found["stats"], "num_archs": args.num_archs, "constrained_decoding": args.constrained_decoding,
                   "fast_resampling": args.fast_resampling},
        "ranking": ck.ranking or {"pred_num_sets": 10, "likelihood_weight": 0.0},
        "budget": found.get("budget"),
        "predicted_accuracy_meaning": searcher.predictor_meta.get("acc_meaning") or (
            "the predictor's estimate in the units of its meta-training database's accuracies (the accuracy a "
            "network reached with that database's training recipe), not an accuracy on your images"),
        "chosen": {"rank": ch["rank"], "arch": cands[chosen]["arch"], "arch_key": ch["arch"], "score": ch["score"],
                   "predicted_accuracy": ch["predicted_accuracy"], "random_percentile": ch["random_percentile"],
                   "params_m": ch["params_m"], "mflops": ch["mflops"], "latency_ms": ch["latency_ms"]},
        "baseline": {"random_archs": len(base["random"]), "random_score_mean": sum(base["random"]) / len(base["random"]),
                     "generated_score_mean": sum(base["generated"]) / len(base["generated"])},
        "trained": None if training is None else {k: training[k] for k in (
            "trained_candidates", "kept_rank", "kept_eval_acc", "test_acc", "epochs", "summary")},
        "network_weights": str(weights) if weights else None,
        "export": exported, "seconds": time.time() - t_all,
    }
    write_report(out, space, summary, rows, archs[chosen], base["generated"], base["random"], training)
    stages.finish("report", {}, 0.0)
    log.info(f"==> chosen: {ch['describe']} (better than {ch['random_percentile']:.0f} % of random architectures "
             f"by the predictor); report: {out / 'report.md'}; network: {export_dir}")
    return summary


def _datasets(args: argparse.Namespace, size: int) -> tuple[Any, Any, Any, Any]:
    """(fit, select, test, test source): the test split of the folder; with --top-k > 1 a seeded part
    of the training images is held out to choose among the trained candidates."""
    from metad2a.data.arch_data import TransformedImages, image_transform
    from metad2a.data.image_sources import holdout_split

    tf = image_transform(None, size)
    train_src, test_src = api.open_images(args.images, "train"), api.open_images(args.images, "test")
    test = TransformedImages(test_src, tf)
    if args.top_k > 1:
        fit, sel = holdout_split(train_src, "train", seed=1), holdout_split(train_src, "test", seed=1)
        return TransformedImages(fit, tf), TransformedImages(sel, tf), test, test_src
    return TransformedImages(train_src, tf), test, test, test_src


@torch.no_grad()
def _accuracy(net: torch.nn.Module, data: Any) -> float:
    from metad2a.evaluation.metrics import topk_correct

    net.eval()
    correct, n = 0.0, 0
    for x, y in torch.utils.data.DataLoader(data, batch_size=128):
        correct += topk_correct(net(x), y, (1,))[0]
        n += len(y)
    return 100.0 * correct / max(n, 1)


def _train(space: Any, args: argparse.Namespace, archs: list[Any], class_names: list[str], size: int,
           weights: Path | None, device: torch.device) -> tuple[dict[str, Any], torch.nn.Module]:
    fit, sel, test, _ = _datasets(args, size)
    k = min(args.top_k, len(archs))
    split = "held-out training images" if k > 1 else "test"
    runs, best, best_net = [], None, None
    for i in range(k):
        _say(4, "train", f"candidate {i + 1}/{k}, {args.epochs} epoch(s): {space.describe_arch(archs[i])}")
        r = api.train(archs[i], (fit, sel), len(class_names), space=space, epochs=args.epochs, input_size=size,
                      weights=weights, seed=args.seed, device=device)
        runs.append({"rank": i + 1, "arch": space.arch_key(archs[i]), "history": r.history,
                     "eval_acc": r.eval_acc, "eval_split": split})
        if best is None or r.eval_acc > runs[best]["eval_acc"]:
            best, best_net = i, r.network
    runs[best]["kept"] = True
    test_acc = _accuracy(best_net, test)
    desc = (f"Trained {k} candidate(s) (the {k} best-ranked) for {args.epochs} epoch(s) each with the space's "
            f"recipe; " + (f"kept #{best + 1}, the best on a seeded 20 % of the training images held out for the "
                           f"choice; its test accuracy {test_acc:.2f} %." if k > 1 else
                           f"test accuracy after the last epoch {test_acc:.2f} %."))
    rec = {"trained_candidates": k, "kept_rank": best + 1, "kept_eval_acc": runs[best]["eval_acc"],
           "test_acc": test_acc, "epochs": args.epochs, "runs": runs, "description": desc,
           "summary": f"{k} candidate(s) trained {args.epochs} epoch(s); kept #{best + 1}; test accuracy "
                      f"{test_acc:.2f} %"}
    return rec, best_net


def _export(space: Any, args: argparse.Namespace, arch: Any, class_names: list[str], size: int,
            weights: Path | None, net_file: Path | None, export_dir: Path) -> dict[str, Any]:
    from metad2a.checkpoint import load_checkpoint
    from metad2a.data.arch_data import TransformedImages, image_transform
    from metad2a.data.imaging import IMAGENET_MEAN, IMAGENET_STD
    from metad2a.deploy import calibrate_batchnorm, export, preprocess_info, require_onnx

    require_onnx()
    net = space.build_network(arch, len(class_names), weights, args.seed)
    fit, _, _, test_src = _datasets(argparse.Namespace(images=args.images, top_k=1), size)
    calibrated = 0
    if net_file is not None:
        load_checkpoint(net, net_file)
    else:  # untrained: batch-norm statistics from the training images (docs/fidelity.md#search-command)
        g = torch.Generator().manual_seed(args.seed)
        pick = torch.randperm(len(fit), generator=g)[:CALIBRATION_IMAGES].tolist()
        calibrated = calibrate_batchnorm(net, torch.stack([fit[i][0] for i in pick]))
    data = TransformedImages(test_src, image_transform(None, size))
    n = min(VERIFY_IMAGES, len(data))
    batch = torch.stack([data[i][0] for i in range(n)])
    res = export(net.eval(), export_dir, batch[:2], arch=space.arch_to_json(arch), space=space.name,
                 preprocess=preprocess_info(size, IMAGENET_MEAN, IMAGENET_STD, class_names,
                                            f"Resize(({size}, {size})), RGB"),
                 verify_input=batch, verified_on=f"the first {n} test images of {args.images}")
    d = res.to_dict()
    d["files"] = {k: str(Path(v).relative_to(export_dir.parent)) for k, v in d["files"].items()}
    d["trained"] = net_file is not None
    d["batchnorm_calibrated"] = calibrated  # batch-norm layers set from the training images (untrained network)
    return d


@user_command("interrupted; the finished stages are kept: run the same command again to resume", also=(OSError,))
def main(argv: list[str] | None = None) -> int:
    """``metad2a search``: user errors become one line on stderr and exit code 2."""
    from metad2a.log import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    out = Path(args.out)
    existed = out.exists()
    try:
        run(args)
    except MetaD2AError:
        if not existed and out.exists():  # nothing partial from a run that failed on its input
            shutil.rmtree(out, ignore_errors=True)
        raise
    return 0
