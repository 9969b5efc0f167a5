"""The new ranking options (docs/fidelity.md#ranking-options, #rank-loss): the pairwise ranking loss
against a hand computation, the generator's per-graph log-likelihood, the combined ranking score,
and the flags end to end (they change what they should, and only that)."""

import json
import math

import pytest
import torch

from metad2a.cli import main
from metad2a.engine.predictor_runner import rank_scores, standardise
from metad2a.models.generator import GeneratorModel, likelihood_sets
from metad2a.models.predictor import RANK_TAU, PredictorModel, pairwise_rank_loss, score_sets
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201

STRS = [s for i, s in enumerate(nb.all_arch_strs()) if i % 1301 == 0][:10]


def nb_batch(strs):
    return GraphBatch.from_lists([nb.arch_str_to_types(s) for s in strs], [nb.CANONICAL_EDGES] * len(strs), 8)


def softplus(x):
    return math.log1p(math.exp(x))


def test_rank_loss_matches_a_hand_computation():
    pred = torch.tensor([0.0, 0.01, 0.03])
    target = torch.tensor([1.0, 0.0, 2.0])
    # pairs (better, worse): (0, 1), (2, 0), (2, 1); prediction differences in units of tau = 0.01
    by_hand = RANK_TAU * (softplus(1.0) + softplus(-3.0) + softplus(-2.0)) / 3
    assert pairwise_rank_loss(pred, target).item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(0.0049627, rel=1e-4)


def test_rank_loss_ignores_ties_and_pushes_the_better_one_up():
    pred = torch.zeros(3, requires_grad=True)
    loss = pairwise_rank_loss(pred, torch.tensor([1.0, 1.0, 0.0]))  # pairs (0, 2) and (1, 2) only
    assert loss.item() == pytest.approx(RANK_TAU * math.log(2), rel=1e-6)
    loss.backward()
    assert pred.grad[0] < 0 and pred.grad[1] < 0 and pred.grad[2] > 0  # descent raises 0 and 1, lowers 2
    flat = torch.zeros(2, requires_grad=True)
    zero = pairwise_rank_loss(flat, torch.tensor([3.0, 3.0]))
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(flat.grad, torch.zeros(2))


def test_log_likelihood_is_the_loss_per_graph():
    torch.manual_seed(0)
    m = GeneratorModel(7, 8, hs=16, nz=16, feature_dim=12, num_sample=4).eval()  # eval: z = mu
    mu, logvar = m.set_encode(torch.randn(len(STRS), 3 * 4, 12))
    g = nb_batch(STRS)
    ll = m.log_likelihood(mu, g)
    assert ll.shape == (len(STRS),) and (ll < 0).all()
    for i in range(len(STRS)):
        recon = m.loss(mu[i : i + 1], logvar[i : i + 1], nb_batch(STRS[i : i + 1]))[1]
        assert ll[i].item() == pytest.approx(-recon.item(), rel=1e-5)
    sets = torch.randn(3, 3 * 4, 12)
    per_set = torch.stack([m.log_likelihood(m.set_encode(s[None])[0].expand(len(STRS), -1), g) for s in sets])
    torch.testing.assert_close(likelihood_sets(m, sets, g), per_set.mean(0))


def test_rank_scores_original_ensemble_and_likelihood_mix():
    torch.manual_seed(0)
    preds = [PredictorModel(7, 8, hs=16, nz=16, feature_dim=12, num_sample=4).eval() for _ in range(2)]
    gen = GeneratorModel(7, 8, hs=16, nz=16, feature_dim=12, num_sample=4).eval()
    sets, g = torch.randn(4, 3 * 4, 12), nb_batch(STRS)
    one = score_sets(preds[0], sets, g)
    s, p = rank_scores(preds[:1], sets, g)
    assert torch.equal(s, one) and torch.equal(p, one)  # the original ranking, unchanged
    s2, p2 = rank_scores(preds, sets, g)
    torch.testing.assert_close(s2, (one + score_sets(preds[1], sets, g)) / 2)
    ll = likelihood_sets(gen, sets, g)
    s_ll, p_ll = rank_scores(preds[:1], sets, g, gen, 1.0)
    torch.testing.assert_close(s_ll, standardise(ll))
    assert torch.equal(p_ll, one)  # the prediction stays reported
    s_half, _ = rank_scores(preds[:1], sets, g, gen, 0.5)
    torch.testing.assert_close(s_half, 0.5 * standardise(one) + 0.5 * standardise(ll))
    with pytest.raises(ValueError, match="needs the generator"):
        rank_scores(preds[:1], sets, g, None, 0.5)
    assert torch.equal(standardise(torch.ones(3)), torch.zeros(3))


