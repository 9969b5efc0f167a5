"""OFA/MobileNetV3 pipeline pieces in-process: CLI flags and errors, the database split rule,
ragged set encoding, per-sample generator steps, and the 100-set pooling quirk vs --ofa-per-set."""

import random

import pytest
import torch

from metad2a.checkpoint import save_data
from metad2a.cli import _model_config, data_names, main
from metad2a.config import MetaTestConfig, ModelConfig, RunConfig, TrainConfig
from metad2a.data.catalog import DatasetInfo
from metad2a.data.formats import write_bylabel
from metad2a.data.meta_test import TargetDataset
from metad2a.data.synthetic import synthetic_features
from metad2a.engine.generator_runner import GeneratorRunner
from metad2a.engine.predictor_runner import PredictorRunner
from metad2a.engine.runner import encode_ragged
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.parser import build_parser
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.collected_database import (
    collected_database,
    load_or_make_splits,
    split_indices,
    train_statistics,
)
from metad2a.search_spaces.ofa_mbv3.space import OfaOptions
from metad2a.search_spaces.ofa_mbv3.synthetic import synthetic_ofa_entry, write_synthetic_ofa

OFA = get_search_space("ofa_mbv3")
README_COMMANDS = [  # docs/fidelity.md#ofa-command-lines, run from inside MetaD2A_ofa/
    *(f"--gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 120 --num-gen-arch 200 --data-name {d}"
      for d in ("cifar10", "cifar100", "aircraft100", "pets")),
    "--gpu 0 --model predictor --hs 512 --nz 56",
    "--gpu 0 --model generator --hs 56 --nz 56",
]




# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("cmd", README_COMMANDS)
def test_readme_commands_mean_what_the_readme_says(cmd):
    """Each README command: the model, its sizes, the mode and the original loops it selects."""
    args = build_parser(OFA).parse_args(cmd.split())
    mc = _model_config(args, OFA)
    test = "--test" in cmd
    assert (args.model_name, mc.hs, mc.nz, mc.nvt, mc.max_n, args.test) == (
        cmd.split()[3], 56 if "generator" in cmd else 512, 56, 29, 22, test)
    options = OFA.options({f.dest: getattr(args, f.dest) for f in OFA.extra_flags})
    assert options == OfaOptions(ofa_per_set=False)
    assert OFA.loop_style(options).pooled_search and OFA.loop_style(options).step_per_sample
    if test:
        assert (args.load_epoch, args.num_gen_arch) == (120, 200)
        assert data_names(args, OFA) == (cmd.split()[-1],)


