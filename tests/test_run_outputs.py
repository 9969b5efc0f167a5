"""Issue 10, outputs: nothing is silently lost or mixed. A finished run is not overwritten without
``--overwrite``, one run directory has one training at a time, a resumed run matches an uninterrupted
one, a diverging run stops and keeps its last good epoch, and a full disk, a read-only folder or a
file in the way leave the earlier results intact (one-line error, exit status 2).

The full disk is simulated without privileges: ``metad2a.files`` gets an ``os`` whose writes to
chosen files fail with ENOSPC (in process), and a subprocess runs under ``RLIMIT_FSIZE`` so that the
kernel itself refuses the writes (EFBIG).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from metad2a import files, paths
from metad2a.checkpoint import load_checkpoint, read_training_state
from metad2a.models.factory import build_model
from tests.conftest import TINY_MAIN, one_line_error

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "MetaD2A_nas_bench_201" / "main.py"


@pytest.fixture
def work(tiny_nb201) -> Path:
    return tiny_nb201


def ok(result: tuple[int, str, str]) -> str:
    rc, out, err = result
    assert rc == 0, err
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def epochs(work: Path, model: str = "predictor", save: str = "results") -> list[int]:
    lines = (work / save / model / "results.jsonl").read_text().splitlines()
    return [json.loads(ln)["epoch"] for ln in lines]


def valid_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("valid: ")]


class FailingDisk:
    """Make ``metad2a.files``' writes to files whose name contains ``pattern`` fail with ``code``
    (ENOSPC: a full disk), through the ``os`` functions it writes with (``fdopen``, ``write``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pattern: str, code: int = errno.ENOSPC) -> None:
        real = os

        def hit(fd: int) -> bool:
            return pattern in Path(real.readlink(f"/proc/self/fd/{fd}")).name

        def fail() -> OSError:
            return OSError(code, real.strerror(code))

        class File:
            def __init__(self, f, bad: bool) -> None:
                self._f, self._bad = f, bad

            def write(self, data):
                if self._bad:
                    raise fail()
                return self._f.write(data)

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                self._f.__enter__()
                return self

            def __exit__(self, *exc):
                return self._f.__exit__(*exc)

        def fdopen(fd, *args, **kwargs):
            return File(real.fdopen(fd, *args, **kwargs), hit(fd))

        def write(fd, data):
            if hit(fd):
                raise fail()
            return real.write(fd, data)

        fake = types.SimpleNamespace(**{n: getattr(real, n) for n in dir(real) if not n.startswith("__")})
        fake.fdopen, fake.write = fdopen, write
        monkeypatch.setattr(files, "os", fake)


# --------------------------------------------------------------------------- 5. a finished run
def test_training_into_a_used_run_dir_needs_resume_or_overwrite(work, nb201_main):
    ok(nb201_main("--model", "predictor", "--max-epoch", "3"))
    before = snapshot(work / "results")
    err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "2"))
    assert "results/predictor already holds a meta-training run (epochs 1-3 in results.jsonl" in err
    assert "--resume" in err and "--overwrite" in err
    assert snapshot(work / "results") == before  # ckpt_max_corr.pt and results.jsonl untouched

    out = ok(nb201_main("--model", "predictor", "--max-epoch", "1", "--overwrite"))
    assert "--overwrite: deleted" in out and epochs(work) == [1]
    model_files = sorted(p.name for p in paths.model_dir(work / "results", "predictor").iterdir())
    assert model_files == ["ckpt_1.json", "ckpt_1.pt", "ckpt_max_corr.json", "ckpt_max_corr.pt", "resume_state.pt"]
    log = (work / "results/predictor/meta_train_predictor.log").read_text()
    assert "epoch   3" not in log and log.count("max_epoch: ") == 1

    assert "give one of them" in one_line_error(nb201_main("--model", "predictor", "--resume", "--overwrite"))
    (paths.model_dir(work / "results", "predictor") / "resume_state.pt").unlink()
    assert "no resume_state.pt to continue it from" in one_line_error(nb201_main("--model", "predictor", "--resume"))


