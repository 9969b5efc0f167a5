"""The MobileNetV3/OFA README command lines in a subprocess, on a tiny data directory in the
original formats: predictor and generator meta-training (1 epoch), then the one-step search."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metad2a.cli import main
from metad2a.data.archive import read_archive
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.collected_database import train_statistics
from metad2a.search_spaces.ofa_mbv3.synthetic import write_synthetic_ofa

pytestmark = pytest.mark.slow  # main.py in subprocesses, meta-training then search

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "MetaD2A_ofa" / "main.py"
GOLDEN = Path(__file__).parent / "golden"
TRAIN = ["--max-epoch", "1", "--save-epoch", "1"]
# README command lines (docs/fidelity.md#ofa-command-lines), run from inside MetaD2A_ofa/
README_PREDICTOR = "--gpu 0 --model predictor --hs 512 --nz 56"
README_GENERATOR = "--gpu 0 --model generator --hs 56 --nz 56"
# with --num-gen-arch 200 -> 2, and 3 of the 10 classes: every decoded graph pools 100 resampled
# sets (100 * C * 20 feature rows), for 10 CIFAR runs, on a CPU
README_SEARCH = ("--gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 120 --num-gen-arch 2 "
                 "--data-name cifar10 --num-class 3")
PER_SET_SEARCH = "--gpu cpu --model generator --test --load-epoch 120 --num-gen-arch 4 --data-name mine --ofa-per-set"




def run_main(cwd, *args, ok=True):
    # one thread: two OpenMP threads on a busy 2-core machine make the small GRU steps crawl
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(MAIN), *args], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=600, check=False)
    if ok:
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def golden(name):
    rows = [ln.split() for ln in (GOLDEN / f"{name}.txt").read_text().splitlines() if not ln.startswith("#")]
    return [(k, [int(x) for x in shape.split(",")]) for k, shape in rows]


def entry_key(acc, net):
    return round(float(acc), 6), ofa.arch_dict_to_str(net)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ofa")
    write_synthetic_ofa(d / "data", num_source_classes=12, ways=(2, 3, 5), num_predictor_entries=30,
                        num_generator_entries=14, targets={"cifar10": 10, "mine": 3})  # mine: your own data
    p = run_main(d, *README_PREDICTOR.split(), *TRAIN)
    g = run_main(d, *README_GENERATOR.split(), *TRAIN)
    return d, p, g


def test_split_files_follow_the_original_rule(trained):
    d = trained[0]
    for model, n in (("predictor", 30), ("generator", 14)):
        proc = d / "data" / model / "processed"
        db = torch.load(proc / "collected_database.pt", weights_only=False)
        splits = {s: torch.load(proc / f"collected_database_{s}.pt", weights_only=False)
                  for s in ("train", "valid", "test")}
        k = int(n * 0.15)
        assert [len(splits[s]["acc"]) for s in ("test", "valid", "train")] == [k, k, n - 2 * k]
        for s in splits.values():
            assert set(s) == {"acc", "class", "net", "flops", "mean", "std"}
        # a partition of the database: every entry lands in exactly one split
        parts = sorted(entry_key(a, n_) for s in splits.values() for a, n_ in zip(s["acc"], s["net"]))
        assert parts == sorted(entry_key(e["top1"], e["net"]) for e in db)
        mean, std = train_statistics(splits["train"]["acc"])
        assert all((s["mean"], s["std"]) == (mean, std) for s in splits.values())
        assert all(isinstance(c, torch.Tensor) and c.dtype == torch.long for c in splits["train"]["class"])


def test_meta_training_checkpoints_and_logs(trained):
    d, p, g = trained
    res = d / "results"
    for model, ckpts in (("predictor", ["ckpt_1.pt", "ckpt_max_corr.pt"]), ("generator", ["ckpt_1.pt"])):
        expected = golden(f"ofa_mbv3_{model}")
        for ckpt in ckpts:
            sd = torch.load(res / model / "model" / ckpt, weights_only=True)
            assert [(k, list(v.shape)) for k, v in sd.items()] == expected, (model, ckpt)
        log = (res / model / f"meta_train_{model}.log").read_text()
        assert "graph_data_name: ofa_mbv3" in log and "nvt: 27" in log and "meta-training phase done" in log
        rows = [json.loads(ln) for ln in (res / model / "results.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1]
    assert "==> The number of tasks for meta-training: 22" in p.stdout and "max correlation" in p.stdout
    assert "==> The number of tasks for meta-training: 10" in g.stdout and ", recon_loss " in g.stdout
    sidecar = json.loads((res / "generator/model/ckpt_1.json").read_text())
    assert sidecar["step_per_sample"] is True and sidecar["nvt"] == 29 and sidecar["max_n"] == 22


def biased_generator(src, dst):
    """A generator whose decoder only emits depth-2 layer types and every edge: each decoded graph
    is valid and ~uniform over 9^20 subnets (a 1-epoch generator almost never decodes a valid one)."""
    sd = torch.load(src, weights_only=True)
    sd["add_vertex.2.weight"].zero_()
    bias = torch.full((ofa.NVT,), -30.0)
    bias[2:11] = 10.0  # types 2..10: depth 2, any kernel / expand ratio
    sd["add_vertex.2.bias"].copy_(bias)
    sd["add_edge.2.weight"].zero_()
    sd["add_edge.2.bias"].fill_(10.0)
    torch.save(sd, dst)


def test_search_readme_command(trained):
    d = trained[0]
    model_dir = d / "results" / "generator" / "model"
    biased_generator(model_dir / "ckpt_1.pt", model_dir / "ckpt_120.pt")
    p = run_main(d, *README_SEARCH.split())
    assert "==> load model from results/predictor/model/ckpt_max_corr.pt" in p.stdout
    out = d / "results" / "meta_test" / "cifar10" / "2"
    result = json.loads((out / "result.json").read_text())
    assert result["mode"].startswith("original") and len(result["runs"]) == 10
    for k in range(1, 11):
        path = out / "generated_arch" / f"run_{k}.txt"
        assert path.read_text().startswith("elapsed time: ")
        _, lines = read_archive(path, first_token=False)
        archs = [ofa.arch_str_to_dict(ln) for ln in lines]
        assert len(archs) == 2 and lines[0] != lines[1] and all(a["d"] == [2] * 5 for a in archs)
        assert lines == [ofa.arch_dict_to_str(a) for a in archs]  # "{'ks': [...], 'e': [...], 'd': [...]}"
        run = result["runs"][k - 1]
        assert run["scores"] == sorted(run["scores"], reverse=True) and run["top1_arch"] == lines[0]
        assert run["decoded"] == 2  # one graph per pooled batch of 100 sets
        assert run["valid"] == run["unique"] == 2 and run["stop_reason"] is None
    assert result["top1_arch"] == result["runs"][0]["top1_arch"]
    assert result["runs"][0]["top1_predicted_acc"] is not None  # our predictor has a sidecar with mean/std
    time_txt = (out / "time.txt").read_text()
    assert time_txt.startswith("generator elasped time ") and time_txt.strip().endswith("s")


def test_search_per_set_own_dataset_in_process(trained, monkeypatch):
    """--ofa-per-set: one graph per resampled set (100 per batch), ranked on canonical graphs;
    an own dataset (data/minebylabel.pt, not in the catalog) gets one run over all its classes."""
    d = trained[0]
    model_dir = d / "results" / "generator" / "model"
    if not (model_dir / "ckpt_120.pt").is_file():
        biased_generator(model_dir / "ckpt_1.pt", model_dir / "ckpt_120.pt")
    monkeypatch.chdir(d)
    assert main(PER_SET_SEARCH.split(), space="ofa_mbv3") == 0
    out = d / "results" / "meta_test" / "mine" / "4"
    result = json.loads((out / "result.json").read_text())
    assert result["mode"].startswith("per-set") and result["num_classes"] == 3 and len(result["runs"]) == 1
    run = result["runs"][0]
    assert run["decoded"] == 100 and run["num_archs"] == 4 and run["scores"] == sorted(run["scores"], reverse=True)
    _, lines = read_archive(out / "generated_arch" / "run_1.txt", first_token=False)
    assert len(set(lines)) == 4 and lines[0] == run["top1_arch"]
    cfg = json.loads((d / "results" / "generator" / "config_test.json").read_text())
    assert cfg["OfaOptions"]["ofa_per_set"] is True and cfg["LoopStyle"]["pooled_search"] is False


def test_search_with_an_untrained_generator_ends_with_one_line(trained, monkeypatch, capsys):
    """A 1-epoch generator decodes no valid subnet: the pooled loop stops after 300 pooled sets of 100
    resampled sets (not its cap of 10,000) with one line that says why and what to do
    (docs/fidelity.md#early-stop)."""
    import shutil

    d = trained[0]
    model_dir = d / "results" / "generator" / "model"
    shutil.copy(model_dir / "ckpt_1.pt", model_dir / "ckpt_1001.pt")
    monkeypatch.chdir(d)
    rc = main("--gpu cpu --model generator --test --load-epoch 1001 --num-gen-arch 2 --data-name mine".split(),
              space="ofa_mbv3")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: mine: stopped early: 0 valid and 0 unique of 300 decoded graphs"), err
    assert "the generator looks under-trained" in err[0] and "--constrained-decoding" in err[0]


@pytest.mark.parametrize("fast", [False, True])
def test_constrained_decoding_with_a_one_epoch_generator(trained, monkeypatch, fast):
    d = trained[0]
    monkeypatch.chdir(d)
    assert main(("--gpu cpu --model generator --test --load-epoch 1 --num-gen-arch 5 --data-name mine "
                 "--constrained-decoding" + (" --fast-resampling" if fast else "")).split(), space="ofa_mbv3") == 0
    out = d / "results" / "meta_test" / "mine" / "5"
    result = json.loads((out / "result.json").read_text())
    assert result["constrained_decoding"] is True and result["fast_resampling"] is fast
    run = result["runs"][0]
    assert run["unique"] == 5 and run["valid"] == run["decoded"] and run["stop_reason"] is None
    gen = json.loads((out / "generation.json").read_text())
    assert gen["constrained_decoding"] is True and gen["runs"][0]["unique"] == 5
    _, lines = read_archive(out / "generated_arch" / "run_1.txt", first_token=False)
    assert len(set(lines)) == 5 and all(ofa.arch_str_to_dict(ln) for ln in lines)
    cfg = json.loads((d / "results" / "generator" / "config_test.json").read_text())
    assert cfg["MetaTestConfig"]["constrained_decoding"] is True