def test_original_ofa_defaults():
    a = build_parser(OFA).parse_args([])
    assert (a.graph_data_name, a.nvt, a.num_gen_arch, a.load_epoch, a.batch_size, a.max_epoch) == (
        "ofa_mbv3", 27, 200, 20, 32, 400)
    assert (a.index, a.imgnet, a.collect, a.hs) == (None, None, False, None)
    b = build_parser(OFA).parse_args(["--model_name", "train_arch", "--index", "3", "--imgnet", "/x", "--collect"])
    assert (b.model_name, b.index, b.imgnet, b.collect) == ("train_arch", 3, "/x", True)
    nb = build_parser(get_search_space("nasbench201")).parse_args([])
    assert not hasattr(nb, "ofa_per_set") and nb.nb201_table is None


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "train_arch"], "main.py runs only the generator or the predictor"),
        (["--model", "predictor", "--test", "--data-name", "cifar10"], "no predictor test step"),
        (["--model", "generator", "--graph-data-name", "nasbench201"], "not this folder's search space"),
        (["--model", "generator", "--nvt", "29"], "--nvt 29 does not fit ofa_mbv3 (expects 27)"),
        (["--model", "predictor", "--max-epoch", "1"], "was never published"),
        (["--model", "generator", "--max-epoch", "1"], "get_files/get_generator_database.py"),
        (["--model", "generator", "--test", "--load-epoch", "120", "--data-name", "pets"],
         "ckpt_120.pt: file not found"),
    ],
)
def test_user_errors_are_one_line(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_data({0: [torch.zeros(20, 4)]}, tmp_path / "data" / "imgnet32bylabel.pt")
    assert main(["--gpu", "cpu", *argv], space="ofa_mbv3") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


# --------------------------------------------------------------------------- database split
def small_database(n, seed=0):
    rng = random.Random(seed)
    return [synthetic_ofa_entry(ofa.random_arch_dict(rng), rng.sample(range(8), 3), 50 + i * 0.25)
            for i in range(n)]


def test_split_rule_70_15_15_deterministic(tmp_path):
    torch.manual_seed(333)
    a = split_indices(101)
    torch.manual_seed(333)
    assert split_indices(101) == a  # under the global seed
    assert [len(a[s]) for s in ("test", "valid", "train")] == [15, 15, 71]  # int(101 * 0.15) = 15
    assert sorted(a["test"] + a["valid"] + a["train"]) == list(range(101))
    torch.manual_seed(333)
    perm = torch.randperm(101).tolist()  # test first, then valid, then the rest
    assert a["test"] == perm[:15] and a["valid"] == perm[15:30] and a["train"] == perm[30:]

    db = small_database(101)
    save_data(db, collected_database(tmp_path, "predictor"))
    torch.manual_seed(333)
    first = load_or_make_splits(tmp_path, "predictor")
    assert first["train"].acc == [db[i]["top1"] for i in a["train"]]
    assert first["valid"].classes == [db[i]["class"].tolist() for i in a["valid"]]
    assert (first["train"].mean, first["train"].std) == train_statistics([db[i]["top1"] for i in a["train"]])
    assert first["valid"].mean == first["train"].mean  # the train statistics are stored in every split
    torch.manual_seed(1)  # later runs read the split files, whatever the seed
    assert load_or_make_splits(tmp_path, "predictor")["train"].acc == first["train"].acc


def test_too_small_database_is_a_clear_error(tmp_path):
    save_data(small_database(6), collected_database(tmp_path, "generator"))
    with pytest.raises(Exception, match="at least 7 tasks"):
        load_or_make_splits(tmp_path, "generator")


# --------------------------------------------------------------------------- ragged tasks
def test_encode_ragged_equals_one_set_at_a_time():
    pred = PredictorModel(ofa.NVT, ofa.MAX_N, hs=8, nz=8, feature_dim=16, num_sample=4).eval()
    gen = GeneratorModel(ofa.NVT, ofa.MAX_N, hs=8, nz=8, feature_dim=16, num_sample=4).eval()
    xs = [torch.randn(c * 4, 16) for c in (3, 1, 3, 5, 1)]
    with torch.no_grad():
        loop = torch.cat([pred.set_encode(x[None]) for x in xs])
        torch.testing.assert_close(encode_ragged(pred.set_encode, xs), loop)
        mu, logvar = encode_ragged(gen.set_encode, xs)
        torch.testing.assert_close(mu, torch.cat([gen.set_encode(x[None])[0] for x in xs]))
        torch.testing.assert_close(logvar, torch.cat([gen.set_encode(x[None])[1] for x in xs]))


@pytest.mark.parametrize("per_sample", [True, False])
def test_generator_steps_per_sample_or_per_batch(per_sample, tmp_path, monkeypatch):
    write_synthetic_ofa(tmp_path, num_source_classes=6, rows_per_class=20, feature_dim=16, ways=(1, 2, 3),
                        num_predictor_entries=0, num_generator_entries=10, targets={})
    steps = []
    orig = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1) or orig(self, *a, **k))
    rc = RunConfig(space="ofa_mbv3", model="generator", test=False, save_path=tmp_path / "r", data_path=tmp_path)
    mc = ModelConfig(hs=8, nz=8, nvt=ofa.NVT, max_n=ofa.MAX_N)
    GeneratorRunner(OFA, rc, mc, torch.device("cpu"), OfaOptions(ofa_per_set=not per_sample)).meta_train(
        TrainConfig(max_epoch=1, save_epoch=1, batch_size=32))
    assert len(steps) == (8 if per_sample else 1)  # 10 tasks -> 1 test, 1 valid, 8 train; one batch


def test_oracle_accuracies_as_ground_truth(tmp_path):
    from metad2a.search_spaces.ofa_mbv3.oracle import load_ofa_accuracy_predictor, predict_accuracy
    from tests.conftest import shared_file

    oracle = load_ofa_accuracy_predictor(shared_file("ofa/ofa_mbv3_acc_predictor.pth"))
    write_synthetic_ofa(tmp_path, num_source_classes=6, rows_per_class=20, feature_dim=16, ways=(2, 3),
                        num_predictor_entries=20, num_generator_entries=0, targets={}, noise=0.0,
                        accuracy=lambda net, way: 100 * predict_accuracy(oracle, [net])[0])
    db = torch.load(collected_database(tmp_path, "predictor"), weights_only=False)
    truth = predict_accuracy(oracle, [e["net"] for e in db])
    assert [e["top1"] for e in db] == pytest.approx([100 * t for t in truth], abs=1e-4)
    assert 60 < min(e["top1"] for e in db) and max(e["top1"] for e in db) < 85  # ImageNet-like top-1
    feats = synthetic_features(6, 20, 16, torch.Generator().manual_seed(0))
    write_bylabel(feats, tmp_path / "imgnet32bylabel.pt")
    _, mdb = OFA.prepare_meta_train("predictor", tmp_path, 20, lambda feature_dim: None)
    b = next(mdb.batches("train", 32, shuffle=False))
    torch.testing.assert_close(b.y, ((b.acc - mdb.mean) / mdb.std) / 100)
    assert [len(x) for x in b.xs] == [20 * len(c) for c in mdb.classes["train"]]


