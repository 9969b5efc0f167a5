"""The committed NB201 prior (docs/data.md#nb201-prior): loads strictly, says what it was trained on,
is small, ships as package data, and its regeneration script's pieces work (on ../shared when present)."""

import json
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest
import torch

from metad2a.checkpoint import read_sidecar, save_checkpoint
from metad2a.data.formats import MetaTrainFile, read_bylabel, read_meta_train, write_meta_train
from metad2a.errors import DataFileError
from metad2a.models.factory import build_model
from metad2a.priors import NB201_PRIOR_DIR, load_prior, nb201_prior
from metad2a.search_spaces.nasbench201 import cell as nb
from tests.conftest import REPO, shared_file

MB = 1024 * 1024


def _script():
    from scripts import build_nb201_prior

    return build_nb201_prior


def test_prior_loads_strictly_and_says_what_it_learnt_from():
    prior = nb201_prior()
    gen_path, pred_path, description = prior
    assert (gen_path, pred_path, description) == (prior.generator, prior.predictor, prior.description)
    assert prior.search_flags == ["--likelihood-weight", "0.5"]  # docs/fidelity.md#prior-ranking
    gen, pred = prior.load_models()  # load_trained is strict: every key and shape must fit
    assert gen.feature_dim == pred.feature_dim == 1280  # the offline EfficientNet-Lite0's width
    assert (gen.hs, pred.hs) == (prior.generator_hs, prior.predictor_hs)
    assert "inactive" in prior.description and "4,630 real" in prior.description
    for path in (prior.generator, prior.predictor):
        side = read_sidecar(path)
        assert side["dataset_conditioning"].startswith("inactive") and "synthetic class features" in side["trained_on"]
        assert path.stat().st_size <= 3 * MB
    assert "20-class ImageNet-32 task" in read_sidecar(prior.predictor)["predicted_value"]
    info = prior.info
    assert info["data"]["predictor_entries"] == 4630 and info["data"]["generator_entries"] == 3031
    assert info["recipe"]["feature_dim"] == 1280 and info["recipe"]["pred_hs"] == prior.predictor_hs


def test_prior_files_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["metad2a"]
    files = [p.relative_to(REPO / "metad2a") for p in NB201_PRIOR_DIR.rglob("*") if p.is_file()]
    assert files and all(any(PurePosixPath(f.as_posix()).match(pat) for pat in patterns) for f in files)
    listed = {nb201_prior().generator, nb201_prior().predictor}
    assert {p for p in NB201_PRIOR_DIR.rglob("*.pt")} == listed  # nothing stale beside the prior's files


def test_missing_prior_is_a_one_line_error(tmp_path):
    with pytest.raises(DataFileError, match="prior.json: missing or unreadable"):
        load_prior(tmp_path)


def _fake_shared(root: Path) -> Path:
    tasks = [[1 + (7 * t + c) % 30 for c in range(4)] for t in range(12)]
    torch.save(tasks, root / "meta_train_task_lst.pt")
    strs = sorted(nb.all_arch_strs())[:40]
    entries = [(t % 12, strs[(5 * t) % 40], 50.0 + (t * 37) % 23) for t in range(30)]
    mt = MetaTrainFile([e[2] for e in entries], [e[0] for e in entries],
                       [nb.arch_str_to_igraph(e[1]) for e in entries], list(range(30))[::-1])
    write_meta_train(mt, root / "meta_train_tasks_predictor.pt", root / "meta_train_tasks_predictor_idx.pt")
    return root


def test_prepare_data_writes_the_meta_training_directory(tmp_path):
    b = _script()
    recipe = replace(b.RECIPE, num_classes=30, rows_per_class=20, feature_dim=16)
    shared = _fake_shared(tmp_path)
    info = b.prepare_data(shared, tmp_path / "data", recipe)
    assert (info["predictor_entries"], info["generator_entries"]) == (30, 12)
    pred = read_meta_train(tmp_path / "data/meta_train_tasks_predictor.pt",
                           tmp_path / "data/meta_train_tasks_predictor_idx.pt")
    gen = read_meta_train(tmp_path / "data/meta_train_tasks_generator.pt",
                          tmp_path / "data/meta_train_tasks_generator_idx.pt")
    assert pred.perm == list(range(30))[::-1]  # the original split is kept
    for t, a in zip(gen.task, gen.acc):  # each task's best cell
        assert a == max(x for tt, x in zip(pred.task, pred.acc) if tt == t)
    feats = read_bylabel(tmp_path / "data/imgnet32bylabel.pt")
    assert len(feats) == 30 and feats[0].shape == (20, 16)
    assert json.loads((tmp_path / "data/imgnet32bylabel.json").read_text())["synthetic"] is True
    assert b.prepare_data(shared, tmp_path / "data", recipe) == info  # done once


def test_prepare_data_on_the_real_files(tmp_path):
    shared = shared_file("metad2a/meta_train_tasks_predictor.pt").parent
    b = _script()
    info = b.prepare_data(shared, tmp_path / "data", replace(b.RECIPE, rows_per_class=20, feature_dim=4))
    assert (info["tasks"], info["predictor_entries"], info["generator_entries"]) == (5000, 4630, 3031)
    assert info["shared"] == nb201_prior().info["data"]["shared"]  # the committed prior used these very files


def test_install_writes_exactly_the_prior_files(tmp_path):
    b = _script()
    recipe = replace(b.RECIPE, gen_epochs=2, pred_hs=8, gen_hs=8, nz=8, likelihood_weight=0.5)
    work = tmp_path / "work"
    for kind, name, hs in (("generator", "ckpt_2.pt", 8), ("predictor", "ckpt_max_corr.pt", 8)):
        m = build_model(kind, nvt=7, max_n=8, hs=hs, nz=8, feature_dim=16)
        save_checkpoint(m, work / "results" / kind / "model" / name,
                        {"model": kind, "hs": hs, "nz": 8, "epoch": 2, "feature_dim": 16})
        rows = [{"epoch": e, "train_seconds": 1.0, "valid_seconds": 0.5} for e in (1, 2)]
        (work / "results" / kind / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dest = tmp_path / "prior"
    (dest / "stale").mkdir(parents=True)
    prior_json = b.install(work, dest, recipe, {"predictor_entries": 30})
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["generator/ckpt_2.json", "generator/ckpt_2.pt", "predictor/ckpt_max_corr.json",
                     "predictor/ckpt_max_corr.pt", "prior.json"]
    prior = load_prior(dest)
    assert prior.search_flags == ["--likelihood-weight", "0.5"] and prior.generator_epoch == 2
    assert read_sidecar(prior.predictor)["dataset_conditioning"].startswith("inactive")
    assert prior_json["generator"]["meta_train_wall_seconds"] == 3.0
    assert "--rank-loss" not in prior_json["commands"]["predictor"]
    gen, pred = prior.load_models()
    assert gen.hs == pred.hs == 8


def test_original_ranking_is_one_flag_away(capsys):
    from metad2a import demo
    from metad2a.priors import ranking_note

    prior = nb201_prior()
    original = prior.with_likelihood_weight(0)  # docs/fidelity.md#prior-ranking
    assert original.search_flags == [] and original.ranking_text == ranking_note(0)
    assert "original ranking" in ranking_note(0)
    assert prior.ranking_text == ranking_note(0.5) and prior.search_flags == ["--likelihood-weight", "0.5"]
    assert (original.generator, original.predictor) == (prior.generator, prior.predictor)
    assert demo.main(["unused", "--likelihood-weight", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --likelihood-weight must be between 0 and 1, got 2.0"