def test_ranking_flags_parse_with_the_original_defaults():
    from metad2a.build.ofa_cli import build_parser as ofa_builder_parser
    from metad2a.parser import build_parser
    from metad2a.search_spaces import get_search_space

    p = build_parser(get_search_space("nasbench201"))
    a = p.parse_args([])
    assert (a.rank_loss, a.pred_num_sets, a.ensemble, a.likelihood_weight) == (0.0, 10, [], 0.0)
    a = p.parse_args(["--rank_loss", "0.5", "--pred-num-sets", "30", "--likelihood-weight", "0.25",
                      "--ensemble", "a.pt", "b.pt"])
    assert (a.rank_loss, a.pred_num_sets, a.ensemble, a.likelihood_weight) == (0.5, 30, ["a.pt", "b.pt"], 0.25)
    assert ofa_builder_parser().parse_args([]).pred_num_sets == 1  # the OFA builder's own default


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "generator", "--rank-loss", "1"], "--rank-loss applies to predictor meta-training"),
        (["--model", "predictor", "--rank-loss", "-1"], "--rank-loss must be a non-negative number"),
        (["--model", "predictor", "--rank-loss", "nan"], "--rank-loss must be a non-negative number"),
        (["--model", "predictor", "--likelihood-weight", "0.5"], "apply to the predictor's ranking step"),
        (["--model", "generator", "--test", "--data-name", "x", "--ensemble", "a.pt"],
         "apply to the predictor's ranking step"),
        (["--model", "predictor", "--test", "--data-name", "x", "--likelihood-weight", "2"],
         "--likelihood-weight must be between 0 and 1"),
        (["--model", "predictor", "--test", "--data-name", "x", "--pred-num-sets", "0"],
         "--pred-num-sets must be a positive"),
    ],
)
def test_ranking_flags_misused_are_one_line_errors(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--gpu", "cpu", *argv], space="nasbench201") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny NB201 data directory (no accuracy table: the 10 CIFAR-10 runs keep all 20 candidates in
    ``top_n``), and a generator and two predictors meta-trained on it for one epoch (the second with
    --rank-loss)."""
    d = tmp_path_factory.mktemp("rank")
    write_synthetic_nb201(d / "data", num_source_classes=24, classes_per_task=4, feature_dim=16, num_tasks=20,
                          num_predictor_entries=60, targets={"cifar10": 10}, with_nasbench201=False)
    common = ["--gpu", "cpu", "--data-path", str(d / "data"), "--nz", "8", "--max-epoch", "1", "--save-epoch", "1"]
    assert main(["--model", "generator", "--hs", "8", "--save-path", str(d / "r"), *common], space="nasbench201") == 0
    for name, extra in (("r", []), ("rank", ["--rank-loss", "1"])):
        argv = ["--model", "predictor", "--hs", "8", "--save-path", str(d / name), *common, *extra]
        assert main(argv, space="nasbench201") == 0
    return d


@pytest.mark.slow
def test_rank_loss_flag_changes_the_training_and_is_recorded(small):
    plain = torch.load(small / "r/predictor/model/ckpt_1.pt", weights_only=True)
    ranked = torch.load(small / "rank/predictor/model/ckpt_1.pt", weights_only=True)
    assert any(not torch.equal(plain[k], ranked[k]) for k in plain)
    side = json.loads((small / "rank/predictor/model/ckpt_1.json").read_text())
    assert side["rank_loss"] == 1.0
    assert json.loads((small / "r/predictor/model/ckpt_1.json").read_text())["rank_loss"] == 0.0
    cfg = json.loads((small / "rank/predictor/config_train.json").read_text())
    assert cfg["TrainConfig"]["rank_loss"] == 1.0
    plain_loss = json.loads((small / "r/predictor/results.jsonl").read_text().splitlines()[0])["train_loss"]
    ranked_loss = json.loads((small / "rank/predictor/results.jsonl").read_text().splitlines()[0])["train_loss"]
    assert ranked_loss > plain_loss  # the ranking term is added to the MSE


def _search(d, *extra):
    base = ["--gpu", "cpu", "--data-path", str(d / "data"), "--save-path", str(d / "r"), "--nz", "8", "--test",
            "--data-name", "cifar10", "--num-gen-arch", "20", "--load-epoch", "1"]
    assert main(["--model", "generator", "--hs", "8", *base], space="nasbench201") == 0
    argv = ["--model", "predictor", "--hs", "8", "--train-arch", "false", *base, *extra]
    assert main(argv, space="nasbench201") == 0
    return json.loads((d / "r/meta_test/cifar10/best_arch/result.json").read_text())


@pytest.mark.slow
def test_search_flags_change_the_ranking_and_only_it(small):
    original = _search(small)
    assert original["ranking"] == {"predictors": 1, "sets": 10, "likelihood_weight": 0.0}
    same = _search(small, "--ensemble", str(small / "r/predictor/model/ckpt_max_corr.pt"))
    assert same["ranking"]["predictors"] == 2  # the same model twice: the same mean, the same order
    assert [[x["arch"] for x in r["top_n"]] for r in same["runs"]] == \
        [[x["arch"] for x in r["top_n"]] for r in original["runs"]]
    ens = _search(small, "--ensemble", str(small / "rank/predictor/model/ckpt_max_corr.pt"))
    assert ens["ranking"]["predictors"] == 2 and ens["runs"] != original["runs"]
    lik = _search(small, "--likelihood-weight", "1", "--pred-num-sets", "3")
    assert lik["ranking"] == {"predictors": 1, "sets": 3, "likelihood_weight": 1.0}
    order = [[x["arch"] for x in r["top_n"]] for r in lik["runs"]]
    before = [[x["arch"] for x in r["top_n"]] for r in original["runs"]]
    assert [sorted(o) for o in order] == [sorted(b) for b in before] and len(order[0]) == 20  # same candidates
    assert order != before
    assert lik["runs"][0]["top1_predicted_acc"] is not None  # still the predictor's value
