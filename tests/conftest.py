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
