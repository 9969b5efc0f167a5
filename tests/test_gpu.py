"""CPU and CUDA compute the same: both models of both spaces (forward, teacher-forced loss, gradients,
decoding with the same uniforms), and a one-epoch meta-training plus a search run on CUDA.

Marked ``gpu``: skipped without CUDA; ``make gpu-check`` runs them. Tolerances are those of float32
on different kernels (cuDNN GRU cells, reductions in another order).
"""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from metad2a.cli import main
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.synthetic import write_synthetic_ofa

pytestmark = pytest.mark.gpu
# METAD2A_GPU_TEST_DEVICE=cpu runs these tests CPU against CPU, to check the tests themselves
CUDA = torch.device(os.environ.get("METAD2A_GPU_TEST_DEVICE", "cuda"))
GPU_FLAG = "0" if CUDA.type == "cuda" else "cpu"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _graphs(space_name: str, n: int) -> GraphBatch:
    space = get_search_space(space_name)
    if space_name == "nasbench201":
        archs = [s for i, s in enumerate(nb.all_arch_strs()) if i % 997 == 0][:n]
    else:
        import random

        rng = random.Random(0)
        archs = [ofa.random_arch_dict(rng) for _ in range(n)]
    return GraphBatch.from_lists([space.arch_types(a) for a in archs], [space.arch_edges(a) for a in archs],
                                 space.max_n)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().cpu() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("space_name", ["nasbench201", "ofa_mbv3"])
def test_generator_cpu_equals_cuda(space_name):
    space = get_search_space(space_name)
    torch.manual_seed(0)
    cpu = GeneratorModel(space.nvt, space.max_n, hs=56, nz=56, feature_dim=64).train()
    gpu = copy.deepcopy(cpu).to(CUDA)
    X, g = torch.randn(6, 5 * 20, 64), _graphs(space_name, 6)
    mu_c, lv_c = cpu.set_encode(X)
    mu_g, lv_g = gpu.set_encode(X.to(CUDA))
    torch.testing.assert_close(mu_g.cpu(), mu_c, **TOL)
    torch.testing.assert_close(lv_g.cpu(), lv_c, **TOL)
    # teacher-forced loss and its gradients, with the reparameterisation noise off (eval) on both
    cpu.eval(), gpu.eval()
    loss_c = cpu.loss(mu_c, lv_c, g)[0]
    loss_g = gpu.loss(mu_g, lv_g, g.to(CUDA))[0]
    torch.testing.assert_close(loss_g.cpu(), loss_c, **TOL)
    loss_c.backward()
    loss_g.backward()
    gc, gg = _grads(cpu), _grads(gpu)
    assert gc.keys() == gg.keys() and gc
    for k in gc:
        torch.testing.assert_close(gg[k], gc[k], atol=1e-3, rtol=1e-3, msg=k)
    # decoding with the same uniforms gives the same graphs
    with torch.no_grad():
        u = cpu.draw_uniforms(64, "cpu", torch.Generator().manual_seed(1))
        z = torch.randn(64, 56)
        dc = cpu.decode(z, uniforms=u)
        dg = gpu.decode(z.to(CUDA), uniforms=(u[0].to(CUDA), u[1].to(CUDA)))
    assert torch.equal(dg.types.cpu(), dc.types) and torch.equal(dg.adj.cpu(), dc.adj)
    assert torch.equal(dg.num_vertices.cpu(), dc.num_vertices)


@pytest.mark.parametrize("space_name", ["nasbench201", "ofa_mbv3"])
def test_predictor_cpu_equals_cuda(space_name):
    space = get_search_space(space_name)
    torch.manual_seed(0)
    cpu = PredictorModel(space.nvt, space.max_n, hs=512, nz=56, feature_dim=64).train()
    gpu = copy.deepcopy(cpu).to(CUDA)
    X, g, y = torch.randn(6, 5 * 20, 64), _graphs(space_name, 6), torch.linspace(-0.01, 0.01, 6)[:, None]
    out_c = cpu(X, g)
    out_g = gpu(X.to(CUDA), g.to(CUDA))
    torch.testing.assert_close(out_g.cpu(), out_c, **TOL)
    cpu.mseloss(out_c, y).backward()
    gpu.mseloss(out_g, y.to(CUDA)).backward()
    gc, gg = _grads(cpu), _grads(gpu)
    assert gc.keys() == gg.keys() and gc
    for k in gc:
        torch.testing.assert_close(gg[k], gc[k], atol=1e-3, rtol=1e-3, msg=k)


def test_nb201_meta_train_and_search_on_cuda(tmp_path):
    write_synthetic_nb201(tmp_path / "data", num_tasks=20, num_predictor_entries=60, feature_dim=64)
    common = ["--gpu", GPU_FLAG, "--data-path", str(tmp_path / "data"), "--save-path", str(tmp_path / "results")]
    train = ["--max-epoch", "1", "--save-epoch", "1"]
    assert main([*common, "--model", "generator", "--hs", "56", "--nz", "56", *train], space="nasbench201") == 0
    assert main([*common, "--model", "predictor", "--hs", "64", "--nz", "56", *train], space="nasbench201") == 0
    search = ["--test", "--num-gen-arch", "5", "--data-name", "cifar10"]
    assert main([*common, "--model", "generator", "--hs", "56", "--nz", "56", "--load-epoch", "1", *search],
                space="nasbench201") == 0
    assert main([*common, "--model", "predictor", "--hs", "64", "--nz", "56", *search], space="nasbench201") == 0
    cfg = json.loads((tmp_path / "results" / "predictor" / "config_test.json").read_text())
    assert cfg["RunConfig"]["device"].startswith(CUDA.type)
    result = json.loads((tmp_path / "results/meta_test/cifar10/best_arch/result.json").read_text())
    assert len(result["runs"]) == 10 and all(r["top1_arch"] for r in result["runs"])


def test_ofa_meta_train_and_search_on_cuda(tmp_path):
    write_synthetic_ofa(tmp_path / "data", feature_dim=64)
    common = ["--gpu", GPU_FLAG, "--data-path", str(tmp_path / "data"), "--save-path", str(tmp_path / "results")]
    train = ["--max-epoch", "1", "--save-epoch", "1"]
    assert main([*common, "--model", "predictor", "--hs", "512", "--nz", "56", *train], space="ofa_mbv3") == 0
    assert main([*common, "--model", "generator", "--hs", "56", "--nz", "56", *train], space="ofa_mbv3") == 0
    # A generator after one epoch on a tiny database decodes valid subnets too rarely to test the
    # search; bias its vertex and edge heads towards depth-2 types and every edge (always valid).
    ckpt = tmp_path / "results" / "generator" / "model" / "ckpt_1.pt"
    state = torch.load(ckpt, weights_only=True)
    state["add_vertex.2.weight"].zero_()
    state["add_vertex.2.bias"].fill_(-30.0)
    state["add_vertex.2.bias"][2:11] = 10.0
    state["add_edge.2.weight"].zero_()
    state["add_edge.2.bias"].fill_(10.0)
    torch.save(state, ckpt)
    assert main([*common, "--model", "generator", "--hs", "56", "--nz", "56", "--load-epoch", "1", "--test",
                 "--num-gen-arch", "3", "--data-name", "pets"], space="ofa_mbv3") == 0
    cfg = json.loads((tmp_path / "results" / "generator" / "config_test.json").read_text())
    assert cfg["RunConfig"]["device"].startswith(CUDA.type)
    result = json.loads((tmp_path / "results/meta_test/pets/3/result.json").read_text())
    assert result["runs"][0]["num_archs"] == 3 and result["top1_arch"]

