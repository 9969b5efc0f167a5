"""The README command lines in a subprocess, on a small data directory in the original formats."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metad2a.data.archive import read_archive
from metad2a.data.formats import write_bylabel
from metad2a.data.synthetic import synthetic_features
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201

pytestmark = pytest.mark.slow  # main.py in subprocesses, meta-training then search

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "MetaD2A_nas_bench_201" / "main.py"
GOLDEN = Path(__file__).parent / "golden"


def run_main(cwd, *args, ok=True):
    # no visible GPU, also on a machine that has one: `--gpu 0` must then fall back with a warning
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, str(MAIN), *args], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=600)
    if ok:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def golden_keys(name):
    return [ln.split()[0] for ln in (GOLDEN / f"{name}.txt").read_text().splitlines() if not ln.startswith("#")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("nb201")
    write_synthetic_nb201(d / "data", num_tasks=40, num_predictor_entries=120, targets={"cifar10": 10, "mnist": 10})
    gen = torch.Generator().manual_seed(1)
    write_bylabel(synthetic_features(7, 25, 512, gen), d / "data" / "minebylabel.pt")  # "your own dataset"
    return d


@pytest.fixture(scope="module")
def trained(workdir):
    common = ["--gpu", "0", "--max-epoch", "2", "--save-epoch", "1"]
    g = run_main(workdir, "--model", "generator", "--hs", "56", "--nz", "56", *common)
    p = run_main(workdir, "--model", "predictor", "--hs", "512", "--nz", "56", *common)
    return workdir, g, p


def test_meta_training_writes_original_outputs(trained):
    d, g, p = trained
    res = d / "results"
    for model, n_keys in (("generator", 99), ("predictor", 82)):
        for ckpt in ["ckpt_1.pt", "ckpt_2.pt"] + (["ckpt_max_corr.pt"] if model == "predictor" else []):
            sd = torch.load(res / model / "model" / ckpt, weights_only=True)
            assert list(sd) == golden_keys(f"nasbench201_{model}"), (model, ckpt)
            assert len(sd) == n_keys
        log = (res / model / f"meta_train_{model}.log").read_text()
        assert "model_name: " + model in log and "meta-training phase done" in log
        assert "epoch   2" in log
        rows = [json.loads(ln) for ln in (res / model / "results.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]
    assert "train: loss " in g.stdout and ", recon_loss " in g.stdout and ", kld " in g.stdout
    assert "valid: loss " in p.stdout and " corr " in p.stdout and "max correlation" in p.stdout
    assert "warning: --gpu 0 requested but CUDA is not available" in g.stdout + g.stderr


def test_search_cifar10_generator_then_predictor(trained):
    d = trained[0]
    run_main(d, "--gpu", "0", "--model", "generator", "--hs", "56", "--nz", "56", "--test", "--load-epoch", "2",
             "--num-gen-arch", "8", "--data-name", "cifar10")
    out = d / "results" / "meta_test" / "cifar10"
    for k in range(1, 11):
        secs, archs = read_archive(out / "generated_arch" / f"run_{k}.txt")
        assert len(archs) == len(set(archs)) == 8 and all(nb.arch_str_to_ops(a) for a in archs)
    assert (out / "time.txt").read_text().startswith("generator elasped time ")
    gen = json.loads((out / "generation.json").read_text())  # docs/data.md#generation-json
    assert [r["run"] for r in gen["runs"]] == list(range(1, 11)) and gen["constrained_decoding"] is False
    assert all(r["unique"] == 8 <= r["valid"] <= r["decoded"] and r["stop_reason"] is None for r in gen["runs"])
    p = run_main(d, "--gpu", "cpu", "--model", "predictor", "--hs", "512", "--nz", "56", "--test",
                 "--num-gen-arch", "8", "--data-name", "cifar10")
    arch_lines = (out / "best_arch" / "architecture.txt").read_text().splitlines()
    assert len(arch_lines) == 10
    acc = (out / "best_arch" / "accuracy.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in acc[:10]] == ["run"] * 10 and acc[10].startswith("Avg ")
    result = json.loads((out / "best_arch" / "result.json").read_text())
    assert [r["top1_arch"] for r in result["runs"]] == arch_lines
    for r in result["runs"]:
        best = max(x["acc"] for x in r["top_n"])
        assert r["best_of_top30_acc"] == best and r["top1_acc"] == r["top_n"][0]["acc"] <= best
    assert "top-1 architecture accuracy (what you get)" in p.stdout
    assert (out / "time.txt").read_text().splitlines()[1].startswith("predictor average elasped time ")


def test_own_dataset_with_num_class(trained):
    d = trained[0]
    run_main(d, "--gpu", "cpu", "--model", "generator", "--test", "--load-epoch", "2", "--num-gen-arch", "4",
             "--data-name", "mine", "--num-class", "5")
    run_main(d, "--gpu", "cpu", "--model", "predictor", "--test", "--num-gen-arch", "4", "--data-name", "mine",
             "--train-arch", "false")
    result = json.loads((d / "results/meta_test/mine/best_arch/result.json").read_text())
    assert result["num_classes"] == 7 and len(result["runs"]) == 1  # predictor: all classes of the file
    cfg = json.loads((d / "results/generator/config_test.json").read_text())
    assert cfg["MetaTestConfig"]["num_class"] == 5
    bad = run_main(d, "--gpu", "cpu", "--model", "generator", "--test", "--load-epoch", "2",
                   "--data-name", "mine", "--num-class", "9", ok=False)
    assert bad.returncode == 2 and "has 7 classes, but 9 are requested" in bad.stderr


def test_resume_loses_nothing(workdir, tmp_path):
    """2 epochs + resume to 3 == 3 epochs straight, bit for bit."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in ("a", "b"):
        os.symlink(workdir / "data", tmp_path / sub / "data")
    common = ["--gpu", "cpu", "--model", "generator", "--save-epoch", "1"]
    run_main(tmp_path / "a", *common, "--max-epoch", "3")
    run_main(tmp_path / "b", *common, "--max-epoch", "2")
    r = run_main(tmp_path / "b", *common, "--max-epoch", "3", "--resume")
    assert "resume from epoch 2" in r.stdout and "epoch   1" not in r.stdout
    a = torch.load(tmp_path / "a/results/generator/model/ckpt_3.pt", weights_only=True)
    b = torch.load(tmp_path / "b/results/generator/model/ckpt_3.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_predictor_reports_architectures_missing_from_table(trained, tmp_path):
    d = trained[0]
    table = tmp_path / "t.csv"
    some = list(nb.all_arch_strs())[:10]
    table.write_text("index,arch_str,cifar10_test_200ep\n" + "".join(f"{i},{a},90.0\n" for i, a in enumerate(some)))
    p = run_main(d, "--gpu", "cpu", "--model", "predictor", "--test", "--num-gen-arch", "8", "--data-name", "cifar10",
                 "--nb201-table", str(table))
    result = json.loads((d / "results/meta_test/cifar10/best_arch/result.json").read_text())
    assert result["table"] == str(table) and result["missing_from_table"]
    assert "not in the accuracy table" in p.stdout + p.stderr
