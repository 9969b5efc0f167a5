"""The committed offline quick start (demo/) stays loadable and searchable."""

import json

from metad2a import demo
from metad2a.checkpoint import read_sidecar
from metad2a.data.formats import read_bylabel
from metad2a.search_spaces.nasbench201 import cell as nb


def test_committed_files_describe_themselves():
    feats = read_bylabel(demo.DEMO / "data" / "imgnet32bylabel.pt")
    assert len(feats) == 10 and feats[0].shape[1] == 1280  # MNIST digits through EfficientNet-Lite0
    assert len(read_bylabel(demo.DEMO / "data" / f"{demo.TARGET}bylabel.pt")) == 10
    meta = json.loads((demo.DEMO / "data" / "imgnet32bylabel.json").read_text())
    assert "mnist5k" in json.dumps(meta)
    assert read_sidecar(demo.DEMO / "checkpoints" / f"ckpt_{demo.GEN_EPOCH}.pt")["feature_dim"] == 1280
    assert read_sidecar(demo.DEMO / "checkpoints" / "ckpt_max_corr.pt")["hs"] == demo.PRED_HS


def test_demo_search_runs_offline(tmp_path):
    result = demo.search(tmp_path, quiet=True)
    run = result["runs"][0]
    assert nb.arch_str_to_ops(run["top1_arch"]) and run["num_candidates"] == 50
    assert run["top1_predicted_acc"] is not None
    archs = (tmp_path / "results/meta_test/digits/generated_arch/run_1.txt").read_text().splitlines()[1:]
    assert run["top1_arch"] in archs


def test_demo_ranks_the_prediction_among_random_cells():
    """The demo shows the prediction as a rank among random cells scored by the same predictor."""
    best = demo.random_rank("|nor_conv_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|skip_connect~2|")
    worst = demo.random_rank("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert 0 <= worst < best <= 100
