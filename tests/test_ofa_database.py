"""The OFA/MobileNetV3 database builder (``MetaD2A_ofa/build_database.py``) on a tiny ImageNet-layout
folder with a randomly initialised supernet: a shard killed and resumed without evaluating anything
twice, a second shard, ``--collect``, ``main.py`` meta-training on the result; the generator database
ranking its candidates with a predictor; a failing task retried, recorded and left out.

Everything is local (Ray on 127.0.0.1, 2 CPUs) and tiny: 12 classes of 24-px images, 32-px inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("ofa", reason="the OFA database builder needs the once-for-all package (pip install -e .[ofa])")

from metad2a import paths
from metad2a.build import ofa_database as OB
from metad2a.build.imagenet_folder import ImagenetFolder, choose_train_files, choose_val_files
from metad2a.build.ofa_cli import main as build_main
from metad2a.build.ray_pool import RayPoolConfig
from metad2a.checkpoint import TRANSFORM_GLOBALS, load_data, save_checkpoint
from metad2a.data.formats import write_bylabel
from metad2a.data.synthetic import synthetic_features
from metad2a.models.predictor import PredictorModel
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.collected_database import collected_database

pytestmark = pytest.mark.slow  # Ray workers and a killed subprocess build

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "MetaD2A_ofa" / "build_database.py"
KILL_AFTER = Path(__file__).with_name("kill_after.py")  # dies after K persisted results
KILLED = 75  # its exit status
TINY = ["--gpu", "cpu", "--random-init", "--way-min", "2", "--way-max", "5", "--way-step", "1",
        "--val-per-class", "3", "--bn-images", "8", "--bn-batch-size", "4", "--image-size", "32", "--retries", "1", "--no-progress"]
NUM_CLASSES = 12
ONE_AT_A_TIME = ["--cpus-per-task", "2"]  # one task (one warm worker) at a time in the 2-CPU Ray instance


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "CUDA_VISIBLE_DEVICES": ""}


def write_imagenet(root: Path, num_classes: int = NUM_CLASSES, train: int = 6, val: int = 10, size: int = 24) -> Path:
    """``train/<wnid>/`` and ``val/<wnid>/`` with small PNG and JPEG images of class-dependent colour."""
    rng = np.random.default_rng(0)
    for k in range(num_classes):
        wnid = f"n{k:08d}"
        colour = np.array([(40 * k) % 256, 120, 255 - (20 * k) % 256])
        for part, n in (("train", train), ("val", val)):
            d = root / part / wnid
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = (colour[None, None] * rng.uniform(0.4, 1.0, (size, size, 1))).astype(np.uint8)
                Image.fromarray(img).save(d / f"{wnid}_{i:04d}.{'JPEG' if i % 2 else 'png'}")
    return root


@pytest.fixture(scope="module")
def imnet(tmp_path_factory) -> Path:
    return write_imagenet(tmp_path_factory.mktemp("imagenet") / "ILSVRC2012")


@pytest.fixture
def in_work_dir(tmp_path, monkeypatch):
    """Run in tmp_path (relative data/ and results/), with no GPU visible and --gpu's variable restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    torch.set_num_threads(1)
    return tmp_path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_killed_shard_resumes_then_collect_and_main_meta_trains(imnet, ray_session, in_work_dir, capsys):
    """Shard 0 runs in a subprocess that joins this module's Ray instance and dies (os._exit) after 2
    persisted tasks; this process resumes it, builds shard 1, collects both shards, and meta-trains on
    them. Each driver runs one task at a time (``--cpus-per-task 2``): on a 2-core machine the start-up
    of a worker process (torch, torchvision, ofa imports) costs more than the tasks themselves."""
    work = in_work_dir
    shard0 = ["--model_name", "predictor", "--index", "0", "--imgnet", str(imnet), "--num-tasks", "5", *TINY,
              *ONE_AT_A_TIME]
    proc = subprocess.Popen([sys.executable, str(KILL_AFTER), "2", str(BUILD), *shard0,
                             "--ray-address", ray_session.address], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=_env())
    try:
        out = proc.communicate(timeout=300)[0]
    finally:
        try:  # anything the killed build left behind in its process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert proc.returncode == KILLED, out[-3000:]
    journal = OB.build_file("data", "predictor", 0, "results")
    before = _lines(journal)
    assert len(before) == 2 and not OB.shard_file("data", "predictor", 0).exists()

    assert build_main(shard0) == 0  # resume, in this process's Ray instance
    assert "2 tasks already done, 3 to do" in capsys.readouterr().out
    records = [json.loads(ln) for ln in _lines(journal)]
    assert _lines(journal)[:2] == before and len(records) == 5  # the killed run's results are kept
    assert sorted(r["key"] for r in records) == ["0", "1", "2", "3", "4"]  # nothing evaluated twice
    assert all(r["status"] == "ok" and r["attempts"] == 1 and len(r["results"]) == 1 for r in records)
    assert build_main(["--model_name", "predictor", "--index", "1", "--imgnet", str(imnet), "--num-tasks", "4",
                       *TINY, *ONE_AT_A_TIME]) == 0
    assert "0 tasks already done, 4 to do" in capsys.readouterr().out
    assert (work / "data/predictor/txt_1.txt").read_text().endswith("save 4 database, 1 id\n")

    # the plan: seeded image choices, sorted class lists, subnets of the space
    plan = json.loads(OB.build_file("data", "predictor", 0, "plan").read_text())
    folder = ImagenetFolder.open(imnet)
    assert plan["wnids"] == folder.wnids and plan["val_files"] == choose_val_files(folder, 3, 333)
    assert plan["bn_files"] == choose_train_files(folder, 8, 333) and len(set(plan["bn_files"])) == 8
    assert any(files != [f"val/{w}/{w}_{i:04d}.{'JPEG' if i % 2 else 'png'}" for i in range(3)]
               for w, files in zip(folder.wnids, plan["val_files"]))  # a seeded sample, not the first files
    assert all(2 <= len(t["classes"]) <= 5 and t["classes"] == sorted(set(t["classes"])) for t in plan["tasks"])

    assert build_main(["--model_name", "predictor", "--collect"]) == 0
    assert "The number of database: 9" in capsys.readouterr().out
    db = load_data(collected_database("data", "predictor"), allow=TRANSFORM_GLOBALS)
    assert len(db) == 9
    plan1 = json.loads(OB.build_file("data", "predictor", 1, "plan").read_text())
    shard_tasks = plan["tasks"] + plan1["tasks"]
    for e, t in zip(db, shard_tasks):  # shard 0 then shard 1, plan order
        assert set(e) == {"loss", "top1", "top5", "net", "class", "params", "flops", "test_transform"}
        assert e["net"] == {"wid": None, **t["nets"][0]} and ofa.canonical_arch_dict(e["net"])
        assert e["class"].dtype == torch.long and e["class"].tolist() == t["classes"]
        assert np.isfinite(e["loss"]) and 0 <= e["top1"] <= e["top5"] <= 100
        assert 1.5 < e["params"] < 7 and 100 < e["flops"] < 600  # a subnet with a small head at 224x224
        assert "CenterCrop(size=(32, 32))" in repr(e["test_transform"])
    rec0 = {r["key"]: r for r in records}["0"]["results"][0]
    assert (db[0]["top1"], db[0]["flops"]) == (rec0["top1"], rec0["flops"])

    # main.py meta-trains the predictor on it (features for the 12 classes, 1 epoch)
    from metad2a.cli import main as cli_main

    write_bylabel(synthetic_features(NUM_CLASSES, 24, 512, torch.Generator().manual_seed(0)),
                  paths.bylabel("data", paths.IMAGENET32))
    assert cli_main(["--gpu", "cpu", "--model", "predictor", "--hs", "32", "--nz", "8", "--max-epoch", "1",
                     "--save-epoch", "1"], space="ofa_mbv3") == 0
    assert "The number of tasks for meta-training: 7" in capsys.readouterr().out
    assert (work / "results/predictor/model/ckpt_1.pt").is_file()


