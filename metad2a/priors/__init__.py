"""Ready-made, committed priors: a generator and a predictor shipped inside the package.

``nb201_prior()`` is the offline default of ``make demo`` and of any search that is not given
checkpoints: meta-trained by ``MetaD2A_nas_bench_201/main.py`` on the original MetaD2A's 4,630 real
(ImageNet-32 task, NB201 cell, accuracy) triples with *synthetic* class features in the offline
extractor's width (1280-d). Dataset conditioning is therefore inactive: the prior knows which cells did
well on real tasks, not what suits your dataset (docs/data.md#nb201-prior). ``scripts/build_nb201_prior.py``
regenerates the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metad2a.errors import DataFileError, MetaD2AError
from metad2a.search_spaces.nasbench201.space import PRIOR_DIR as NB201_SPACE_PRIOR_DIR

if TYPE_CHECKING:
    from metad2a.models.generator import GeneratorModel
    from metad2a.models.predictor import PredictorModel

NB201_PRIOR_DIR = NB201_SPACE_PRIOR_DIR  # the folder is a fact of the NB201 space (SearchSpace.prior_dir)
PRIOR_FILE = "prior.json"


@dataclass(frozen=True)
class Prior:
    """A committed prior: checkpoint paths (each with its sidecar JSON) and what they were trained on."""

    generator: Path  # ckpt_<E>.pt of the generator
    predictor: Path  # ckpt_max_corr.pt of the predictor
    description: str  # one line: what it was trained on, and that dataset conditioning is inactive
    info: dict[str, Any]  # the whole prior.json

    def __iter__(self):
        """``generator, predictor, description = nb201_prior()``."""
        return iter((self.generator, self.predictor, self.description))

    @property
    def generator_epoch(self) -> int:
        return int(self.info["generator"]["sidecar"]["epoch"])

    @property
    def generator_hs(self) -> int:
        return int(self.info["generator"]["sidecar"]["hs"])

    @property
    def predictor_hs(self) -> int:
        return int(self.info["predictor"]["sidecar"]["hs"])

    @property
    def nz(self) -> int:
        return int(self.info["predictor"]["sidecar"]["nz"])

    @property
    def ranking(self) -> dict[str, Any]:
        """The ranking this prior is searched with (``MetaTestConfig`` fields); {}: the original one."""
        return dict(self.info.get("ranking", {}))

    @property
    def search_flags(self) -> list[str]:
        """The ``main.py`` flags of ``ranking`` for the predictor's search step."""
        flags = []
        if self.ranking.get("pred_num_sets", 10) != 10:
            flags += ["--pred-num-sets", str(self.ranking["pred_num_sets"])]
        if self.ranking.get("likelihood_weight"):
            flags += ["--likelihood-weight", str(self.ranking["likelihood_weight"])]
        return flags

    @property
    def ranking_text(self) -> str:
        return self.info.get("ranking_note") or ranking_note(self.ranking.get("likelihood_weight", 0.0))

    def with_likelihood_weight(self, weight: float) -> Prior:
        """The same prior searched with another ``--likelihood-weight`` (0: the original ranking)."""
        if not 0 <= weight <= 1:
            raise MetaD2AError(f"--likelihood-weight must be between 0 and 1, got {weight}")
        info = {**self.info, "ranking": {**self.ranking, "likelihood_weight": weight},
                "ranking_note": ranking_note(weight)}
        return replace(self, info=info)

    def load_models(self, device: str = "cpu") -> tuple[GeneratorModel, PredictorModel]:
        """Both models, loaded strictly, in eval mode."""
        from metad2a.models.factory import load_trained
        from metad2a.search_spaces import get_search_space

        space = get_search_space(self.info["search_space"])
        out = []
        for kind, path, hs in (("generator", self.generator, self.generator_hs),
                               ("predictor", self.predictor, self.predictor_hs)):
            model, _ = load_trained(kind, path, nvt=space.nvt, max_n=space.max_n, hs=hs, nz=self.nz,
                                    start_type=space.start_type, end_type=space.end_type, device=device)
            out.append(model)
        return out[0], out[1]


def ranking_note(likelihood_weight: float) -> str:
    """One line that says how a prior's search ranks (``prior.json`` ``ranking_note``)."""
    if not likelihood_weight:
        return "the predictor's prediction (the original ranking)"
    return (f"{1 - likelihood_weight:g} x the predictor's standardised prediction + {likelihood_weight:g} x the "
            f"generator's standardised log-likelihood (--likelihood-weight {likelihood_weight:g}, "
            "docs/fidelity.md#ranking-options)")


def load_prior(folder: Path) -> Prior:
    """The prior described by ``folder/prior.json``."""
    f = Path(folder) / PRIOR_FILE
    try:
        info = json.loads(f.read_text())
        gen, pred = (Path(folder) / info[k]["file"] for k in ("generator", "predictor"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataFileError(f"{f}: missing or unreadable prior description ({e}); reinstall the package or "
                            f"regenerate it with `python scripts/build_nb201_prior.py`") from e
    for p in (gen, pred):
        if not p.is_file():
            raise DataFileError(f"{p}: checkpoint of the prior missing; reinstall the package")
    desc = (f"{info['name']}: {info['trained_on']}; dataset conditioning {info['dataset_conditioning']}")
    return Prior(gen, pred, desc, info)


def nb201_prior() -> Prior:
    """The committed NB201 prior: unpacks to (generator checkpoint, predictor checkpoint, description);
    ``.search_flags`` are the ``main.py`` flags of the ranking it is searched with (see the module docstring)."""
    return load_prior(NB201_PRIOR_DIR)
