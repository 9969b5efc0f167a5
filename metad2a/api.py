"""The public Python API: from a folder of images to a deployable network (README "Python API").

    >>> import metad2a
    >>> feats = metad2a.extract_features("my_images/")
    >>> searcher = metad2a.load_searcher(space="nasbench201")          # the space's committed prior
    >>> best = searcher.search(feats, num_archs=20)[0]
    >>> net = metad2a.build_network(best.arch, feats.num_classes, space="nasbench201")

Every function takes plain values and returns plain dataclasses; what differs between search spaces
is behind the space's hooks (``SearchSpace.build_network``, ``train_network``, ...). ``metad2a search``
(``metad2a/search_cmd.py``) is this API run stage by stage with resumption and a report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metad2a.checkpoint import read_sidecar
from metad2a.config import GENERATOR_HS, PREDICTOR_HS, Budget, MetaTestConfig, ModelConfig, RunConfig
from metad2a.data.catalog import DatasetInfo
from metad2a.data.features import DEFAULT_NUM_SAMPLE, get_extractor
from metad2a.data.meta_test import TargetDataset
from metad2a.data.meta_train import predicted_accuracy
from metad2a.data.sets import check_rows
from metad2a.deploy import ExportResult
from metad2a.deploy import export as _export
from metad2a.errors import CheckpointError, DataFileError, MetaD2AError
from metad2a.search_spaces import DEFAULT_SPACE, find_space
from metad2a.search_spaces.base import SearchSpace

log = logging.getLogger("metad2a")

DEFAULT_EXTRACTOR = "efficientnet_lite0"
_CKPT = re.compile(r"ckpt_(\d+)\.pt$")


def resolve_space(space: str | SearchSpace) -> SearchSpace:
    """A search space from its name, its ``metad2a`` command name or an alias (``SearchSpace.aliases``)."""
    return space if isinstance(space, SearchSpace) else find_space(space)


# --------------------------------------------------------------------------- features
@dataclass
class Features:
    """Per-class image features of a dataset.

    Attributes:
        feats: one ``[N_c, D]`` float tensor per class.
        class_names: one name per class, in class-index order.
        extractor: the extractor's name (``metad2a.data.features.EXTRACTORS``).
        source: where the images came from.
    """

    feats: list[torch.Tensor]
    class_names: list[str]
    extractor: str
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.feats)

    @property
    def feature_dim(self) -> int:
        return int(self.feats[0].size(1))


def check_classes(class_names: Sequence[str], counts: Sequence[int], where: str,
                  min_per_class: int = DEFAULT_NUM_SAMPLE) -> None:
    """At least two classes, each with at least ``min_per_class`` images (what the search draws).

    Raises:
        DataFileError: one class only, or classes with too few images (named).
    """
    if len(class_names) < 2:
        raise DataFileError(f"{where}: {len(class_names)} class folder(s) ({', '.join(class_names)}); a search "
                            f"needs at least 2 classes: put each class's images in its own sub-folder")
    short = [f"{n} ({c})" for n, c in zip(class_names, counts) if c < min_per_class]
    if short:
        raise DataFileError(f"{where}: class(es) {', '.join(short[:5])} have fewer than {min_per_class} images, "
                            f"the images per class the search draws; add images to them")


def open_images(images: str | Path, split: str | None = None) -> Any:
    """The labelled images of a folder (``root/<class>/<image>``) or a named source (``digits``), with
    the folder checks of ``metad2a.data.image_sources`` (links, empty classes)."""
    from metad2a.data.image_sources import build_source

    return build_source(str(images), split=split)


def checked_images(images: str | Path, max_per_class: int | None = None,
                   min_per_class: int = DEFAULT_NUM_SAMPLE) -> tuple[Any, list[int]]:
    """The image source of ``images`` and its images per class (at most ``max_per_class``), checked
    by ``check_classes`` before any image is read.

    Raises:
        MetaD2AError: a missing or empty folder, a single class, or too few images per class.
    """
    source = open_images(images)
    counts = [0] * source.num_classes
    for t in source.targets:
        counts[t] += 1
    if max_per_class:
        counts = [min(c, max_per_class) for c in counts]
    check_classes(source.class_names, counts, str(images), min_per_class)
    return source, counts


def extract_features(images: str | Path, extractor: str = DEFAULT_EXTRACTOR, *, max_per_class: int | None = None,
                     seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 64,
                     progress: bool | None = None) -> Features:
    """Features of every image of a folder with one sub-folder per class.

    Args:
        images: the folder (or a named source such as ``digits``).
        extractor: ``efficientnet_lite0`` (1280-d, offline) or ``resnet18`` (512-d, the released
            checkpoints'; its weights are downloaded once).
        max_per_class: at most this many images per class (a seeded subset).
        seed, device, batch_size, progress: see ``metad2a.data.features.extract_features``.

    Raises:
        MetaD2AError: a missing or empty folder, a single class, too few images per class, an
            unreadable image (named), or an unknown extractor.
    """
    from metad2a.data.features import extract_features as _extract

    spec = get_extractor(extractor)
    source, _ = checked_images(images, max_per_class)
    feats = _extract(source, spec, max_per_class=max_per_class, seed=seed, batch_size=batch_size, device=device,
                     progress=progress)
    return Features(list(feats), list(source.class_names), spec.name, source.description)


# --------------------------------------------------------------------------- checkpoints and search
@dataclass(frozen=True)
class Checkpoints:
    """A generator and a predictor meta-trained together, and what they were meta-trained on."""

    generator: Path
    predictor: Path
    description: str
    generator_hs: int = GENERATOR_HS
    predictor_hs: int = PREDICTOR_HS
    nz: int = 56
    num_sample: int = DEFAULT_NUM_SAMPLE
    # how their candidates are ranked (docs/fidelity.md#ranking-options): ``pred_num_sets``,
    # ``likelihood_weight``; empty: the original ranking (the predictor alone, 10 resampled sets)
    ranking: dict[str, Any] = field(default_factory=dict)


def default_checkpoints(space: str | SearchSpace) -> Checkpoints:
    """The checkpoints a search uses without ``--checkpoints``: the space's committed prior
    (``SearchSpace.prior_dir``; NB201: ``metad2a.priors.nb201_prior()``, docs/data.md#nb201-prior),
    searched with the prior's ranking. A space without one raises an error that says where the
    released checkpoints come from.
    """
    s = resolve_space(space)
    if s.prior_dir is not None:
        from metad2a.priors import load_prior

        prior = load_prior(s.prior_dir)
        return Checkpoints(prior.generator, prior.predictor, prior.description, prior.generator_hs,
                           prior.predictor_hs, prior.nz, ranking=prior.ranking)
    raise MetaD2AError(f"no checkpoints ship for the {s.name} space: pass --checkpoints DIR with a generator "
                       f"ckpt_<E>.pt and a predictor ckpt_max_corr.pt (the released ones: "
                       f"`{s.get_files.generator_checkpoint}` and `{s.get_files.predictor_checkpoint}`)")


def find_checkpoints(folder: str | Path, space: str | SearchSpace) -> Checkpoints:
    """The generator (the highest-epoch ``ckpt_<E>.pt``) and predictor (``ckpt_max_corr.pt``) in
    ``folder``, or in the original layout ``folder/{generator,predictor}/model/``; sizes from their
    sidecars (README sizes without one).

    Raises:
        CheckpointError: either is missing, or a sidecar names another search space.
    """
    s = resolve_space(space)
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"{root}: checkpoint folder not found")
    found: dict[str, Path] = {}
    for d in (root, root / "generator" / "model"):
        gens = sorted((int(m.group(1)), p) for p in d.glob("ckpt_*.pt") if (m := _CKPT.search(p.name)))
        if gens:
            found["generator"] = gens[-1][1]
            break
    for d in (root, root / "predictor" / "model"):
        if (d / "ckpt_max_corr.pt").is_file():
            found["predictor"] = d / "ckpt_max_corr.pt"
            break
    missing = [k for k in ("generator", "predictor") if k not in found]
    if missing:
        raise CheckpointError(f"{root}: no {' and no '.join(missing)} checkpoint (expected ckpt_<E>.pt and "
                              f"ckpt_max_corr.pt, or results/{{generator,predictor}}/model/)")
    gm, pm = read_sidecar(found["generator"]), read_sidecar(found["predictor"])
    for kind, m in (("generator", gm), ("predictor", pm)):
        if m.get("space") not in (None, s.name):
            raise CheckpointError(f"{found[kind]}: a {m['space']} checkpoint, not {s.name}; pass --space {m['space']}")
    desc = gm.get("description") or f"checkpoints from {root.resolve()}"
    return Checkpoints(found["generator"], found["predictor"], desc, int(gm.get("hs", GENERATOR_HS)),
                       int(pm.get("hs", PREDICTOR_HS)), int(pm.get("nz", gm.get("nz", 56))),
                       int(gm.get("num_sample", DEFAULT_NUM_SAMPLE)))


@dataclass
class Candidate:
    """A searched architecture.

    Attributes:
        arch: the architecture (an NB201 string, an OFA subnet dict, ...).
        key: its one-line identity (``SearchSpace.arch_key``).
        score: the predictor's output, normalised ``((acc - mean) / std) / 100`` (rank by it).
        predicted_accuracy: ``score`` in percent, in the units of the meta-training database's accuracies
            (None when the predictor's checkpoint does not record that database's mean/std).
        params_m, mflops: parameters (millions) and multiply-accumulates (millions) of the network
            ``build_network`` gives, at ``input_size``; None when not counted.
        latency_ms: measured latency; None when not measured (no latency budget).
    """

    arch: Any
    key: str
    score: float
    predicted_accuracy: float | None = None
    params_m: float | None = None
    mflops: float | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchStats:
    """How the last search went."""

    decoded: int
    valid: int
    unique: int
    seconds: float
    stop_reason: str | None


class Searcher:
    """A meta-trained generator and predictor for a space, ready to search image features.

    Use ``load_searcher`` to make one.
    """

    def __init__(self, space: SearchSpace, generator: nn.Module, predictor: nn.Module, predictor_meta: dict,
                 checkpoints: Checkpoints, device: torch.device) -> None:
        from metad2a.engine.generator_runner import GeneratorRunner

        self.space, self.generator, self.predictor = space, generator, predictor
        self.predictor_meta, self.checkpoints, self.device = predictor_meta, checkpoints, device
        mc = ModelConfig(hs=checkpoints.generator_hs, nz=checkpoints.nz, nvt=space.nvt, max_n=space.max_n,
                         num_sample=checkpoints.num_sample)
        rc = RunConfig(space=space.name, model="generator", test=True, device=str(device))
        self._runner = GeneratorRunner(space, rc, mc, device, space.options({}))
        self.last: SearchStats | None = None
        self.last_budget: Any = None  # the last search's BudgetFilter (costs, Pareto front), None without a budget

    @property
    def likelihood_weight(self) -> float:
        return float(self.checkpoints.ranking.get("likelihood_weight", 0.0))

    @property
    def num_sets(self) -> int:
        return int(self.checkpoints.ranking.get("pred_num_sets", 10))

    @property
    def feature_dim(self) -> int:
        return int(self.generator.feature_dim)

    @property
    def description(self) -> str:
        return self.checkpoints.description

    def check_features(self, features: Features) -> None:
        """The features fit the checkpoints (width, rows per class).

        Raises:
            MetaD2AError: one line naming both widths and the extractor to use.
        """
        self.check_width(features.extractor, features.feature_dim)
        check_rows(features.feats, range(features.num_classes), self.checkpoints.num_sample, features.source or "images")

    def check_width(self, extractor: str, feature_dim: int) -> None:
        """Features of ``extractor`` (``feature_dim`` wide) fit the checkpoints; checked before any
        image is read when the extractor's width is known.

        Raises:
            MetaD2AError: one line naming both widths and the extractor to use.
        """
        if feature_dim != self.feature_dim:
            fits = [n for n, sp in _extractors().items() if sp.feature_dim == self.feature_dim]
            raise MetaD2AError(f"the {extractor} features are {feature_dim}-d but the checkpoints expect "
                               f"{self.feature_dim}-d; use --extractor {' or '.join(fits) or '(none fits)'} "
                               f"or checkpoints meta-trained on {extractor} features")

    def _target(self, features: Features, fast_resampling: bool = False) -> TargetDataset:
        self.check_features(features)
        return TargetDataset("images", list(features.feats), DatasetInfo(features.num_classes),
                             self.checkpoints.num_sample, fast_resampling)

    def search(self, features: Features, num_archs: int = 50, budget: Budget | None = None, *, seed: int = 0,
               constrained_decoding: bool = False, input_size: int | None = None,
               latency_cache: str | Path | None = None, fast_resampling: bool = False) -> list[Candidate]:
        """Generate ``num_archs`` unique valid architectures for the dataset and rank them.

        Args:
            features: the dataset's features (``extract_features``).
            num_archs: architectures to generate.
            budget: limits on parameters, FLOPs and latency (``metad2a.config.Budget``; docs/fidelity.md#budget):
                only feasible architectures are kept. None: no limit.
            seed: seeds the search (same seed, same candidates).
            constrained_decoding: decode only valid architectures (docs/fidelity.md#constrained-decoding).
            input_size: image side of the params/FLOPs counts (default the budget's, else the space's
                ``cost_input_size``).
            latency_cache: folder of latency caches for a latency limit (default ``results/latency``).
            fast_resampling: draw the resampled sets from few random numbers: faster with a weak
                generator, other sets for a seed (docs/fidelity.md#fast-resampling).

        Returns:
            Candidates, best ranked first, each with its params and FLOPs (the space's closed-form
            count) and, under a latency limit, its measured latency.

        Raises:
            MetaD2AError: features that do not fit the checkpoints, a generator that found nothing, or a
                budget that no decoded architecture meets (the smallest costs seen are named).
        """
        from metad2a import paths
        from metad2a.engine.budget import make_filter
        from metad2a.seeding import seed_everything

        target = self._target(features, fast_resampling)
        tc = MetaTestConfig(data_names=("images",), num_gen_arch=num_archs, constrained_decoding=constrained_decoding,
                            fast_resampling=fast_resampling)
        feasible = None
        if budget is not None:
            feasible = make_filter(self.space, budget, features.num_classes,
                                   latency_cache if latency_cache is not None else paths.latency_cache("results"))
        self.last_budget = feasible
        seed_everything(seed)
        if self.likelihood_weight and not self._runner.loop.pooled_search:
            # the checkpoints' own ranking (docs/fidelity.md#prior-ranking): generation as usual, then
            # the predictor mixed with the generator's likelihood, as main.py's --likelihood-weight
            res = self._runner.generate(self.generator, target, num_archs, tc, None, feasible)
            scores, predicted = self._rank(target, res.archs, seed) if res.archs else ([], [])
            order = sorted(range(len(res.archs)), key=lambda i: -scores[i])  # stable
            archs, scores, predicted = ([res.archs[i] for i in order], [scores[i] for i in order],
                                        [predicted[i] for i in order])
        else:
            res = self._runner.search(self.generator, self.predictor, target, num_archs, tc, feasible=feasible)
            archs, scores, predicted = res.archs, res.scores, res.scores
        self.last = SearchStats(res.decoded, res.valid, len(archs), res.seconds, res.stop_reason)
        if not archs and feasible is not None and feasible.records:
            raise feasible.infeasible("unique valid architectures decoded")
        if not archs:
            raise MetaD2AError(f"the generator found no valid architecture: {res.stop_reason}")
        if res.stop_reason:
            log.warning(f"warning: {res.stop_reason}")
        size = input_size or (feasible.input_size if feasible is not None else self.space.cost_input_size)
        if feasible is not None and size == feasible.input_size:
            costs = feasible.costs(archs)
        else:
            costs = [dict(zip(("params_m", "mflops"), self.space.arch_cost(a, features.num_classes, size)))
                     for a in archs]
        return [Candidate(a, self.space.arch_key(a), float(s), predicted_accuracy(float(p), self.predictor_meta),
                          c["params_m"], c["mflops"], c.get("latency_ms"))
                for a, s, p, c in zip(archs, scores, predicted, costs)]

    def _rank(self, target: TargetDataset, archs: Sequence[Any], seed: int) -> tuple[list[float], list[float]]:
        """(ranking scores, the predictor's values) of ``archs`` on the same resampled sets, with the
        checkpoints' ranking; with a likelihood weight the scores are standardised over ``archs``."""
        from metad2a.engine.predictor_runner import rank_scores

        g = torch.Generator().manual_seed(seed)
        ranker = self._runner.ranker()
        if not self.likelihood_weight:
            s = ranker.score(self.predictor, target, list(archs), self.num_sets, g).tolist()
            return s, s
        sets = target.sample(self.num_sets, g).to(self.device)
        s, p = rank_scores([self.predictor], sets, ranker._graphs(list(archs)), self.generator, self.likelihood_weight)
        return s.tolist(), p.tolist()

    def score(self, features: Features, archs: Sequence[Any], seed: int = 0, fast_resampling: bool = False
              ) -> list[float]:
        """The ranking score of each architecture on the same resampled sets of the dataset, on the
        canonical graphs (how the generated and random architectures are compared). With a likelihood
        weight in the checkpoints' ranking the scores are standardised over ``archs``: score every
        architecture to be compared in one call. ``fast_resampling``: the sets drawn as by
        ``search(fast_resampling=True)`` (docs/fidelity.md#fast-resampling)."""
        return self._rank(self._target(features, fast_resampling), archs, seed)[0]


def _extractors() -> dict[str, Any]:
    from metad2a.data.features import EXTRACTORS

    return EXTRACTORS


def load_searcher(checkpoints: str | Path | Checkpoints | None = None, space: str | SearchSpace = DEFAULT_SPACE,
                  device: str | torch.device = "cpu") -> Searcher:
    """A generator and a predictor, loaded strictly, ready to search.

    Args:
        checkpoints: a folder with ``ckpt_<E>.pt`` and ``ckpt_max_corr.pt`` (or the original
            ``results/{generator,predictor}/model/`` layout); None: ``default_checkpoints(space)``.
        space: ``nasbench201`` (or ``nb201``) or ``ofa_mbv3`` (or ``ofa``).
        device: where the models run.

    Raises:
        CheckpointError: missing, unreadable or mismatched checkpoints.
    """
    from metad2a.models.factory import load_trained

    s = resolve_space(space)
    ck = checkpoints if isinstance(checkpoints, Checkpoints) else (
        default_checkpoints(s) if checkpoints is None else find_checkpoints(checkpoints, s))
    device = torch.device(device)
    common = {"nvt": s.nvt, "max_n": s.max_n, "nz": ck.nz, "num_sample": ck.num_sample, "start_type": s.start_type,
              "end_type": s.end_type, "device": device}
    gen, _ = load_trained("generator", ck.generator, hs=ck.generator_hs, **common)
    pred, meta = load_trained("predictor", ck.predictor, hs=ck.predictor_hs, **common)
    if gen.feature_dim != pred.feature_dim:
        raise CheckpointError(f"the generator expects {gen.feature_dim}-d features but the predictor "
                              f"{pred.feature_dim}-d; both must be meta-trained on the same features")
    return Searcher(s, gen, pred, meta, ck, device)


# --------------------------------------------------------------------------- networks
def build_network(arch: Any, num_classes: int, space: str | SearchSpace = DEFAULT_SPACE,
                  weights: str | Path | None = None, seed: int = 0) -> nn.Module:
    """The network an architecture stands for, with a ``num_classes``-way head, in eval mode.

    NB201: ``TinyNetwork(arch, C=16, N=5)``; OFA: the subnet taken out of the supernet (``weights``:
    its ImageNet weights file; None: random initialisation) with a fresh head.
    """
    s = resolve_space(space)
    return s.build_network(s.arch_from_json(s.arch_to_json(arch)), num_classes,
                           Path(weights) if weights is not None else None, seed)


@dataclass
class TrainResult:
    """A trained network and how training went.

    Attributes:
        network: the trained network (CPU, eval mode).
        history: one record per epoch: ``train_loss``, ``train_acc``, ``eval_loss``, ``eval_acc``.
        eval_acc: top-1 accuracy (%) on the evaluation images after the last epoch.
    """

    network: nn.Module
    history: list[dict[str, float]]
    eval_acc: float


def image_datasets(images: str | Path, input_size: int, split_seed: int = 0) -> tuple[Any, Any, Any]:
    """``(train, test, source)`` of a folder: ``root/train`` and ``root/test`` when it has both, else a
    seeded 20 % per class held out for ``test``; items ``(tensor [3, s, s], label)`` normalised
    with the ImageNet mean/std (``metad2a.data.arch_data.image_transform``)."""
    from metad2a.data.arch_data import TransformedImages, image_transform

    tf = image_transform(None, input_size)
    train, test = open_images(images, "train"), open_images(images, "test")
    return TransformedImages(train, tf), TransformedImages(test, tf), train


def train(arch: Any, images: str | Path | tuple[Any, Any], num_classes: int | None = None, *,
          space: str | SearchSpace = DEFAULT_SPACE, epochs: int = 10, input_size: int | None = None,
          weights: str | Path | None = None, seed: int = 0, device: str | torch.device = "cpu",
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train the network of ``arch`` on an image folder with the space's recipe.

    Args:
        arch: the architecture.
        images: a folder (split by ``image_datasets``) or ``(train_set, eval_set)``.
        num_classes: classes (default: the folder's).
        space: the search space.
        epochs: training epochs.
        input_size: image side (default the space's ``cost_input_size``).
        weights: the space's pretrained weights (OFA: the supernet's), if any.
        seed, device: seeding and where to train.
        on_epoch: called after every epoch with the epoch's record.
    """
    s = resolve_space(space)
    size = input_size or s.cost_input_size
    if isinstance(images, tuple):
        train_set, eval_set = images
    else:
        train_set, eval_set, src = image_datasets(images, size)
        num_classes = num_classes or src.num_classes
    if num_classes is None:
        raise MetaD2AError("train: num_classes is required when datasets are given")
    history: list[dict[str, float]] = []

    def record(epoch: int, m: dict[str, float]) -> None:
        history.append({"epoch": epoch + 1, **m})
        log.info(f"epoch {epoch + 1}/{epochs}: train loss {m['train_loss']:.4f} acc {m['train_acc']:.2f} %, "
                 f"held-out acc {m['eval_acc']:.2f} %")
        if on_epoch is not None:
            on_epoch(epoch, m)

    net = s.train_network(arch, train_set, eval_set, num_classes, epochs,
                          weights=Path(weights) if weights is not None else None, seed=seed, device=device,
                          on_epoch=record)
    return TrainResult(net, history, history[-1]["eval_acc"] if history else float("nan"))


def export(model: nn.Module, out_dir: str | Path, example_input: torch.Tensor, **kwargs: Any) -> ExportResult:
    """Write ``model.pt``, ``model.ts``, ``model.onnx`` (opset 17, dynamic batch) and
    ``preprocess.json`` into ``out_dir``, verified: TorchScript's and onnxruntime's logits equal
    PyTorch's within 1e-4 on ``verify_input`` (default ``example_input``). See ``metad2a.deploy.export``
    for the keyword arguments (``preprocess`` is required: input size, mean, std, class names)."""
    return _export(model, out_dir, example_input, **kwargs)


def load_network(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of an exported ``model.pt`` (eval mode) and the file's record (``arch``, ``space``...)."""
    from metad2a.deploy import read_model_file

    rec = read_model_file(path)
    s = resolve_space(rec["space"])
    net = s.build_network(s.arch_from_json(rec["arch"]), int(rec["num_classes"]))
    net.load_state_dict(rec["state_dict"])
    return net.eval(), rec


__all__ = ["Candidate", "Checkpoints", "Features", "Searcher", "TrainResult", "build_network", "default_checkpoints",
           "export", "extract_features", "find_checkpoints", "load_network", "load_searcher", "train"]
