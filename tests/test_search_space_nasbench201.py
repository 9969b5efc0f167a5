import pytest
import torch

from metad2a.checkpoint import load_data
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.dag import make_graph
from metad2a.search_spaces.nasbench201 import cell as nb
from tests.conftest import shared_file


def test_op_order_is_the_benchmarks():
    assert nb.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert get_search_space("nasbench201").nvt == 7 and get_search_space("nasbench201").max_n == 8


def test_exhaustive_round_trip_all_15625_cells():
    strs = list(nb.all_arch_strs())
    assert len(strs) == len(set(strs)) == nb.NUM_ARCHS == 15625
    batch_types = []
    for s in strs:
        g = nb.arch_str_to_igraph(s)
        assert g.get_edgelist() == list(nb.CANONICAL_EDGES)
        assert nb.is_valid(g)
        assert nb.igraph_to_arch_str(g) == s
        t = nb.arch_str_to_types(s)
        assert nb.types_to_arch_str(t) == s
        batch_types.append(t)
    # -> tensors -> back
    batch = GraphBatch.from_lists(batch_types, [nb.CANONICAL_EDGES] * len(strs), nb.MAX_N)
    assert [nb.types_to_arch_str(t) for t, _ in batch.to_lists()] == strs
    assert bool(batch.dag_valid_mask(0, 1).all())


def test_matrix_rule_gives_canonical_graph():
    # row i = [type, flags...]; the flags of the canonical topology (docs/fidelity.md#nb201-encoding)
    rows = [[0], [2, 1], [3, 0, 0], [4, 0, 1, 0], [5, 0, 0, 0, 0], [6, 0, 1, 0, 0, 0],
            [2, 0, 0, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 1]]
    g = nb.matrix_to_igraph(rows)
    assert g.get_edgelist() == list(nb.CANONICAL_EDGES)
    assert nb.matrix_to_igraph(str(rows)).get_edgelist() == list(nb.CANONICAL_EDGES)
    assert nb.igraph_to_arch_str(g) == nb.ops_to_arch_str([nb.OPS[t - 2] for t in [2, 3, 4, 5, 6, 2]])


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 '+'-separated nodes"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "expected '~0'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "must have 2 input"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with '|'"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form"),
    ],
)
def test_invalid_strings_say_what_is_wrong(bad, needle):
    with pytest.raises(nb.ArchStringError, match=needle.replace("|", r"\|").replace("+", r"\+")):
        nb.arch_str_to_igraph(bad)


def test_validity_rules_of_generated_graphs():
    good = [0, 5, 3, 2, 6, 4, 5, 1]
    chain = [(i, i + 1) for i in range(7)]
    assert nb.is_valid(make_graph(good, chain))
    # edges of a generated graph do not matter beyond validity
    assert nb.igraph_to_arch_str(make_graph(good, chain)) == nb.types_to_arch_str(good)
    assert not nb.is_valid(make_graph(good[:7], chain[:6]))  # 7 vertices
    assert not nb.is_valid(make_graph([0, 5, 0, 2, 6, 4, 5, 1], chain))  # second start
    assert not nb.is_valid(make_graph([0, 5, 1, 2, 6, 4, 5, 1], chain))  # end in the middle
    assert not nb.is_valid(make_graph(good, chain[:3] + chain[4:]))  # vertex without out-edge
    assert not nb.is_valid(make_graph(good, chain + [(7, 3)]))  # cycle
    assert nb.igraph_to_arch_str(make_graph(good, chain[:3] + chain[4:])) is None


def test_agrees_with_every_real_graph_of_the_original_database():
    data = load_data(shared_file("metad2a/meta_train_tasks_predictor.pt"))
    graphs, strs = data["g"], data["str"]
    assert len(graphs) == len(strs) == 4630
    for g, s in zip(graphs, strs):
        assert nb.igraph_to_arch_str(g) == s
        assert g.get_edgelist() == list(nb.CANONICAL_EDGES)
        assert g.vs["type"] == nb.arch_str_to_types(s)
    # the one-hot type tensors stored beside them agree too
    x = torch.stack(data["x"][:200])
    assert torch.equal(x.argmax(-1), torch.tensor([nb.arch_str_to_types(s) for s in strs[:200]]))
