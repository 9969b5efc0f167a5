"""Readers/writers of the original files, the meta-train database, the accuracy table, archives."""

import pytest
import torch

from metad2a.checkpoint import save_data
from metad2a.cli import data_names
from metad2a.data.archive import read_archive, write_archive
from metad2a.data.formats import (
    MetaTrainFile,
    read_bylabel,
    read_meta_train,
    write_bylabel,
    write_meta_train,
)
from metad2a.data.meta_train import MetaTrainDatabase
from metad2a.data.sets import sample_batch
from metad2a.errors import DataFileError
from metad2a.parser import build_parser
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201.table import read_nasbench201_pt, read_nb201_csv
from tests.conftest import shared_file


def test_bylabel_round_trip_and_errors(tmp_path):
    feats = [torch.randn(5, 3), torch.randn(7, 3)]
    write_bylabel(feats, tmp_path / "a.pt")
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert sorted(raw) == [0, 1] and isinstance(raw[0], list) and torch.equal(raw[1][0], feats[1])
    assert all(torch.equal(a, b) for a, b in zip(read_bylabel(tmp_path / "a.pt"), feats))
    save_data({1: [torch.randn(5, 3)]}, tmp_path / "b.pt")
    with pytest.raises(DataFileError, match="class keys must be 0..0"):
        read_bylabel(tmp_path / "b.pt")
    save_data({0: [torch.randn(5, 3)], 1: [torch.randn(5, 4)]}, tmp_path / "c.pt")
    with pytest.raises(DataFileError, match="different feature widths"):
        read_bylabel(tmp_path / "c.pt")
    with pytest.raises(DataFileError, match="file not found; get it"):
        read_bylabel(tmp_path / "none.pt", hint="get it")


def test_sampling_draws_distinct_rows_per_class():
    feats = [torch.arange(30.0)[:, None] + 100 * c for c in range(3)]
    x = sample_batch(feats, [[2, 0], [1, 2]], num_sample=10)
    assert x.shape == (2, 20, 1)
    for b, classes in enumerate([[2, 0], [1, 2]]):
        for j, c in enumerate(classes):
            rows = x[b, 10 * j : 10 * j + 10, 0]
            assert len(set(rows.tolist())) == 10 and all(100 * c <= r < 100 * c + 30 for r in rows.tolist())
    short = [torch.arange(12.0)[:, None]]  # classes with fewer rows than the widest one
    x = sample_batch(short + feats, [[0, 1]], num_sample=12)
    assert sorted(x[0, :12, 0].tolist()) == list(range(12))


def test_meta_train_file_accepts_graph_or_g(tmp_path):
    graphs = [nb.arch_str_to_igraph(s) for s in list(nb.all_arch_strs())[:3]]
    write_meta_train(MetaTrainFile([1.0, 2.0, 3.0], [0, 1, 2], graphs, [2, 0, 1]), tmp_path / "m.pt", tmp_path / "i.pt")
    mt = read_meta_train(tmp_path / "m.pt", tmp_path / "i.pt")
    assert mt.perm == [2, 0, 1] and [g.vs["type"] for g in mt.graphs] == [g.vs["type"] for g in graphs]
    save_data({"acc": [1.0], "task": [0], "g": graphs[:1]}, tmp_path / "g.pt")
    save_data(torch.tensor([0]), tmp_path / "gi.pt")
    assert len(read_meta_train(tmp_path / "g.pt", tmp_path / "gi.pt").graphs) == 1
    save_data({"acc": [1.0], "task": [0]}, tmp_path / "bad.pt")
    with pytest.raises(DataFileError, match=r"missing key\(s\) \['graph'\]"):
        read_meta_train(tmp_path / "bad.pt", tmp_path / "gi.pt")
    save_data(torch.tensor([0, 0]), tmp_path / "badidx.pt")
    with pytest.raises(DataFileError, match="not a permutation"):
        read_meta_train(tmp_path / "g.pt", tmp_path / "badidx.pt")


