import itertools
import random

import pytest
import torch

from metad2a.errors import MetaD2AError
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.dag import make_graph
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3.oracle import load_ofa_accuracy_predictor, predict_accuracy
from metad2a.search_spaces.ofa_mbv3.space import OFA_MBV3
from tests.conftest import shared_file

LARGEST = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
SMALLEST = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}


def _random_archs(n, seed=0):
    rng = random.Random(seed)
    return [ofa.random_arch_dict(rng) for _ in range(n)]


def test_constants_and_registry():
    assert (ofa.NVT, ofa.MAX_N, ofa.NVT_FLAG, ofa.NUM_LAYERS) == (29, 22, 27, 20)
    space = get_search_space("ofa_mbv3")
    assert space is OFA_MBV3
    assert (space.nvt, space.max_n, space.start_type, space.end_type) == (29, 22, 0, 1)
    assert space.nvt - space.nvt_flag_offset == 27 and space.default_num_gen_arch == 200


def test_type_table_matches_the_documented_formula():
    assert len(ofa.LAYER_TYPE) == 27
    for d, k, e in itertools.product((2, 3, 4), (3, 5, 7), (3, 4, 6)):
        t = 2 + 9 * (d - 2) + 3 * (3, 5, 7).index(k) + (3, 4, 6).index(e)
        assert ofa.LAYER_TYPE[(d, k, e)] == t
        assert ofa.TYPE_LAYER[t] == (d, k, e)
    assert sorted(ofa.LAYER_TYPE.values()) == list(range(2, 29))
    # one hand-checked encoding: stage depths 2,3,4,2,3; slot 0 = (d2,k7,e4) -> 2+0+6+1 = 9
    a = {"ks": [7] + [3] * 19, "e": [4] + [3] * 19, "d": [2, 3, 4, 2, 3]}
    expected = [0, 9, 2, 2, 2] + [11] * 4 + [20] * 4 + [2] * 4 + [11] * 4 + [1]
    assert ofa.arch_dict_to_types(a) == expected


def test_random_dict_round_trips():
    archs = _random_archs(2000)
    for a in archs:
        types = ofa.arch_dict_to_types(a)
        assert len(types) == 22 and types[0] == 0 and types[-1] == 1
        assert all(2 <= t <= 28 for t in types[1:-1])
        assert ofa.types_to_arch_dict(types) == a
        g = ofa.arch_dict_to_igraph(a)
        assert g.get_edgelist() == list(ofa.CHAIN_EDGES)
        assert ofa.is_valid(g)
        assert ofa.igraph_to_arch_dict(g) == a
        s = ofa.arch_dict_to_str(a)
        assert s == str(a) and ofa.arch_str_to_dict(s) == a
    # -> tensors -> back, the generator's path
    types = [ofa.arch_dict_to_types(a) for a in archs[:500]]
    batch = GraphBatch.from_lists(types, [ofa.CHAIN_EDGES] * 500, 22)
    assert bool(batch.dag_valid_mask(0, 1).all())
    assert [OFA_MBV3.arch_from_types(t) for t, _ in batch.to_lists()] == archs[:500]


def test_sampler_is_uniform_like_ofa():
    archs = _random_archs(2000, seed=1)
    ks = [k for a in archs for k in a["ks"]]
    ds = [d for a in archs for d in a["d"]]
    for v in ofa.KS:
        assert abs(ks.count(v) / len(ks) - 1 / 3) < 0.02
    for v in ofa.DEPTHS:
        assert abs(ds.count(v) / len(ds) - 1 / 3) < 0.03
    assert ofa.random_arch_dict(random.Random(5)) == ofa.random_arch_dict(random.Random(5))


def test_arch_key_is_canonical():
    space = OFA_MBV3
    a = _random_archs(1)[0]
    # other key order, tuples, and the 'wid': None of OFA's sample_active_subnet
    copy = {"d": tuple(a["d"]), "e": list(a["e"]), "ks": list(a["ks"]), "wid": None}
    assert space.arch_key(copy) == space.arch_key(a) == ofa.arch_dict_to_str(a)
    assert space.arch_key(copy).startswith("{'ks': [")
    assert space.arch_types(copy) == ofa.arch_dict_to_types(a)
    assert list(space.arch_edges(a)) == [(i, i + 1) for i in range(21)]
    assert space.igraph_to_arch(space.arch_to_igraph(copy)) == a
    other = dict(a, ks=list(a["ks"]))
    other["ks"][0] = 3 if a["ks"][0] != 3 else 5
    assert space.arch_key(other) != space.arch_key(a)