def test_one_training_per_run_dir(work, nb201_main):
    ok(nb201_main("--model", "generator", "--max-epoch", "1"))
    with open(work / "results/generator/.lock", "a") as f:  # another training holds the lock
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        err = one_line_error(nb201_main("--model", "generator", "--max-epoch", "2", "--resume"))
        assert "results/generator is in use by another meta-training" in err
    assert epochs(work, "generator") == [1]
    ok(nb201_main("--model", "generator", "--max-epoch", "2", "--resume"))  # released: it runs
    assert epochs(work, "generator") == [1, 2]


# --------------------------------------------------------------------------- 6. resume
def test_resume_restores_the_running_best_and_trims_the_results(work, nb201_main):
    full = ok(nb201_main("--model", "predictor", "--max-epoch", "4", "--save-path", "a"))
    ok(nb201_main("--model", "predictor", "--max-epoch", "2", "--save-path", "b"))
    jsonl = work / "b/predictor/results.jsonl"
    with open(jsonl, "a") as f:  # what a kill between the append and the state save leaves
        f.write(jsonl.read_text().splitlines()[-1].replace('"epoch": 2', '"epoch": 3') + "\n")
    stale = work / "b/predictor/model/.resume_state.pt.x1y2z3.tmp"
    stale.write_bytes(b"half a state")
    resumed = ok(nb201_main("--model", "predictor", "--max-epoch", "4", "--save-path", "b", "--resume"))
    assert epochs(work, save="b") == [1, 2, 3, 4] and not stale.exists()
    assert valid_lines(resumed) == valid_lines(full)[2:]  # the running best (in brackets) too
    a, b = (torch.load(work / s / "predictor/model/ckpt_4.pt", weights_only=True) for s in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_a_lower_max_epoch_says_it_is_done(work, nb201_main):
    ok(nb201_main("--model", "predictor", "--max-epoch", "2"))
    before = snapshot(work / "results/predictor/model")
    out = ok(nb201_main("--model", "predictor", "--max-epoch", "1", "--resume"))
    assert "nothing to train: resume_state.pt is at epoch 2 and --max-epoch is 1" in out
    assert "nan" not in out.splitlines()[-1] and "max correlation" in out.splitlines()[-1]
    assert snapshot(work / "results/predictor/model") == before and epochs(work) == [1, 2]


def test_resume_with_another_hs_names_the_flag(work, nb201_main):
    ok(nb201_main("--model", "generator", "--max-epoch", "1"))
    err = one_line_error(nb201_main("--model", "generator", "--max-epoch", "2", "--resume", "--hs", "16", "--nz", "16"))
    assert "resume_state.pt was saved with --hs 8, this run has 16" in err


@pytest.mark.slow
def test_sigkill_while_saving_then_resume_matches_an_uninterrupted_run(work):
    """A real SIGKILL in the middle of writing epoch 3's resume_state.pt (the temporary file is half
    written, results.jsonl already has epoch 3), then --resume."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [*TINY_MAIN, "--model", "predictor", "--max-epoch", "4"]
    killer = (
        "import os, signal, sys, tempfile\n"
        "import metad2a.engine.trainer as T\n"
        "calls = []\n"
        "def save(outputs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        path = next(p for p in outputs if p.name == 'resume_state.pt')\n"
        "        fd, _ = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.', suffix='.tmp')\n"
        "        os.write(fd, outputs[path][:100])\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(outputs)\n"
        "real, T.write_files = T.write_files, save\n"
        "from metad2a.cli import main\n"
        "sys.exit(main(sys.argv[1:], space='nasbench201'))\n"
    )
    p = subprocess.run([sys.executable, "-c", killer, *args, "--save-path", "b"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert epochs(work, save="b") == [1, 2, 3] and read_training_state(work / "b/predictor/model/resume_state.pt")[
        "epoch"] == 2
    assert list((work / "b/predictor/model").glob(".resume_state.pt.*.tmp"))
    r = subprocess.run([sys.executable, str(MAIN), *args, "--save-path", "b", "--resume"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    full = subprocess.run([sys.executable, str(MAIN), *args, "--save-path", "a"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert epochs(work, save="b") == [1, 2, 3, 4]
    assert not list((work / "b/predictor/model").glob(".*.tmp"))
    assert valid_lines(r.stdout) == valid_lines(full.stdout)[2:]
    assert valid_lines(p.stdout) == valid_lines(full.stdout)[:3]


# --------------------------------------------------------------------------- 4. divergence
def test_training_stops_when_the_loss_turns_nan_and_keeps_the_last_good_epoch(work, nb201_main, monkeypatch):
    from metad2a.models.predictor import PredictorModel

    predict, calls = PredictorModel.predict, []

    def poisoned(self, *args):  # from the 2nd epoch's first training batch on (3 batches per epoch): NaN
        y = predict(self, *args)
        calls.append(self.training)
        return y * float("nan") if sum(calls) > 3 else y

    monkeypatch.setattr(PredictorModel, "predict", poisoned)
    err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "3"))
    assert "epoch 2: the training loss is nan" in err and "the files of epoch 1 are kept" in err
    mdir = paths.model_dir(work / "results", "predictor")
    assert not (mdir / "ckpt_2.pt").exists() and epochs(work) == [1]
    assert read_training_state(mdir / "resume_state.pt")["epoch"] == 1
    model = build_model("predictor", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5)
    assert load_checkpoint(model, mdir / "ckpt_1.pt")["epoch"] == 1  # finite weights (else it would refuse)


# --------------------------------------------------------------------------- 12. save paths
def test_full_disk_during_training_keeps_the_earlier_epochs(work, nb201_main, monkeypatch):
    ok(nb201_main("--model", "predictor", "--max-epoch", "2"))
    def done(model_dir: Path) -> dict[str, bytes]:  # epoch 3's checkpoint may be new: the state says epoch 2
        return {k: v for k, v in snapshot(model_dir).items() if not k.startswith("ckpt_3")}

    for pattern in ("ckpt_", "resume_state", "results.jsonl"):
        before = done(work / "results/predictor/model")
        with monkeypatch.context() as m:
            FailingDisk(m, pattern)
            err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "4", "--resume"))
        assert "no space left on device" in err and "results/predictor" in err and pattern in err
        assert "unexpected pos" not in err and "Traceback" not in err
        assert done(work / "results/predictor/model") == before, pattern
        assert epochs(work) == [1, 2] and not list((work / "results").rglob("*.tmp"))
    ok(nb201_main("--model", "predictor", "--max-epoch", "3", "--resume"))  # and it resumes
    assert epochs(work) == [1, 2, 3]


def _search_files(work: Path) -> dict[str, bytes]:
    return snapshot(work / "results/meta_test")


def test_full_disk_during_search_leaves_the_earlier_results_consistent(work, nb201_main, monkeypatch):
    ok(nb201_main("--model", "generator", "--max-epoch", "1"))
    ok(nb201_main("--model", "predictor", "--max-epoch", "1", "--hs", "8"))
    gen = ["--model", "generator", "--test", "--load-epoch", "1", "--data-name", "mine", "--num-gen-arch", "3"]
    pred = ["--model", "predictor", "--test", "--data-name", "mine", "--num-gen-arch", "3", "--train-arch", "false"]
    ok(nb201_main(*gen))
    ok(nb201_main(*pred))
    before = _search_files(work)
    for argv, pattern in ((gen, "time.txt"), (gen, "run_1"), (pred, "result.json"), (pred, "accuracy.txt")):
        with monkeypatch.context() as m:
            FailingDisk(m, pattern)
            err = one_line_error(nb201_main("--seed", "7", *argv))
        assert "no space left on device" in err and pattern in err
        assert _search_files(work) == before, (argv[1], pattern)  # all or nothing: nothing changed
    ok(nb201_main("--seed", "7", *pred))
    result = json.loads((work / "results/meta_test/mine/best_arch/result.json").read_text())
    arch = (work / "results/meta_test/mine/best_arch/architecture.txt").read_text().split()
    assert [r["top1_arch"] for r in result["runs"]] == arch


def test_save_path_that_is_a_file(work, nb201_main):
    (work / "taken").write_text("a file")
    err = one_line_error(nb201_main("--model", "generator", "--max-epoch", "1", "--save-path", "taken"))
    assert "cannot write taken/generator" in err and "a file is in the way of a folder" in err


@pytest.mark.parametrize("code,words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_unwritable_outputs_in_process(work, nb201_main, monkeypatch, code, words):
    ok(nb201_main("--model", "generator", "--max-epoch", "1"))
    before = snapshot(work / "results")
    with monkeypatch.context() as m:
        FailingDisk(m, "ckpt_", code)
        err = one_line_error(nb201_main("--model", "generator", "--max-epoch", "2", "--resume"))
    assert words in err and "ckpt_" in err
    assert {k: v for k, v in snapshot(work / "results").items() if k in before and not k.endswith(".log")
            and "config_train" not in k} == {k: v for k, v in before.items() if not k.endswith(".log")
                                               and "config_train" not in k}


@contextmanager
def read_only(folder: Path):
    """``folder`` made read-only for this process: mode 0555, or for root (who writes whatever the
    mode says) the immutable attribute (``chattr +i``); skipped where neither works."""
    folder.mkdir()
    if os.getuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot make a folder read-only for root here (chattr +i unavailable)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_save_path(work, nb201_main):
    with read_only(work / "ro"):
        err = one_line_error(nb201_main("--model", "generator", "--max-epoch", "1", "--save-path", "ro/results"))
        assert "cannot write ro/results" in err and ("permission denied" in err or "read-only" in err)
        assert not list((work / "ro").iterdir())
    with read_only(work / "ro2"):  # a search too
        err = one_line_error(nb201_main("--model", "generator", "--test", "--load-epoch", "1", "--data-name",
                                        "mine", "--save-path", "ro2"))
        assert "cannot write ro2/generator" in err


@pytest.mark.slow
def test_file_size_limit_is_reported_as_a_full_disk(work, nb201_main):
    """RLIMIT_FSIZE: the kernel refuses every write past the limit (EFBIG, SIGXFSZ ignored)."""
    ok(nb201_main("--model", "predictor", "--max-epoch", "2"))
    before = snapshot(work / "results/predictor/model")
    limit = min(len(v) for k, v in before.items() if k.endswith(".pt")) // 2

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(MAIN), *TINY_MAIN, "--model", "predictor", "--max-epoch", "4", "--resume"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1, p.stderr[-3000:]
    assert "no space left on device (file size limit reached)" in err[0] and "results/predictor/model" in err[0]
    after = snapshot(work / "results/predictor/model")
    assert {k: v for k, v in after.items() if not k.startswith("ckpt_3")} == before
    assert epochs(work) == [1, 2] and not list((work / "results").rglob("*.tmp"))
    assert stat.S_ISREG((work / "results/predictor/results.jsonl").stat().st_mode)


# --------------------------------------------------------------------------- 14. SIGINT during a search
def test_interrupted_search_does_not_suggest_resume(work, nb201_main, monkeypatch):
    from metad2a.engine.generator_runner import GeneratorRunner

    save = build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5)
    from metad2a.checkpoint import save_checkpoint

    save_checkpoint(save, paths.ckpt(work / "results", "generator", 1))

    def interrupted(self, tc):
        raise KeyboardInterrupt

    monkeypatch.setattr(GeneratorRunner, "meta_test", interrupted)
    rc, _, err = nb201_main("--model", "generator", "--test", "--load-epoch", "1", "--data-name", "mine")
    assert rc == 130 and "interrupted; the search stopped" in err and "--resume" not in err
