"""Search under a budget through ``main.py`` (in-process), in both spaces and under each of the three
limits: the archived and chosen architectures fit the budget with params and FLOPs recomputed from
the built networks, result.json reports every candidate's costs and a non-dominated Pareto front,
the latency cache is reused, and an infeasible budget is one line, exit 2, with nothing written
(docs/fidelity.md#budget)."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
import torch

from metad2a.checkpoint import save_checkpoint
from metad2a.cli import main
from metad2a.data.archive import read_archive
from metad2a.data.formats import write_bylabel
from metad2a.data.synthetic import synthetic_features
from metad2a.engine.budget import BudgetFilter
from metad2a.latency import LatencyMeter
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.network import TinyNetwork, count_parameters_and_flops
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from tests.test_ofa_pipeline import biased_models

pytestmark = pytest.mark.slow  # whole searches, with latencies measured on this CPU

NB201, OFA = get_search_space("nasbench201"), get_search_space("ofa_mbv3")
D, HS = 16, 8
LIMIT_FLAG = {"params_m": "--max-params", "mflops": "--max-flops", "latency_ms": "--max-latency-ms"}


def dominated(i, xs, ys):
    return any(ys[j] >= ys[i] and xs[j] <= xs[i] and (ys[j] > ys[i] or xs[j] < xs[i]) for j in range(len(xs)))


def check_front(front, costs, scores, axis):
    xs = [c[axis] for c in costs]
    assert sorted(front) == [i for i in range(len(xs)) if not dominated(i, xs, scores)]


def cache_dir(d: Path) -> Path:
    return d / "results" / "latency"


# --------------------------------------------------------------------------- NB201
@pytest.fixture(scope="module")
def nb201_dir(tmp_path_factory):
    """Random (untrained) generator and predictor checkpoints: their candidates are valid, varied cells."""
    d = tmp_path_factory.mktemp("nb201_budget")
    write_bylabel(synthetic_features(10, 24, D, torch.Generator().manual_seed(1)), d / "data" / "mnistbylabel.pt")
    torch.manual_seed(0)
    save_checkpoint(GeneratorModel(nb.NVT, nb.MAX_N, hs=HS, nz=HS, feature_dim=D),
                    d / "results" / "generator" / "model" / "ckpt_1.pt")
    save_checkpoint(PredictorModel(nb.NVT, nb.MAX_N, hs=HS, nz=HS, feature_dim=D),
                    d / "results" / "predictor" / "model" / "ckpt_max_corr.pt")
    return d


def nb201_limits(d: Path) -> dict[str, float]:
    """Limits that some cells meet and others do not: between the smallest and the largest cell.
    The latency limit comes from networks measured in the search's own cache."""
    small = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    big = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    m = LatencyMeter.open(NB201.name, "cpu", 1, 1, 32, cache_dir(d))
    lat = NB201.latency_ms([small, big], 10, m)
    m.cache.save()
    return {"params_m": 0.4, "mflops": 60.0, "latency_ms": (lat[0] + lat[1]) / 2}


def nb201_main(d, model, *flags, monkeypatch):
    monkeypatch.chdir(d)
    common = ["--gpu", "cpu", "--model", model, "--hs", str(HS), "--nz", str(HS), "--test", "--data-name", "mnist",
              "--num-gen-arch", "4"]
    extra = ["--load-epoch", "1"] if model == "generator" else ["--train-arch", "false"]
    return main([*common, *extra, *flags], space="nasbench201")