def test_real_predictor_database_split_and_normalisation():
    base = "metad2a/meta_train_tasks_predictor"
    mt = read_meta_train(shared_file(base + ".pt"), shared_file(base + "_idx.pt"))
    tasks = torch.load(shared_file("metad2a/meta_train_task_lst.pt"), weights_only=False)
    feats = [torch.zeros(20, 2)] * 600  # only the class structure matters here
    db = MetaTrainDatabase(mt, tasks, feats, max_n=8, num_sample=20, class_offset=1)
    assert len(db.split["valid"]) == 400 and len(db.split["train"]) == 4230
    assert db.mean == pytest.approx(71.5715, abs=1e-3) and db.std == pytest.approx(6.6932, abs=1e-3)
    assert {len(c) for c in db.task_classes} == {20} and min(min(c) for c in db.task_classes) >= 0
    batch = next(db.batches("valid", 32, shuffle=False))
    assert batch.x.shape == (32, 400, 2) and len(batch.graphs) == 32
    torch.testing.assert_close(batch.y, ((batch.acc - db.mean) / db.std) / 100)


def test_real_nb201_table_facts():
    table = read_nb201_csv(shared_file("nb201/nb201_merged.csv.gz"))
    c10, c100 = table.acc["cifar10"], table.acc["cifar100"]
    assert len(c10) == len(c100) == 15625 and set(c10) == set(nb.all_arch_strs())
    assert sum(v == 10.0 for v in c10.values()) == 341
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert max(c100.values()) == c100[best] == 73.5133 and c10[best] == 94.3633
    assert max(c10.values()) == 94.3733
    assert sum(c10.values()) / len(c10) == pytest.approx(87.06, abs=0.005)


def test_nasbench201_pt_reader(tmp_path):
    strs = list(nb.all_arch_strs())[:4]
    save_data({"arch": {"str": strs}, "test-acc": {"cifar10": [1.0, 2.0, 3.0, 4.0]}}, tmp_path / "n.pt")
    t = read_nasbench201_pt(tmp_path / "n.pt")
    assert t.lookup("cifar10", strs[2]) == 3.0 and t.lookup("cifar10", "x") is None and not t.has("cifar100")
    save_data({"arch": {}}, tmp_path / "bad.pt")
    with pytest.raises(DataFileError, match=r"expected keys \['arch'\]\['str'\]"):
        read_nasbench201_pt(tmp_path / "bad.pt")


def test_archive_round_trip(tmp_path):
    archs = list(nb.all_arch_strs())[:5]
    write_archive(tmp_path / "run_1.txt", 1.234, archs)
    assert (tmp_path / "run_1.txt").read_text().splitlines()[0] == "elapsed time:   1.23s "
    assert read_archive(tmp_path / "run_1.txt") == (1.23, archs)
    (tmp_path / "bad.txt").write_text("nope\n")
    with pytest.raises(DataFileError, match="first line must be"):
        read_archive(tmp_path / "bad.txt")


def test_data_name_all_keeps_the_original_orders():
    space = get_search_space("nasbench201")
    p = build_parser(space)
    g = data_names(p.parse_args(["--model", "generator", "--data-name", "all"]), space)
    q = data_names(p.parse_args(["--model", "predictor", "--data-name", "all"]), space)
    assert g == ("cifar100", "cifar10", "mnist", "svhn", "aircraft", "pets")
    assert q == ("cifar10", "cifar100", "mnist", "svhn", "aircraft", "pets")


def test_top_k_per_task_keeps_each_tasks_best_entries():
    from metad2a.data.formats import MetaTrainFile, top_k_per_task

    mt = MetaTrainFile(acc=[50.0, 70.0, 60.0, 70.0, 40.0], task=[2, 0, 2, 0, 1], graphs=list("abcde"), perm=[0] * 5)
    best = top_k_per_task(mt, 1, seed=0)
    assert (best.task, best.acc, best.graphs) == ([0, 1, 2], [70.0, 40.0, 60.0], ["b", "e", "c"])  # tie: file order
    two = top_k_per_task(mt, 2, seed=0)
    assert (two.task, two.graphs) == ([0, 0, 1, 2, 2], ["b", "d", "e", "c", "a"])
    assert sorted(two.perm) == list(range(5)) and two.perm == top_k_per_task(mt, 2, seed=0).perm