def _fail_task1(payload, context, device):
    """Job body that always fails for task 1 (injected failure)."""
    if payload["task"] == 1:
        raise RuntimeError("injected failure")
    return OB.evaluate_task(payload, context, device)


def test_generator_shard_ranks_candidates_and_records_failures(imnet, ray_session, in_work_dir):
    work = in_work_dir
    write_bylabel(synthetic_features(NUM_CLASSES, 24, 512, torch.Generator().manual_seed(1)),
                  paths.bylabel(work / "data", paths.IMAGENET32))
    torch.manual_seed(0)
    save_checkpoint(PredictorModel(nvt=ofa.NVT, max_n=ofa.MAX_N, hs=32, nz=8),
                    paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt")
    cfg = OB.OfaBuildConfig(model="generator", index=3, imgnet=imnet, data_path=work / "data",
                            save_path=work / "results", num_tasks=3, way_min=2, way_max=4, way_step=1,
                            val_per_class=2, bn_images=4, bn_batch_size=4, image_size=32, candidates=3, hs=32,
                            nz=8, random_init=True)
    one_at_a_time = {"cpus_per_task": 2.0}  # the warm worker of the test above; a second costs seconds to start
    summary = OB.build_shard(cfg, RayPoolConfig(max_retries=1, **one_at_a_time), job_fn=_fail_task1, progress=False)
    assert (summary["ok"], summary["failed"], summary["entries"]) == (2, 1, 2)
    journal = OB.build_file(cfg.data_path, "generator", 3, "results")
    records = {r["key"]: r for r in map(json.loads, _lines(journal))}
    assert records["1"]["status"] == "failed" and records["1"]["attempts"] == 2
    assert "injected failure" in records["1"]["error"]

    plan = json.loads(OB.build_file(cfg.data_path, "generator", 3, "plan").read_text())
    scores, _ = OB.score_candidates(cfg, plan["tasks"])  # planning-time ranking is reproducible
    assert scores == [t["scores"] for t in plan["tasks"]]
    shard = load_data(OB.shard_file(cfg.data_path, "generator", 3), allow=TRANSFORM_GLOBALS)
    for e, key in zip(shard, ("0", "2")):
        t = plan["tasks"][int(key)]
        assert t["chosen"] == int(np.argmax(t["scores"])) and len(t["nets"]) == 3
        assert e["net"] == {"wid": None, **t["nets"][t["chosen"]]}
        res = records[key]["results"]
        assert [r["candidate"] for r in res] == [0, 1, 2]  # every candidate measured (and BN re-calibrated)
        assert e["top1"] == res[t["chosen"]]["top1"] and e["loss"] == res[t["chosen"]]["loss"]

    # a later run with --retry-failed evaluates only the failed task; other settings are refused
    summary = OB.build_shard(replace(cfg, retry_failed=True), RayPoolConfig(max_retries=0, **one_at_a_time),
                             progress=False)
    assert (summary["ok"], summary["evaluated_this_run"], summary["entries"]) == (3, 1, 3)
    with pytest.raises(Exception, match="holds a build with other settings"):
        OB.build_shard(replace(cfg, candidates=4), progress=False)


def test_command_lines_and_user_errors(imnet, in_work_dir, capsys):
    p = __import__("metad2a.build.ofa_cli", fromlist=["build_parser"]).build_parser()
    a = p.parse_args("--gpu 0,1,2,3 --model_name predictor --index 0 --imgnet /x --hs 512 --nz 56".split())
    assert (a.gpu, a.model_name, a.index, a.imgnet, a.hs, a.batch_size, a.seed) == ("0,1,2,3", "predictor", 0, "/x",
                                                                                   512, 32, 333)
    assert p.parse_args("--model_name generator --collect".split()).collect
    assert build_main(["--model_name", "predictor", "--collect"]) == 2
    assert "no database_<index>.pt shards to collect" in capsys.readouterr().err
    assert build_main(["--model_name", "predictor", "--index", "0"]) == 2
    assert "needs --index N and --imgnet DIR" in capsys.readouterr().err
    assert build_main(["--model_name", "predictor", "--index", "0", "--imgnet", str(imnet), "--random-init",
                       "--way-min", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--way-min 20 exceeds the 12 classes" in err
    assert build_main(["--model_name", "train_arch", "--index", "0", "--imgnet", str(imnet)]) == 2
    assert build_main(["--model_name", "generator", "--index", "0", "--imgnet", str(imnet), "--random-init"]) == 2
    assert "ckpt_max_corr.pt: file not found" in capsys.readouterr().err
    assert build_main(["--model_name", "predictor", "--index", "0", "--imgnet", str(in_work_dir),
                       "--random-init"]) == 2
    assert "no train/ folder" in capsys.readouterr().err


def test_create_database_sh_loops_over_the_indices(tmp_path):
    stub = tmp_path / "python"
    stub.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls.txt'}\n")
    stub.chmod(0o755)
    script = REPO / "MetaD2A_ofa" / "create_database.sh"
    env = {**os.environ, "PYTHON": str(stub), "IMGNET_PATH": "/data/imagenet", "BUILD_DATABASE_ARGS": "--num-tasks 7"}
    p = subprocess.run(["bash", str(script), "0,1", "3", "5", "generator"], env=env, capture_output=True, text=True,
                       cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stderr
    calls = _lines(tmp_path / "calls.txt")
    assert [c.split()[0].endswith("MetaD2A_ofa/build_database.py") for c in calls] == [True] * 3
    assert [c.split(" ", 1)[1] for c in calls] == [
        f"--gpu 0,1 --model_name generator --index {i} --imgnet /data/imagenet --hs 512 --nz 56 --num-tasks 7"
        for i in (3, 4, 5)]
    p = subprocess.run(["bash", str(script), "0", "0", "1", "predictor"], env={**env, "IMGNET_PATH": ""},
                       capture_output=True, text=True, cwd=tmp_path, check=False)
    assert p.returncode == 2 and "set IMGNET_PATH" in p.stderr