@pytest.mark.parametrize("limit", ["params_m", "mflops", "latency_ms"])
def test_nb201_search_and_ranking_under_each_budget(nb201_dir, limit, monkeypatch):
    d = nb201_dir
    value = nb201_limits(d)[limit]
    flags = [LIMIT_FLAG[limit], str(value)]
    assert nb201_main(d, "generator", *flags, monkeypatch=monkeypatch) == 0
    _, archs = read_archive(d / "results" / "meta_test" / "mnist" / "generated_arch" / "run_1.txt")
    assert len(archs) == 4 == len(set(archs))
    for a in archs:  # recomputed from the built network, independently of the search's cost code
        params, mflops = count_parameters_and_flops(TinyNetwork(a, num_classes=10))
        got = {"params_m": params / 1e6, "mflops": mflops}
        assert limit == "latency_ms" or got[limit] <= value, (a, got)
    assert nb201_main(d, "predictor", *flags, monkeypatch=monkeypatch) == 0
    res = json.loads((d / "results" / "meta_test" / "mnist" / "best_arch" / "result.json").read_text())
    run = res["runs"][0]
    b = res["budget"]
    assert b["limits"] == {LIMIT_FLAG[limit]: value} and b["input_size"] == 32 and b["num_classes"] == 10
    assert sorted(c["arch"] for c in run["candidates"]) == sorted(archs)  # every archived one, costed
    assert [c["score"] for c in run["candidates"]] == sorted((c["score"] for c in run["candidates"]), reverse=True)
    assert b["chosen"]["arch"] == run["top1_arch"] == run["candidates"][0]["arch"]
    for c in run["candidates"]:
        params, mflops = count_parameters_and_flops(TinyNetwork(c["arch"], num_classes=10))
        assert c["params_m"] == pytest.approx(params / 1e6) and c["mflops"] == pytest.approx(mflops)
        assert c[limit] <= value
        assert (c["latency_ms"] is not None) == (limit == "latency_ms")
    axis = "latency_ms" if limit == "latency_ms" else "mflops"
    assert b["pareto_axes"] == {"x": axis, "y": "score"}
    check_front(run["pareto_front"], run["candidates"], [c["score"] for c in run["candidates"]], axis)
    if limit == "latency_ms":  # the generator step measured them: the ranking measures nothing
        assert b["latency_measured_now"] == 0
        cache = json.loads(Path(b["latency"]["cache"]).read_text())
        for c in run["candidates"]:
            assert cache["entries"][f"{c['arch']}|classes=10"] == c["latency_ms"]
    pytest.importorskip("matplotlib")
    assert (d / "results" / "meta_test" / "mnist" / "best_arch" / "pareto.png").is_file()


def test_nb201_repeated_search_measures_nothing_twice(nb201_dir, monkeypatch):
    d = nb201_dir
    flags = ["--max-latency-ms", "1e6"]  # every candidate fits: the 4 kept are the only ones timed
    assert nb201_main(d, "generator", *flags, monkeypatch=monkeypatch) == 0
    [cache] = cache_dir(d).glob("nasbench201-*.json")
    before, stamp = cache.read_bytes(), cache.stat().st_mtime_ns
    run_file = d / "results" / "meta_test" / "mnist" / "generated_arch" / "run_1.txt"
    first = read_archive(run_file)[1]
    assert nb201_main(d, "generator", *flags, monkeypatch=monkeypatch) == 0
    assert read_archive(run_file)[1] == first  # the same search ...
    assert cache.read_bytes() == before and cache.stat().st_mtime_ns == stamp  # ... measured nothing
    # other threads: another fingerprint, another file; the first one is left alone
    assert nb201_main(d, "generator", *flags, "--latency-threads", "2", monkeypatch=monkeypatch) == 0
    assert len(list(cache_dir(d).glob("nasbench201-*.json"))) == 2 and cache.read_bytes() == before
    # an explicit cache file of another fingerprint is refused in one line
    assert nb201_main(d, "generator", *flags, "--latency-batch", "2", "--latency-cache", str(cache),
                      monkeypatch=monkeypatch) == 2


