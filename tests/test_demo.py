"""The offline quick start: the committed NB201 prior and the demo's search target load and search."""

import json

import pytest

from metad2a import demo
from metad2a.data.formats import read_bylabel
from metad2a.priors import nb201_prior
from metad2a.search_spaces.nasbench201 import cell as nb


def test_committed_target_describes_itself():
    feats = read_bylabel(demo.DEMO / "data" / f"{demo.TARGET}bylabel.pt")
    assert len(feats) == 10 and feats[0].shape == (24, 1280)  # digits through EfficientNet-Lite0
    meta = json.loads((demo.DEMO / "data" / f"{demo.TARGET}bylabel.json").read_text())
    assert meta["extractor"] == "efficientnet_lite0" and "load_digits" in meta["source"]
    assert sorted(p.name for p in (demo.DEMO / "data").iterdir()) == ["digitsbylabel.json", "digitsbylabel.pt"]


def test_demo_search_runs_offline_with_the_prior(tmp_path, capsys):
    prior = nb201_prior()
    result = demo.search(tmp_path, quiet=True, num_gen_arch=20)
    run = result["runs"][0]
    assert nb.arch_str_to_ops(run["top1_arch"]) and run["num_candidates"] == 20
    assert run["top1_predicted_acc"] is not None and 40 < run["top1_predicted_acc"] < 90
    assert "inactive" in result["dataset_conditioning"] and "4,630 real" in result["predictor_trained_on"]
    assert result["ranking"]["likelihood_weight"] == prior.ranking.get("likelihood_weight", 0.0)
    archs = (tmp_path / "results/meta_test/digits/generated_arch/run_1.txt").read_text().splitlines()[1:]
    assert run["top1_arch"] in archs
    assert "dataset conditioning: inactive" in capsys.readouterr().out  # every output says what it learnt from
    below, compared = demo.random_rank(run["top1_arch"], prior, num_random=100)
    assert 0 <= below <= compared <= 100 and compared >= 99


def test_demo_searches_your_own_features_with_the_prior(tmp_path):
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    for ext in (".pt", ".json"):  # any <name>bylabel.pt with EfficientNet-Lite0 features
        shutil.copyfile(demo.DEMO / "data" / f"{demo.TARGET}bylabel{ext}", data / f"minebylabel{ext}")
    result = demo.search(tmp_path / "run", quiet=True, num_gen_arch=10, data_path=data, data_name="mine")
    assert result["dataset"] == "mine" and result["runs"][0]["num_candidates"] == 10
    below, compared = demo.random_rank(result["runs"][0]["top1_arch"], num_random=20, data_path=data, data_name="mine")
    assert 0 <= below <= compared
    with pytest.raises(SystemExit) as e:  # main.py has printed its one-line error
        demo.main([str(tmp_path / "run2"), "--data-path", str(data), "--data-name", "absent"])
    assert e.value.code == 2


@pytest.mark.slow
def test_demo_writes_the_digits_report(tmp_path):
    """make demo's last step: `metad2a search digits` with the prior, a report with its plots."""
    summary = demo.report(tmp_path / "report")
    for f in ("report.md", "architecture.png", "scores.png", "candidates.csv", "export/model.onnx"):
        assert (tmp_path / "report" / f).is_file(), f
    assert summary["num_classes"] == 10 and "dataset conditioning inactive" in summary["checkpoints"]["description"]
    assert summary["export"]["onnx_max_abs_diff"] <= 1e-4 and summary["export"]["batchnorm_calibrated"] > 0