def test_per_stage_depth_rule_and_validity():
    a = {"ks": [5] * 20, "e": [4] * 20, "d": [2, 3, 4, 2, 3]}
    types = ofa.arch_dict_to_types(a)
    chain = list(ofa.CHAIN_EDGES)
    assert ofa.is_valid(make_graph(types, chain))

    mixed = list(types)
    mixed[3] = ofa.LAYER_TYPE[(3, 5, 4)]  # stage 0 slot 2 says depth 3, the others depth 2
    assert not ofa.is_valid(make_graph(mixed, chain))
    assert ofa.types_to_arch_dict(mixed) is None
    assert ofa.igraph_to_arch_dict(make_graph(mixed, chain)) is None

    whole = list(types)
    whole[1:5] = [ofa.LAYER_TYPE[(4, 3, 6)]] * 4  # the whole stage switched: valid, new depth
    assert ofa.igraph_to_arch_dict(make_graph(whole, chain))["d"] == [4, 3, 4, 2, 3]

    for bad_type in (0, 1):  # start / end type mid-chain
        t = list(types)
        t[10] = bad_type
        assert not ofa.is_valid(make_graph(t, chain))
        assert ofa.types_to_arch_dict(t) is None
    t = list(types)
    t[10] = 29  # unknown type
    assert ofa.types_to_arch_dict(t) is None

    assert not ofa.is_valid(make_graph(types[:20] + [1], chain[:20]))  # 21 vertices
    assert not ofa.is_valid(make_graph(types, chain[:7] + chain[8:]))  # missing chain edge 7->8
    assert not ofa.is_valid(make_graph(types, chain + [(15, 4)]))  # cycle
    # beyond validity, edges of generated graphs do not matter for the dict (docs/fidelity.md#ofa-encoding)
    extra = make_graph(types, chain + [(0, 5), (3, 17), (12, 21)])
    assert ofa.is_valid(extra) and ofa.igraph_to_arch_dict(extra) == a


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"ks": [3] * 20, "e": [3] * 20}, r"lacks key\(s\) 'd'"),
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, r"arch\['ks'\] must have 20 entries, got 19"),
        ({"ks": [3] * 20, "e": [3, 3, 3, 5] + [3] * 16, "d": [2] * 5},
         r"arch\['e'\]\[3\] = 5 is not one of \[3, 4, 6\]"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2, 2, 1, 2, 2]},
         r"arch\['d'\]\[2\] = 1 is not one of \[2, 3, 4\]"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2.0] * 5}, r"arch\['d'\]\[0\] = 2.0 is not one of"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "w": 1}, "unknown key"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "wid": [1.2]}, "no width choice"),
        ({"ks": "3" * 20, "e": [3] * 20, "d": [2] * 5}, r"arch\['ks'\] must be a list of 20 ints"),
        ([3] * 45, "must be a dict"),
    ],
)
def test_invalid_dicts_say_what_is_wrong(bad, needle):
    with pytest.raises(ofa.ArchDictError, match=needle) as info:
        ofa.arch_dict_to_igraph(bad)
    assert isinstance(info.value, MetaD2AError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["{'ks': [3]", "__import__('os').getcwd()", "[1, 2]", "{'ks': [3]*20}"])
def test_invalid_strings_are_rejected_without_eval(bad):
    with pytest.raises(ofa.ArchDictError):
        ofa.arch_str_to_dict(bad)


def test_predictor_input_encoding():
    x = ofa.arch_dict_to_ofa_predictor_input(LARGEST)
    assert len(x) == 128 and x[:60] == [0.0, 0.0, 1.0] * 20 and x[60:120] == [0.0, 0.0, 1.0] * 20
    assert x[120:] == [0, 0, 0, 0, 0, 0, 0, 1]  # (224 - 112) // 16 = 7
    assert ofa.arch_dict_to_ofa_predictor_input(LARGEST, 160)[120:] == [0, 0, 0, 1, 0, 0, 0, 0]
    a = {"ks": [3, 5, 7, 7] * 5, "e": [4, 6, 3, 3] * 5, "d": [2, 3, 4, 2, 3]}
    x = ofa.arch_dict_to_ofa_predictor_input(a)
    ks = [x[3 * i: 3 * i + 3] for i in range(20)]
    es = [x[60 + 3 * i: 63 + 3 * i] for i in range(20)]
    assert ks[:4] == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]  # stage depth 2: slots 2, 3 zero
    assert es[4:8] == [[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]]  # depth 3
    assert ks[8:12] == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]  # depth 4
    assert sum(x[:60]) == sum(x[60:120]) == 2 + 3 + 4 + 2 + 3
    with pytest.raises(ofa.ArchDictError, match="resolution 240"):
        ofa.arch_dict_to_ofa_predictor_input(LARGEST, 240)


def test_ofa_accuracy_predictor_oracle():
    path = shared_file("ofa/ofa_mbv3_acc_predictor.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state) == [f"{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    model = load_ofa_accuracy_predictor(path)
    largest, smallest = predict_accuracy(model, [LARGEST, SMALLEST])
    assert abs(largest - 0.8359) < 0.002 and abs(largest - 0.836) < 0.005  # docs/data.md#ofa-acc-predictor: 0.836
    assert abs(smallest - 0.7774) < 0.002
    assert predict_accuracy(model, [LARGEST], resolution=160)[0] < largest
    # unused slots beyond the stage depth do not change the prediction
    a = {"ks": [7] * 20, "e": [6] * 20, "d": [2] * 5}
    b = {"ks": [7, 7, 3, 3] * 5, "e": [6, 6, 4, 3] * 5, "d": [2] * 5}
    assert predict_accuracy(model, [a]) == predict_accuracy(model, [b])
    accs = predict_accuracy(model, _random_archs(200))
    assert len(accs) == 200 and all(0.74 < v < 0.85 for v in accs)
    assert min(accs) < largest and max(accs) < largest
