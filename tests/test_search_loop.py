"""The search loops: chunked decoding equals the plain loop (docs/fidelity.md#chunked-search), the
early stop (docs/fidelity.md#early-stop), constrained decoding (docs/fidelity.md#constrained-decoding),
progress without a terminal, and the per-run counts."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from metad2a.config import MetaTestConfig, ModelConfig, RunConfig
from metad2a.data.archive import read_archive, write_archive
from metad2a.data.catalog import DatasetInfo
from metad2a.data.meta_test import TargetDataset
from metad2a.data.synthetic import synthetic_features
from metad2a.engine.generator_runner import GeneratorRunner, yield_verdict
from metad2a.log import Progress
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces import get_search_space
from tests import reference_search as ref

NB201 = get_search_space("nasbench201")
OFA = get_search_space("ofa_mbv3")


def runner_for(space, hs=8, options=None):
    rc = RunConfig(space=space.name, model="generator", test=True)
    return GeneratorRunner(space, rc, ModelConfig(hs=hs, nz=hs, nvt=space.nvt, max_n=space.max_n),
                           torch.device("cpu"), options)


def target(classes=3, rows=30, d=8, seed=0, name="toy", runs=1):
    feats = synthetic_features(classes, rows, d, torch.Generator().manual_seed(seed))
    feats[1] = feats[1][:23]  # classes of different sizes
    return TargetDataset(name, feats, DatasetInfo(classes, runs=runs), num_sample=20)


def generator(space, hs=8, d=8, seed=0):
    torch.manual_seed(seed)
    return GeneratorModel(space.nvt, space.max_n, hs=hs, nz=hs, feature_dim=d).eval()


def predictor(space, hs=8, d=8, seed=1):
    torch.manual_seed(seed)
    return PredictorModel(space.nvt, space.max_n, hs=hs, nz=hs, feature_dim=d).eval()


def ofa_generator_with_some_valid(d=8):
    """An OFA generator that decodes valid subnets now and then (mostly depth-2 types)."""
    gen = generator(OFA, hs=8, d=d)
    with torch.no_grad():
        gen.add_vertex[2].bias[2:11] += 4.0
        gen.add_edge[2].bias.fill_(3.0)
    return gen


# --------------------------------------------------------------------------- exact building blocks
@pytest.mark.parametrize("fast", [False, True])
def test_sample_indices_are_the_same_draws_as_sample(fast):
    t = target()
    t.fast_resampling = fast
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    idx = t.sample_indices(7, a)
    x = t.sample(7, b)
    assert idx.shape == (7, 3 * 20)
    assert torch.equal(t.rows()[idx], x)
    assert torch.equal(a.get_state(), b.get_state())  # the same random numbers were consumed


@pytest.mark.parametrize("model_cls", [GeneratorModel, PredictorModel])
def test_projected_set_encoding_equals_set_encoding(model_cls):
    torch.manual_seed(0)
    m = model_cls(NB201.nvt, NB201.max_n, hs=16, nz=16, feature_dim=8).eval()
    t = target()
    idx = t.sample_indices(30, torch.Generator().manual_seed(1))
    rows = t.rows()
    with torch.no_grad():
        P = m.project_rows(rows)
        plain = m.set_encode(rows[idx])
        fast = m.set_encode_projected(P, idx)
        pooled_plain = m.set_encode(rows[idx[:3]].reshape(1, -1, 8))  # the pooled loop's one big set
        pooled_fast = m.set_encode_projected(P, idx[:3].reshape(1, -1))
    for a, b in zip(plain if isinstance(plain, tuple) else (plain,), fast if isinstance(fast, tuple) else (fast,)):
        assert torch.allclose(b, a, rtol=1e-5, atol=1e-6)
    pp = pooled_plain[0] if isinstance(pooled_plain, tuple) else pooled_plain
    pf = pooled_fast[0] if isinstance(pooled_fast, tuple) else pooled_fast
    assert torch.allclose(pf, pp, rtol=1e-5, atol=1e-6)


def test_projected_encoding_in_row_limited_groups():
    from metad2a.nn.set_pool import encode_projected

    m = generator(NB201)
    t = target()
    idx = t.sample_indices(9, torch.Generator().manual_seed(1))
    with torch.no_grad():
        P = m.project_rows(t.rows())
        whole = encode_projected(m.intra_setpool, m.inter_setpool, P, idx, 20)
        for max_rows in (200, 24):  # class groups 10 / 1 at a time; prototypes of 66 / 8 sets at a time
            groups = encode_projected(m.intra_setpool, m.inter_setpool, P, idx, 20, max_rows=max_rows)
            assert torch.allclose(groups, whole, rtol=1e-5, atol=1e-6)


def test_type_key_identifies_types_and_length():
    types = [[0, 2, 3, 1], [0, 2, 3, 1], [0, 2, 4, 1], [0, 2, 3], [0, 2, 3, 0]]
    g = GraphBatch.from_lists(types, [[]] * len(types), max_n=5)
    keys = [tuple(k) for k in g.type_key(29).tolist()]
    assert keys[0] == keys[1] and len(set(keys)) == 4  # [0,2,3] (3 vertices) differs from [0,2,3,0]
    big = GraphBatch.from_lists([[0] + [28] * 20 + [1], [0] + [28] * 19 + [27, 1]], [[], []], max_n=22)
    k = big.type_key(29)
    assert k.shape[1] == 2 and not torch.equal(k[0], k[1])  # 23 five-bit digits need two words


@pytest.mark.parametrize("space", [NB201, OFA], ids=lambda s: s.name)
def test_tensor_validity_agrees_with_the_codec(space):
    gen = generator(space, hs=8)
    if space is OFA:
        gen = ofa_generator_with_some_valid()
    with torch.no_grad():
        g = gen.decode(torch.randn(3000, 8), generator=torch.Generator().manual_seed(0))
        cg = gen.decode(torch.randn(200, 8), generator=torch.Generator().manual_seed(1), constraints=space)
    g = GraphBatch.cat([g, cg])
    ok = (g.dag_valid_mask(space.start_type, space.end_type) & space.valid_mask(g)).tolist()
    dag = g.dag_valid_mask(space.start_type, space.end_type).tolist()
    codec = [d and space.arch_from_types(t[:n]) is not None
             for d, t, n in zip(dag, g.types.tolist(), g.num_vertices.tolist())]
    assert ok == codec
    assert 0 < sum(ok) < len(ok)  # both outcomes occur


# --------------------------------------------------------------------------- chunked == plain
@pytest.mark.parametrize("want", [1, 40, 150])
def test_chunked_generation_equals_the_plain_loop(want):
    """Same seed -> the same architectures in the same order, the same graph count, and the random
    state left where the plain loop leaves it (the next run starts from the same draws)."""
    space, gen, t = NB201, generator(NB201), target()
    runner = runner_for(space)
    tc = MetaTestConfig(data_names=("toy",))
    torch.manual_seed(5)
    archs, decoded = ref.generate(space, gen, t, want)
    after_plain = torch.rand(4)
    torch.manual_seed(5)
    res = runner.generate(gen, t, want, tc)
    assert res.archs == archs and res.decoded == decoded and res.stop_reason is None
    assert torch.equal(torch.rand(4), after_plain)
    assert len(res.archs) == want <= res.valid <= res.decoded
    # with an explicit generator
    archs, decoded = ref.generate(space, gen, t, want, generator=torch.Generator().manual_seed(2))
    res = runner.generate(gen, t, want, tc, generator=torch.Generator().manual_seed(2))
    assert res.archs == archs and res.decoded == decoded


def test_archives_equal_the_plain_loop_over_consecutive_runs(tmp_path):
    """run_<k>.txt of consecutive runs (each run continues the random stream of the previous one)
    are line for line those of the plain loop; only the elapsed-time line differs."""
    space, gen, t = NB201, generator(NB201), target(runs=3)
    runner = runner_for(space)
    tc = MetaTestConfig(data_names=("toy",), num_gen_arch=60)
    for name, make in (("plain", lambda: ref.generate(space, gen, t, 60)[0]),
                       ("chunked", lambda: runner.generate(gen, t, 60, tc).archs)):
        torch.manual_seed(333)
        for k in range(1, 4):
            write_archive(tmp_path / name / f"run_{k}.txt", 0.0, [space.arch_key(a) for a in make()])
    for k in range(1, 4):
        plain, chunked = (read_archive(tmp_path / n / f"run_{k}.txt")[1] for n in ("plain", "chunked"))
        assert plain == chunked and len(plain) == 60


@pytest.mark.parametrize("want,batch", [(3, 10), (25, 10), (3, 30)])
def test_chunked_pooled_loop_equals_the_plain_loop(want, batch):
    # batch 30: 90 prototypes per pooled set, so the inter-class pooling takes the fused attention kernel
    space, gen, pred, t = OFA, ofa_generator_with_some_valid(), predictor(OFA, hs=8), target(classes=3)
    runner = runner_for(space, hs=8)
    tc = MetaTestConfig(data_names=("toy",), gen_batch_size=batch)
    torch.manual_seed(7)
    archs, scores, decoded = ref.generate_pooled(space, gen, pred, t, want, batch_size=batch)
    after_plain = torch.rand(4)
    torch.manual_seed(7)
    res = runner._generate_pooled(gen, pred, t, want, tc, None)
    assert res.archs == archs and res.decoded == decoded >= want and res.stop_reason is None
    assert want < 25 or decoded > want  # invalid graphs were skipped on the way
    assert res.scores == pytest.approx(scores, abs=1e-6)  # batched matrix products: float rounding only
    assert torch.equal(torch.rand(4), after_plain)
    # search() sorts by score: the same order as sorting the plain loop's results
    torch.manual_seed(7)
    s = runner.search(gen, pred, t, want, tc)
    order = sorted(range(len(archs)), key=lambda i: -scores[i])
    assert [space.arch_key(a) for a in s.archs] == [space.arch_key(archs[i]) for i in order]


# --------------------------------------------------------------------------- early stop
# --------------------------------------------------------------------------- --fast-resampling
def _inclusion_pvalue(idx: torch.Tensor, rows: int) -> float:
    """Chi-square p-value of how often each row was chosen, against equal chances."""
    from scipy.stats import chisquare

    return float(chisquare(torch.bincount(idx.reshape(-1), minlength=rows).double().numpy()).pvalue)


@pytest.mark.parametrize("rows", [5000, 45])
def test_fast_resampling_draws_uniform_distinct_rows(rows):
    from metad2a.data.sets import sample_rows_fast

    g = torch.Generator().manual_seed(rows)
    idx = sample_rows_fast([rows] * 4000, 20, g)
    assert idx.shape == (4000, 20) and int(idx.min()) >= 0 and int(idx.max()) < rows
    assert all(len(set(r)) == 20 for r in idx.tolist())  # without replacement
    assert _inclusion_pvalue(idx, rows) > 1e-3  # every row equally likely (for 45 rows: fallbacks mixed in)
    # 40 draws per class, not one per row: the generator moved exactly as far as 4000 x 40 uniforms
    used = torch.Generator().manual_seed(rows)
    torch.rand(4000, 40, generator=used, dtype=torch.float64)
    if rows == 5000:  # no class needed the fallback
        assert torch.equal(g.get_state(), used.get_state())
    # a biased sampler fails the same check (the test can fail)
    assert _inclusion_pvalue(torch.cat([idx, torch.zeros(50, 20, dtype=torch.long)]), rows) < 1e-6


def test_fast_resampling_falls_back_for_small_classes(monkeypatch):
    from metad2a.data import sets

    calls = []
    exact = sets.sample_rows
    monkeypatch.setattr(sets, "sample_rows", lambda sizes, n, g=None: calls.append(list(sizes)) or exact(sizes, n, g))
    idx = sets.sample_rows_fast([20, 5000, 20], 20, torch.Generator().manual_seed(0))
    # 40 draws from 20 rows hold all 20 only by chance (about 4 %): here both small classes are redrawn
    assert calls == [[20, 20]]
    assert sorted(idx[0].tolist()) == sorted(idx[2].tolist()) == list(range(20))
    assert len(set(idx[1].tolist())) == 20
    with pytest.raises(ValueError, match="positive"):
        sets.sample_rows_fast([30], 0)


def test_fast_resampling_search_end_to_end():
    space, gen = NB201, generator(NB201)
    fast = TargetDataset("toy", target().feats, DatasetInfo(3), num_sample=20, fast_resampling=True)
    runner = runner_for(space)
    tc = MetaTestConfig(data_names=("toy",), fast_resampling=True)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(runner.generate(gen, fast, 15, tc))
    assert runs[0].archs == runs[1].archs and len(runs[0].archs) == 15  # deterministic for a seed
    torch.manual_seed(3)
    default = runner.generate(gen, target(), 15, MetaTestConfig(data_names=("toy",)))
    assert default.archs != runs[0].archs  # other sets for the same seed (docs/fidelity.md#fast-resampling)
    sets = fast.sample(3, torch.Generator().manual_seed(1))
    assert sets.shape == (3, 60, 8)


def test_yield_verdict_rules():
    assert yield_verdict(9_999, 0, 0, 500, 200_000) is None  # too early to judge
    line = yield_verdict(10_000, 0, 0, 500, 200_000)
    assert line.startswith("stopped early: 0 valid and 0 unique of 10,000 decoded graphs (500 requested)")
    assert "under-trained" in line and "--constrained-decoding" in line
    # 1 unique in 10,000: the cap would give about 20 of 500
    line = yield_verdict(10_000, 3, 1, 500, 200_000)
    assert "gives about 20 of the 500 requested" in line
    assert yield_verdict(10_000, 500, 300, 500, 200_000) is None  # on course
    assert yield_verdict(100, 0, 0, 5, 1_000) is not None  # a tenth of a small cap
    assert yield_verdict(299, 0, 0, 200, 10_000, judge_at=300) is None
    assert yield_verdict(300, 0, 0, 200, 10_000, judge_at=300) is not None
    assert "--constrained-decoding" not in yield_verdict(10_000, 10, 1, 500, 200_000, constrained=True)
    assert yield_verdict(200, 150, 100, 500, 200).startswith(
        "reached the cap with 150 valid and 100 unique of 200 decoded graphs (500 requested); the generator")


def test_untrained_generator_stops_early_with_a_reason_in_both_loops():
    """An untrained OFA generator decodes nothing valid: the pooled loop stops after 300 pooled sets
    (30,000 resampled sets) instead of its cap of 10,000, with the reason. An untrained NB201
    generator asked for more than its yield can give within the cap stops after 10,000 decoded graphs."""
    t = target(classes=2, rows=25)
    runner = runner_for(OFA, hs=8)
    res = runner.search(generator(OFA, hs=8), predictor(OFA, hs=8), t, 50, MetaTestConfig(data_names=("toy",)))
    assert res.archs == [] and res.decoded == 300
    assert res.stop_reason.startswith("stopped early: 0 valid and 0 unique of 300 decoded graphs")
    runner = runner_for(NB201)
    res = runner.generate(generator(NB201), t, 15_000, MetaTestConfig(data_names=("toy",)))
    assert res.decoded == 10_000 and 0 < len(res.archs) < 15_000
    assert "at this rate the cap of 200,000 decoded graphs gives about" in res.stop_reason
    assert "the generator looks under-trained" in res.stop_reason


def test_a_stopped_run_keeps_what_it_found():
    runner = runner_for(NB201)
    tc = MetaTestConfig(data_names=("toy",), max_gen_batches=3)  # judged after a tenth of the cap: 1 batch
    res = runner.generate(generator(NB201), target(), 15_000, tc)
    assert res.decoded == 100 and res.archs and res.stop_reason.startswith("stopped early: ")
    assert f"{len(res.archs)} unique of 100 decoded graphs" in res.stop_reason


# --------------------------------------------------------------------------- constrained decoding
@pytest.mark.parametrize("space", [NB201, OFA], ids=lambda s: s.name)
def test_constrained_decoding_of_an_untrained_generator_is_always_valid(space):
    gen = generator(space)
    z = torch.randn(1_000, 8)
    with torch.no_grad():
        free = gen.decode(z, generator=torch.Generator().manual_seed(0))
        g = gen.decode(z, generator=torch.Generator().manual_seed(0), constraints=space)
    ok = g.dag_valid_mask(space.start_type, space.end_type) & space.valid_mask(g)
    assert ok.all()
    assert all(space.arch_from_types(t) is not None for t in g.types.tolist())
    free_ok = free.dag_valid_mask(space.start_type, space.end_type) & space.valid_mask(free)
    assert free_ok.float().mean() < 0.5  # unconstrained, most graphs are not valid
    edges = space.arch_edges(space.arch_from_types(g.types[0].tolist()))
    expected = torch.zeros(space.max_n, space.max_n, dtype=torch.bool)
    expected[tuple(zip(*edges))] = True
    assert (g.adj == expected).all()  # the space's own topology
    assert len({tuple(t) for t in g.types.tolist()}) > 900  # still diverse


class _AllowAll:
    def __init__(self, nvt):
        self.nvt = nvt

    def type_mask(self, position, types):
        return torch.ones(types.size(0), self.nvt, dtype=torch.bool)

    def edge_mask(self, position, types):
        return torch.ones(types.size(0), position, dtype=torch.bool), torch.zeros(types.size(0), position,
                                                                                     dtype=torch.bool)


class _OnlyTypes:
    """Position 1 may only take the types ``allowed``; everything else is free."""

    def __init__(self, nvt, allowed):
        self.nvt, self.allowed = nvt, list(allowed)

    def type_mask(self, position, types):
        m = torch.ones(types.size(0), self.nvt, dtype=torch.bool)
        if position == 1:
            m[:] = False
            m[:, self.allowed] = True
        return m

    def edge_mask(self, position, types):
        return _AllowAll(self.nvt).edge_mask(position, types)


def test_constraints_that_allow_everything_change_nothing_and_masks_renormalise():
    gen = generator(NB201)
    z = torch.randn(2_000, 8)
    u = gen.draw_uniforms(2_000, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        free = gen.decode(z, uniforms=u)
        same = gen.decode(z, uniforms=u, constraints=_AllowAll(NB201.nvt))
        two = gen.decode(z, uniforms=u, constraints=_OnlyTypes(NB201.nvt, [3, 4]))
        # the model's type probabilities at position 1
        h0 = gen.grud(gen._one_hot(torch.zeros(2_000, dtype=torch.long)), gen.tanh(gen.fc3(z)))
        p = torch.softmax(gen.add_vertex(h0), 1)
    assert torch.equal(free.types, same.types) and torch.equal(free.adj, same.adj)
    # renormalised among the allowed types: type 3 with probability p3 / (p3 + p4), by inverse CDF
    # of the same uniform
    cut = p[:, 3] / (p[:, 3] + p[:, 4])
    clear = (u[0][:, 1] - cut).abs() > 1e-5
    expected = torch.where(u[0][:, 1] < cut, 3, 4)
    assert torch.equal(two.types[clear, 1], expected[clear]) and clear.sum() > 1_990
    assert set(two.types[:, 1].tolist()) == {3, 4} and set(free.types[:, 1].tolist()) > {3, 4}


def test_constrained_search_finds_what_an_untrained_generator_cannot():
    t = target(classes=3)
    runner = runner_for(OFA, hs=8)
    tc = MetaTestConfig(data_names=("toy",), gen_batch_size=10, constrained_decoding=True)
    res = runner.search(generator(OFA, hs=8), predictor(OFA, hs=8), t, 20, tc)
    assert len(res.archs) == 20 and res.valid == res.decoded and res.stop_reason is None
    runner = runner_for(NB201)
    res = runner.generate(generator(NB201), t, 200, MetaTestConfig(data_names=("toy",), constrained_decoding=True))
    assert len(res.archs) == 200 and res.valid == res.decoded


# --------------------------------------------------------------------------- progress
class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_logs_a_line_every_interval_without_a_terminal():
    clock, out = _Clock(), io.StringIO()
    logger = logging.getLogger("test-progress")
    logger.handlers[:] = [logging.StreamHandler(out)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with Progress(500, "generate cifar10", unit="unique", rate_of="decoded", tty=False, logger=logger,
                  clock=clock) as p:
        clock.t = 4.0
        p.update(100, decoded=2_000, valid=150, unique=100)
        assert out.getvalue() == ""  # under 10 s: quiet
        clock.t = 10.0
        p.update(100, decoded=4_000, valid=300, unique=200)
        clock.t = 15.0
        p.update(10, decoded=4_200, valid=310, unique=210)
        clock.t = 20.5
        p.update(40, decoded=5_000, valid=390, unique=250)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == ("generate cifar10: 200/500 unique (4,000 decoded, 300 valid, 200 unique), "
                        "400.0 decoded/s, ETA 15s, 10s elapsed")
    assert lines[1].startswith("generate cifar10: 250/500 unique (5,000 decoded, 390 valid, 250 unique), "
                               "243.9 decoded/s, ETA 20s")


def test_progress_in_a_terminal_is_a_tqdm_bar_with_the_counts():
    stream = io.StringIO()
    with Progress(10, "generate toy", unit="unique", tty=True, stream=stream) as p:
        p.update(3, decoded=100, valid=7, unique=3)
    text = stream.getvalue()
    assert "generate toy" in text and "100 decoded, 7 valid, 3 unique" in text


def test_search_logs_progress_lines_without_a_terminal(monkeypatch):
    lines = []
    monkeypatch.setattr(Progress, "_show", lambda self: lines.append(self.line()))
    runner = runner_for(NB201)
    runner.generate(generator(NB201), target(), 100, MetaTestConfig(data_names=("toy",)))
    assert lines and "decoded" in lines[-1] and "valid" in lines[-1] and "ETA" in lines[-1]


def test_progress_lines_stay_out_of_the_original_log_file(tmp_path, capsys):
    from metad2a.log import setup_logging

    log_file = tmp_path / "meta_train_generator.log"
    logger = setup_logging(log_file)
    clock = _Clock()
    try:
        with Progress(10, "[train] Ep 1", unit="batch", tty=False, clock=clock) as p:
            clock.t = 11.0
            p.update(5)
        logger.info("train: loss 1.0")
    finally:
        setup_logging()  # drop the file handler
    assert log_file.read_text() == "train: loss 1.0\n"
    out = capsys.readouterr().out
    assert "[train] Ep 1: 5/10 batch" in out and "train: loss 1.0" in out