# --------------------------------------------------------------------------- search: pooling quirk
def biased_models(d=16, hs=8):
    """A generator that decodes only depth-2 types with every edge (always valid, ~never repeats)
    and a small predictor."""
    torch.manual_seed(0)
    gen = GeneratorModel(ofa.NVT, ofa.MAX_N, hs=hs, nz=hs, feature_dim=d).eval()
    with torch.no_grad():
        gen.add_vertex[2].weight.zero_()
        gen.add_vertex[2].bias.fill_(-30.0)
        gen.add_vertex[2].bias[2:11] = 10.0
        gen.add_edge[2].weight.zero_()
        gen.add_edge[2].bias.fill_(10.0)
    pred = PredictorModel(ofa.NVT, ofa.MAX_N, hs=hs, nz=hs, feature_dim=d).eval()
    return gen, pred


@pytest.fixture
def setup(tmp_path):
    gen, pred = biased_models()
    feats = synthetic_features(3, 20, 16, torch.Generator().manual_seed(1))
    target = TargetDataset("toy", feats, DatasetInfo(3), num_sample=20)
    rc = RunConfig(space="ofa_mbv3", model="generator", test=True, save_path=tmp_path)
    runner = GeneratorRunner(OFA, rc, ModelConfig(hs=8, nz=8, nvt=ofa.NVT, max_n=ofa.MAX_N), torch.device("cpu"))
    calls = {"encode": [], "decode": []}
    enc, dec, enc_rows = gen.set_encode, gen.decode, gen.set_encode_projected
    # the search encodes sets from the dataset's per-row projections, given by row indices
    gen.set_encode_projected = lambda P, idx: calls["encode"].append(tuple(idx.shape)) or enc_rows(P, idx)
    gen.decode = lambda z, **k: calls["decode"].append(tuple(z.shape)) or dec(z, **k)
    return runner, gen, pred, target, calls, enc, dec


def chain(archs):
    return GraphBatch.from_lists([ofa.arch_dict_to_types(a) for a in archs], [ofa.CHAIN_EDGES] * len(archs), ofa.MAX_N)


def test_pooled_search_one_graph_per_100_sets(setup):
    runner, gen, pred, target, calls, enc, dec = setup
    tc = MetaTestConfig(data_names=("toy",))
    assert runner.loop.pooled_search  # the default: the original loop
    res = runner.search(gen, pred, target, 3, tc, generator=torch.Generator().manual_seed(0))
    # ONE set of 100 * 3 classes * 20 rows per loader batch -> one latent -> one graph; the three
    # pooled sets are encoded and decoded together (docs/fidelity.md#chunked-search)
    assert calls["encode"] == [(3, 100 * 3 * 20)] and calls["decode"] == [(3, 8)]
    assert res.decoded == 3 and len({ofa.arch_dict_to_str(a) for a in res.archs}) == 3
    assert res.scores == sorted(res.scores, reverse=True)
    # replay the first batch: the score uses the pooled set and the decoded graph's sampled edges
    g0 = torch.Generator().manual_seed(0)
    x = target.sample(100, g0)
    pooled = x.reshape(1, -1, 16)
    with torch.no_grad():
        graph = dec(enc(pooled)[0], generator=g0)
        first = runner.space.arch_from_types(graph.types[0].tolist())
        expected = pred.predict(pred.set_encode(pooled), pred.graph_encode(graph)).item()
        on_chain = pred.predict(pred.set_encode(pooled), pred.graph_encode(chain([first]))).item()
        per_set_mean = pred.predict(pred.set_encode(x), pred.graph_encode(chain([first] * 100))).mean().item()
    assert graph.adj.sum() > ofa.MAX_N - 1  # more than the chain's 21 edges
    got = res.scores[[ofa.arch_dict_to_str(a) for a in res.archs].index(ofa.arch_dict_to_str(first))]
    assert got == pytest.approx(expected, abs=1e-6)
    assert got != pytest.approx(on_chain, abs=1e-6) and got != pytest.approx(per_set_mean, abs=1e-6)


def test_per_set_search_one_graph_per_set(setup):
    runner, gen, pred, target, calls, enc, dec = setup
    runner = GeneratorRunner(OFA, runner.run, runner.mc, runner.device, OfaOptions(ofa_per_set=True))
    tc = MetaTestConfig(data_names=("toy",), pred_num_sets=10)
    res = runner.search(gen, pred, target, 3, tc, generator=torch.Generator().manual_seed(0))
    assert calls["encode"] == [(100, 3 * 20)] and calls["decode"] == [(100, 8)]
    assert res.decoded == 100 and res.scores == sorted(res.scores, reverse=True)
    # replay: the first 3 unique archs of the batch, scored on canonical chains over 10 common sets
    g0 = torch.Generator().manual_seed(0)
    with torch.no_grad():
        graphs = dec(enc(target.sample(100, g0))[0], generator=g0)
    archs = [runner.space.arch_from_types(t) for t in graphs.types.tolist()][:3]
    expected = PredictorRunner(OFA, runner.run, runner.mc, torch.device("cpu")).score(pred, target, archs, 10, g0)
    by_key = dict(zip([ofa.arch_dict_to_str(a) for a in res.archs], res.scores))
    assert [by_key[ofa.arch_dict_to_str(a)] for a in archs] == pytest.approx(expected.tolist(), abs=1e-6)