def test_nb201_infeasible_budget_is_one_line_and_writes_nothing(nb201_dir, monkeypatch, capsys, tmp_path):
    d = nb201_dir
    monkeypatch.chdir(d)
    monkeypatch.setattr(BudgetFilter, "PATIENCE", 100)  # stop after 100 infeasible cells in a row (not 1,000)
    out = tmp_path / "results"
    for p in ("generator", "predictor"):  # the same checkpoints, a fresh results folder
        save = out / p / "model"
        save.mkdir(parents=True)
        for f in (d / "results" / p / "model").iterdir():
            (save / f.name).write_bytes(f.read_bytes())
    args = ["--gpu", "cpu", "--hs", str(HS), "--nz", str(HS), "--test", "--data-name", "mnist", "--num-gen-arch", "4",
            "--save-path", str(out)]
    assert main(["--model", "generator", "--load-epoch", "1", *args, "--max-params", "0.05"], space="nasbench201") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no candidate fits the budget (--max-params 0.05) among 1" in err
    assert "the smallest seen: 0.07331 M params, 7.783 MFLOPs" in err  # the all-'none' cell
    assert not (out / "meta_test").exists()
    # the ranking applies the budget to the archived candidates
    assert main(["--model", "generator", "--load-epoch", "1", *args], space="nasbench201") == 0
    assert main(["--model", "predictor", "--train-arch", "false", *args, "--max-flops", "1"], space="nasbench201") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no candidate fits the budget (--max-flops 1) among 4 candidates of")
    assert not (out / "meta_test" / "mnist" / "best_arch").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--max-params", "-1"], "--max-params must be a positive number, got -1.0"),
    (["--max-flops", "0"], "--max-flops must be a positive number, got 0.0"),
    (["--max-latency-ms", "5", "--latency-device", "tpu"], "--latency-device 'tpu' is not a device"),
    (["--max-latency-ms", "5", "--latency-threads", "0"], "--latency-threads must be a positive integer"),
])
def test_bad_budget_flags_exit_2_in_one_line(nb201_dir, argv, needle, monkeypatch, capsys):
    assert nb201_main(nb201_dir, "generator", *argv, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_cuda_requested_without_cuda(nb201_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert nb201_main(nb201_dir, "generator", "--max-latency-ms", "5", "--latency-device", "cuda:0",
                      monkeypatch=monkeypatch) == 2
    assert capsys.readouterr().err.strip() == ("error: --latency-device cuda:0: CUDA is not available on this "
                                               "machine; use --latency-device cpu")


# --------------------------------------------------------------------------- OFA
@pytest.fixture(scope="module")
def ofa_dir(tmp_path_factory):
    """A generator biased to decode valid subnets (depth-2 types only, every edge: see
    tests/test_ofa_pipeline.py::biased_models) and a random predictor."""
    pytest.importorskip("ofa")
    d = tmp_path_factory.mktemp("ofa_budget")
    write_bylabel(synthetic_features(3, 24, D, torch.Generator().manual_seed(1)), d / "data" / "minebylabel.pt")
    gen, _ = biased_models(d=D, hs=HS)
    save_checkpoint(gen, d / "results" / "generator" / "model" / "ckpt_120.pt")
    save_checkpoint(PredictorModel(ofa.NVT, ofa.MAX_N, hs=512, nz=HS, feature_dim=D),
                    d / "results" / "predictor" / "model" / "ckpt_max_corr.pt")
    return d


@pytest.fixture(scope="module")
def ofa_limits(ofa_dir):
    """Medians over random depth-2 subnets (what the biased generator decodes), 3-class head, 224 px;
    the latency from the table in the search's own cache (built here once)."""
    rng = random.Random(5)
    archs = [{**ofa.random_arch_dict(rng), "d": [2] * 5} for _ in range(40)]
    costs = [OFA.arch_cost(a, 3, 224) for a in archs]
    m = LatencyMeter.open(OFA.name, "cpu", 1, 1, 224, cache_dir(ofa_dir))
    lat = OFA.latency_ms(archs, 3, m)
    return {"params_m": statistics.median(c[0] for c in costs), "mflops": statistics.median(c[1] for c in costs),
            "latency_ms": statistics.median(lat)}


def ofa_main(d, *flags, monkeypatch, per_set=True):
    monkeypatch.chdir(d)
    return main(["--gpu", "cpu", "--model", "generator", "--hs", str(HS), "--nz", str(HS), "--test",
                 "--load-epoch", "120", "--num-gen-arch", "3", "--data-name", "mine",
                 *(["--ofa-per-set"] if per_set else []), *flags], space="ofa_mbv3")  # a later --num-gen-arch wins


@pytest.mark.parametrize("limit", ["params_m", "mflops", "latency_ms"])
def test_ofa_search_under_each_budget(ofa_dir, ofa_limits, limit, monkeypatch):
    from metad2a.search_spaces.ofa_mbv3.supernet import (
        build_supernet,
        extract_subnet,
        net_size,
        new_classifier,
    )

    d, value = ofa_dir, ofa_limits[limit]
    assert ofa_main(d, LIMIT_FLAG[limit], str(value), monkeypatch=monkeypatch) == 0
    out = d / "results" / "meta_test" / "mine" / "3"
    _, lines = read_archive(out / "generated_arch" / "run_1.txt", first_token=False)
    res = json.loads((out / "result.json").read_text())
    run, b = res["runs"][0], res["budget"]
    assert len(lines) == 3 and run["num_archs"] == 3 and b["input_size"] == 224
    supernet = build_supernet(seed=0)
    for line, c in zip(lines, run["costs"]):  # params and FLOPs of the extracted subnet, once-for-all's count
        params, mflops = net_size(new_classifier(extract_subnet(supernet, ofa.arch_str_to_dict(line)), 3, 0.0), 224)
        assert c["params_m"] == pytest.approx(params) and c["mflops"] == pytest.approx(mflops)
        assert c[limit] <= value
    assert b["chosen"]["arch"] == lines[0] == res["top1_arch"]
    assert all(r["over"] and all(r[k] is None or r[k] > value for k in r["over"] if k == limit)
               for r in b["rejected"])
    axis = "latency_ms" if limit == "latency_ms" else "mflops"
    check_front(run["pareto_front"], run["costs"], run["scores"], axis)
    if limit == "latency_ms":
        assert b["latency_measured_now"] == 0  # the table (and this head) were measured before, then reused
        assert len(json.loads(Path(b["latency"]["cache"]).read_text())["entries"]) == 92  # stem, 90 layers, head


def test_ofa_original_pooled_loop_under_a_budget(ofa_dir, ofa_limits, monkeypatch):
    d, value = ofa_dir, ofa_limits["mflops"]
    assert ofa_main(d, "--max-flops", str(value), monkeypatch=monkeypatch, per_set=False) == 0
    out = d / "results" / "meta_test" / "mine" / "3"
    res = json.loads((out / "result.json").read_text())
    assert res["mode"].startswith("original") and all(c["mflops"] <= value for c in res["runs"][0]["costs"])
    assert res["budget"]["feasible"] >= 3


def test_ofa_infeasible_budget(ofa_dir, monkeypatch, capsys):
    assert ofa_main(ofa_dir, "--max-params", "0.5", "--num-gen-arch", "2", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no candidate fits the budget (--max-params 0.5)" in err
    assert "the smallest seen: 2." in err and "M params" in err  # a depth-2 subnet is over 2 M parameters
    assert not (ofa_dir / "results" / "meta_test" / "mine" / "2").exists()


def test_evaluation_bound_accepts_a_latency_bound(ofa_dir, ofa_limits, capsys):
    """``--bound-latency-ms``: the first searched subnet whose table latency fits."""
    from metad2a.search_spaces.ofa_mbv3 import finetune as FT
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet

    meter = LatencyMeter.open(OFA.name, "cpu", 1, 1, 224, cache_dir(ofa_dir))
    small = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}
    large = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
    lat = OFA.latency_ms([small, large], 3, meter)
    supernet = build_supernet(seed=0)
    i, a, _ = FT.choose_architecture(supernet, [large, small], None, None, (meter, 3, (lat[0] + lat[1]) / 2))
    assert (i, a) == (1, small)
    with pytest.raises(FT.MetaD2AError, match=r"at most None MFLOPs and .* ms \(the smallest has"):
        FT.choose_architecture(supernet, [large], None, None, (meter, 3, lat[0] / 2))
    cfg = FT.build_parser().parse_args(["--data-name", "x", "--bound-latency-ms", "3.5"])
    assert (cfg.bound_latency_ms, cfg.latency_device, cfg.latency_threads) == (3.5, "cpu", 1)
    assert FT.main(["--data-name", "cifar10", "--bound-latency-ms", "-1", "--gpu", "cpu"]) == 2
    assert "--bound-latency-ms must be a positive number, got -1.0" in capsys.readouterr().err


def test_latency_table_command_then_a_search_that_reuses_it(ofa_dir, monkeypatch, capsys, tmp_path):
    """``metad2a latency-table`` writes the table of a fingerprint; a search with that fingerprint
    (here at 160 px) reads it and measures nothing."""
    from metad2a.cli import console_main

    table = tmp_path / "cpu160.json"
    argv = ["latency-table", "--space", "ofa", "--device", "cpu", "--resolution", "160", "--classes", "3",
            "--out", str(table), "--warmup", "1", "--repeats", "4"]
    assert console_main(argv) == 0
    assert "92 entries (92 measured now)" in capsys.readouterr().out
    data = json.loads(table.read_text())
    assert data["fingerprint"]["input_size"] == 160 and len(data["entries"]) == 92
    assert console_main(argv) == 0 and "92 entries (0 measured now)" in capsys.readouterr().out
    limit = sum(data["entries"].values())  # above any subnet: this test is about reusing the table
    assert ofa_main(ofa_dir, "--max-latency-ms", f"{limit:.3f}", "--input-size", "160", "--latency-cache", str(table),
                    "--num-gen-arch", "2", monkeypatch=monkeypatch) == 0
    res = json.loads((ofa_dir / "results" / "meta_test" / "mine" / "2" / "result.json").read_text())
    assert res["budget"]["latency_measured_now"] == 0 and res["budget"]["latency"]["cache"] == str(table)
    assert res["budget"]["input_size"] == 160 and json.loads(table.read_text()) == data
    assert console_main(["latency-table", "--space", "nasbench201"]) == 2
    assert console_main(["latency-table", "--space", "ofa", "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the nasbench201 space times each candidate network whole; it has no latency table",
                   "error: --latency-device 'gpu' is not a device; use cpu, cuda or cuda:<index>"]
