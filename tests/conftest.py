"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent) and seeds."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("METAD2A_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(rel: str) -> Path:
    """A file under ../shared/data; the test is skipped (with the reason) when it is absent."""
    p = SHARED_DATA / rel
    if not p.is_file():
        pytest.skip(f"{p} not present (real data lives in ../shared/data beside the checkout)")
    return p


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded RNGs, and one intra-op thread: the models in tests are small, and two OpenMP threads on
    a busy 2-core machine spin against other jobs (GRU steps and convolutions ran ~10x slower).
    Subprocesses started by tests set OMP_NUM_THREADS themselves."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_session(request):
    """One local Ray instance with 2 CPUs for the in-process builds of a test module. Jobs defined
    in that module are pickled by value, so Ray's workers need not import the tests."""
    pytest.importorskip("ray")
    import ray

    from metad2a.build.ray_pool import RayPool, RayPoolConfig

    ray.cloudpickle.register_pickle_by_value(request.module)
    with RayPool(RayPoolConfig(num_cpus=2)) as pool:
        yield pool


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped, with the reason, on a machine without it."""
    if torch.cuda.is_available() or os.environ.get("METAD2A_GPU_TEST_DEVICE") == "cpu":
        return  # METAD2A_GPU_TEST_DEVICE=cpu: a dry run of the gpu tests on the CPU (checks the tests)
    skip = pytest.mark.skip(reason="needs CUDA (run `make gpu-check` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- tiny NB201 runs and image folders
# main.py flags that make meta-training and search run in a second on the tiny data folder below
TINY_MAIN = ["--gpu", "cpu", "--hs", "8", "--nz", "8", "--num-sample", "5", "--batch_size", "8", "--save-epoch", "1"]


def write_tiny_nb201(root: Path) -> Path:
    """An NB201 data folder in the original formats: 8 source classes of 8-d features, 10 tasks of 3
    classes, 24 predictor entries, targets cifar10 (10 classes) and mine (3); no nasbench201.pt."""
    from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201

    return write_synthetic_nb201(root, num_source_classes=8, classes_per_task=3, rows_per_class=6, feature_dim=8,
                                 num_tasks=10, num_predictor_entries=24, targets={"cifar10": 10, "mine": 3},
                                 with_nasbench201=False)


@pytest.fixture
def tiny_nb201(tmp_path, monkeypatch) -> Path:
    """A working folder (the current one for the test) with the tiny NB201 data in ``data/``."""
    monkeypatch.chdir(tmp_path)
    write_tiny_nb201(tmp_path / "data")
    return tmp_path


@pytest.fixture
def nb201_main(capsys):
    """NB201's main.py in this process with :data:`TINY_MAIN` first: ``run(*argv) -> (status, stdout, stderr)``."""
    from metad2a.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main([*TINY_MAIN, *argv], space="nasbench201")
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


def one_line_error(result: tuple[int, str, str]) -> str:
    """The error line of a ``nb201_main`` result that must have failed with one line and status 2."""
    rc, _, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """4 classes x 25 small PNGs of different colours (a flat folder: 20% per class held out for test)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs") / "colours"
    rng = np.random.default_rng(0)
    for k, colour in enumerate([(220, 30, 30), (30, 200, 40), (40, 40, 230), (200, 200, 30)]):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(25):
            img = np.array(colour)[None, None] * rng.uniform(0.5, 1.0, (12, 12, 1))
            Image.fromarray(img.astype(np.uint8)).save(root / f"c{k}" / f"{i}.png")
    return root
