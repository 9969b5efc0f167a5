"""``metad2a reproduce`` (docs/fidelity.md#reproduction): the protocols as data, the missing-file list,
and the whole command with --quick on synthetic files of the original formats, resumed after a kill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from metad2a import cli, reproduce
from metad2a.data.synthetic import write_raw_images
from metad2a.search_spaces import SEARCH_SPACES
from metad2a.search_spaces.nasbench201.synthetic import write_synthetic_nb201
from metad2a.search_spaces.nasbench201.synthetic import (
    write_synthetic_released_checkpoints as write_nb201_checkpoints,
)

REPO = Path(__file__).resolve().parents[1]
NB201 = SEARCH_SPACES["nasbench201"].reproduction
OFA = SEARCH_SPACES["ofa_mbv3"].reproduction
# the original README's NB201 table (issue #14): MetaD2A, trained searched architectures (%), GPU seconds
PAPER = {"cifar10": (94.37, 0.03, 69), "cifar100": (73.51, 0.00, 96), "mnist": (99.71, 0.08, 7),
         "svhn": (96.34, 0.37, 7), "aircraft": (58.43, 1.18, 10), "pets": (41.50, 4.39, 8)}
DIM = 16  # feature width of the synthetic files: small, so that pooled OFA sets of 100 classes stay cheap


# --------------------------------------------------------------------------- the protocols as data
def test_nb201_protocol_is_the_papers():
    assert [d.name for d in NB201.datasets] == list(PAPER)
    for d in NB201.datasets:
        assert (d.paper.mean, d.paper.pm, d.paper.search_seconds) == PAPER[d.name]
        cifar = d.name.startswith("cifar")
        assert d.num_gen_arch == (500 if cifar else 50) and d.quick_num_gen_arch < d.num_gen_arch
        info = SEARCH_SPACES["nasbench201"].dataset_info(d.name)
        assert (info.runs, info.top_n) == ((10, 30) if cifar else (1, 1))
        assert [s.args[:2] for s in d.steps] == [("--model", "generator"), ("--model", "predictor")]
        if cifar:
            assert "best of the top 30" in d.figure.label and d.figure.sources[0].keys[-1] == "best_of_top30_acc"
            assert d.blind.sources[0].keys[-1] == "top1_acc"
        else:
            assert "trained" in d.figure.label and d.figure.sources == d.blind.sources  # no oracle
            assert d.steps[1].quick_args == ("--epochs", "1")
    assert NB201.retrain is not None and (NB201.retrain.max_epoch, NB201.retrain.save_epoch) == (400, 20)


def test_ofa_protocol_has_no_published_table_and_no_retraining():
    assert [d.name for d in OFA.datasets] == ["cifar10", "cifar100", "aircraft100", "pets"]
    assert all(d.paper is None and d.num_gen_arch == 200 for d in OFA.datasets)
    assert OFA.retrain is None and "never published" in OFA.retrain_unavailable
    d = OFA.datasets[0]
    assert d.steps[1].command == "metad2a.search_spaces.ofa_mbv3.finetune:main" and d.steps[1].phase == "fine-tuning"
    assert any("MFLOPs" in m.label for m in d.extras)


@pytest.mark.parametrize("proto", [NB201, OFA], ids=["nb201", "ofa"])
def test_every_required_file_names_a_real_fetch_command(proto):
    files = [*proto.checkpoints, *proto.files, *(f for d in proto.datasets for f in d.files),
             *(proto.retrain.files if proto.retrain else ())]
    for f in files:
        if f.get.startswith("python get_files/"):
            assert (REPO / proto.folder / f.get.split()[1]).is_file(), f.get
        else:
            assert f.get.startswith("python -c \"from torchvision.datasets import"), f.get
    assert all(f.paths[0].startswith("results/") for f in proto.checkpoints)


# --------------------------------------------------------------------------- user errors, nothing written
def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_missing_files_are_listed_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "MetaD2A_nas_bench_201"
    (folder / "data").mkdir(parents=True)
    torch.save({}, folder / "data" / "cifar10bylabel.pt")  # one file is there: not listed
    monkeypatch.chdir(folder)
    before = _tree(tmp_path)
    assert cli.console_main(["reproduce", "nb201", "--gpu", "cpu"]) == 2
    err = capsys.readouterr().err
    assert _tree(tmp_path) == before  # nothing written
    assert err.startswith("error: ") and "nothing was started" in err
    assert "data/cifar10bylabel.pt" not in err
    for needed, get in (("results/generator/model/ckpt_400.pt", "python get_files/get_checkpoint.py"),
                        ("results/predictor/model/ckpt_max_corr.pt", "python get_files/get_predictor_checkpoint.py"),
                        ("data/nasbench201.pt", "python get_files/get_preprocessed_data.py"),
                        ("data/mnistbylabel.pt", "python get_files/get_preprocessed_data.py"),
                        ("data/raw-data/mnist/MNIST/raw", "python get_files/get_mnist.py"),
                        ("data/raw-data/aircraft/fgvc-aircraft-2013b", "python get_files/get_aircraft.py"),
                        ("data/raw-data/pets/train85.pth", "python get_files/get_pets.py"),
                        ("data/raw-data/svhn/train_32x32.mat", "SVHN('data/raw-data/svhn'")):
        line = next(i for i, ln in enumerate(err.splitlines()) if ln.strip().startswith(needed))
        assert get in err.splitlines()[line + 1], needed
    assert "nasbench201.pt  [cifar10, cifar100]" in err  # listed once, with the datasets needing it
    assert "meta_train" not in err  # no --retrain: the meta-training files are not needed

    # --only narrows the list; --retrain adds the meta-training files
    assert cli.console_main(["reproduce", "nb201", "--only", "cifar10", "--retrain"]) == 2
    err = capsys.readouterr().err
    assert "mnist" not in err and "svhn" not in err and "data/nasbench201.pt" in err
    assert "data/meta_train_tasks_predictor_idx.pt" in err and "[--retrain]" in err
    assert _tree(tmp_path) == before


def test_missing_packages_are_listed_too(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ofa" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    assert cli.console_main(["reproduce", "ofa", "--only", "pets"]) == 2
    err = capsys.readouterr().err
    assert "Python package 'ofa'  [every dataset]\n      fetch: pip install -e '.[ofa]'" in err
    assert "data/pets/train85.pth (or data/pets/oxford-iiit-pet" in err and "cifar10" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "ofa", "--retrain"], "--retrain is not offered for ofa: the OFA predictor database"),
    (["reproduce", "nb201", "--only", "cifar10,imagenet"], "--only imagenet: not in the nb201 table; choose among"),
    (["reproduce", "darts"], "metad2a reproduce darts: no such table; choose one of nb201, ofa"),
])
def test_user_errors_are_one_line(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.console_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not list(tmp_path.iterdir())


def test_manifest_paths_resolve_under_data_results_and_the_folder(tmp_path):
    lay = reproduce.Layout(tmp_path / "d" / "data", tmp_path / "elsewhere", tmp_path / "out")
    assert lay.resolve("data/x/y.pt") == tmp_path / "d" / "data" / "x" / "y.pt"
    assert lay.resolve("results/generator/model/a.pt") == tmp_path / "elsewhere" / "generator" / "model" / "a.pt"
    assert lay.resolve(".torch/ofa_nets/w") == tmp_path / "d" / ".torch" / "ofa_nets" / "w"


def test_sources_read_json_paths_and_run_archives(tmp_path):
    from metad2a.data.archive import write_archive
    from metad2a.search_spaces.reproduction import Measure, Source

    res = tmp_path / "meta_test" / "x"
    (res / "best_arch").mkdir(parents=True)
    (res / "best_arch" / "result.json").write_text(json.dumps(
        {"runs": [{"a": 1.0}, {"a": 3.0}, {"a": None}], "trained": {"acc": [2.0, 4.0]}}))
    for k, secs in ((1, 1.5), (2, 2.5), (10, 3.5)):
        write_archive(res / "generated_arch" / f"run_{k}.txt", secs, ["a"])
    v = {"data": "x"}
    s = reproduce.summarise(Measure("m", (Source("meta_test/{data}/best_arch/result.json", ("runs", "*", "a")),)),
                            tmp_path, v)
    assert (s["values"], s["mean"], s["n"], s["missing"]) == ([1.0, 3.0], 2.0, 2, 1) and s["ci95"] > 0
    assert reproduce.source_values(Source("meta_test/{data}/best_arch/result.json", ("trained", "acc", "1")),
                                   tmp_path, v) == [4.0]
    assert reproduce.source_values(Source("meta_test/{data}/generated_arch/run_*.txt", kind="archive"),
                                   tmp_path, v) == [1.5, 2.5, 3.5]  # run_10 last
    with pytest.raises(reproduce.DataFileError, match="no 'b' where the protocol reads b"):
        reproduce.source_values(Source("meta_test/{data}/best_arch/result.json", ("b",)), tmp_path, v)


# --------------------------------------------------------------------------- end to end on synthetic files
@pytest.fixture
def no_checksums(monkeypatch):
    """torchvision checks the md5 of the real CIFAR and SVHN files; synthetic ones cannot match."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(svhn, "check_integrity", lambda *a, **k: True)


@pytest.fixture
def nb201_folder(tmp_path, monkeypatch, no_checksums):
    folder = tmp_path / "MetaD2A_nas_bench_201"
    targets = {d.name: SEARCH_SPACES["nasbench201"].dataset_info(d.name).num_classes for d in NB201.datasets}
    write_synthetic_nb201(folder / "data", feature_dim=DIM, num_tasks=24, num_predictor_entries=80, targets=targets)
    for name in ("mnist", "svhn", "aircraft", "pets"):
        write_raw_images(folder / "data" / "raw-data" / name, name, train=8, test=4)
    write_nb201_checkpoints(folder / "results", feature_dim=DIM)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return folder


def _count_steps(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = cli.run

    def counting(argv, space_name):
        calls.append(list(argv))
        return real(argv, space_name)

    monkeypatch.setattr(cli, "run", counting)
    return calls


def _header(md: str, starts: str) -> str:
    return next(ln for ln in md.splitlines() if ln.startswith(starts))


@pytest.mark.slow
def test_nb201_quick_retrain_end_to_end_then_resume(nb201_folder, monkeypatch, capsys):
    """The whole table with --quick --retrain, killed and resumed. cifar100 runs with the released
    checkpoints only: a 2-epoch generator meta-trained on 24 synthetic tasks rarely decodes a valid
    cell, and each of its decoding batches pools 100 sets of 100 classes (minutes on a CPU)."""
    out = nb201_folder / "results" / "reproduction" / "nb201-quick"
    five = ",".join(n for n in PAPER if n != "cifar100")
    argv = ["reproduce", "nb201", "--gpu", "cpu", "--quick", "--retrain", "--only", five]
    calls = _count_steps(monkeypatch)

    # killed after the third dataset of the released column: its finished datasets stay done
    real_run_dataset = reproduce.run_dataset
    finished: list[str] = []

    def killed_after_three(run, column, d):
        if len(finished) == 3:
            raise KeyboardInterrupt
        rec = real_run_dataset(run, column, d)
        finished.append(d.name)
        return rec

    monkeypatch.setattr(reproduce, "run_dataset", killed_after_three)
    assert cli.console_main(argv) == 130
    assert "interrupted; finished datasets are kept" in capsys.readouterr().err
    assert finished == ["cifar10", "mnist", "svhn"]
    assert sorted(p.stem for p in (out / "done" / "released").glob("*.json")) == ["cifar10", "mnist", "svhn"]
    assert len(calls) == 2 + 6  # meta-training twice, then two steps per finished dataset
    assert all("--resume" in c and c[c.index("--max-epoch") + 1] == "2" for c in calls[:2])

    monkeypatch.setattr(reproduce, "run_dataset", real_run_dataset)
    calls.clear()
    assert cli.console_main(argv) == 0
    data_names = [c[c.index("--data-name") + 1] for c in calls]
    # meta-training is not redone, nor are the three finished datasets
    assert data_names == ["aircraft", "aircraft", "pets", "pets"] + [d for n in five.split(",") for d in (n, n)]
    retrained = [c for c in calls if c[c.index("--save-path") + 1] == str(out.relative_to(nb201_folder) / "retrained")]
    assert len(retrained) == 10 and all(c[c.index("--load-epoch") + 1] == "2" for c in retrained[::2])
    assert cli.console_main(["reproduce", "nb201", "--gpu", "cpu", "--quick", "--only", "cifar100"]) == 0
    capsys.readouterr()

    report = json.loads((out / "reproduction.json").read_text())
    md = (out / "reproduction.md").read_text()
    assert report["quick"] and report["protocol"].startswith("--quick: NOT the paper's protocol")
    assert "**--quick: this is NOT the paper's protocol.**" in md
    assert report["columns"] == ["released", "retrained"] and report["search_space"] == "nasbench201"
    assert [r["dataset"] for r in report["rows"]] == list(PAPER)
    for r in report["rows"]:
        name = r["dataset"]
        assert (r["paper"]["mean"], r["paper"]["pm"], r["paper"]["search_seconds"]) == PAPER[name]
        assert r["num_gen_arch"] == (40 if name.startswith("cifar") else 10)
        for column in ("released", "retrained"):
            rec = r[column]
            if column == "retrained" and name == "cifar100":
                assert rec is None
                continue
            result = json.loads((out / column / "meta_test" / name / "best_arch" / "result.json").read_text())
            if name.startswith("cifar"):
                best = [x["best_of_top30_acc"] for x in result["runs"]]
                top1 = [x["top1_acc"] for x in result["runs"]]
                assert len(best) == 10 and rec["figure"]["values"] == best and rec["blind"]["values"] == top1
                assert rec["figure"]["mean"] >= rec["blind"]["mean"]  # the oracle pick is never worse
                assert r["figure_label"].startswith("best of the top 30")
            else:
                accs = result["trained"]["x_test_acc"]
                assert len(accs) == 3 and rec["figure"]["values"] == rec["blind"]["values"] == accs
                assert result["trained"]["epochs"] == 1 and r["figure_label"].startswith("top-1 trained, 3 seeds")
            assert rec["figure"]["mean"] == pytest.approx(sum(rec["figure"]["values"]) / len(rec["figure"]["values"]))
            assert rec["difference"] == pytest.approx(rec["figure"]["mean"] - PAPER[name][0])
            assert rec["search_seconds"] > 0 and len(rec["search_seconds_parts"]) == 2
            assert "CPU" in rec["device"] and set(rec["wall_seconds"]) == {"generation", "ranking, table or training"}
    assert _header(md, "| Dataset | Protocol").split(" | ")[3:] == [
        "Paper", "Ours, released", "Ours − paper, released", "Ours, retrained", "Ours − paper, retrained |"]
    assert "| cifar10 | 10 run(s), 40 archs, top 30 | best of the top 30" in md and "| 94.37±0.03 | " in md
    assert "## Released checkpoints: details" in md and "## Retrained checkpoints: details" in md
    assert _header(md, "| Dataset | Ours |").split(" | ")[1:] == [
        "Ours", "Blind top-1 (no oracle)", "Search s (this device)", "Paper search s (GPU)", "Wall s: generation",
        "Wall s: ranking, table or training", "Device |"]
    cifar100 = json.loads((out / "done" / "released" / "cifar100.json").read_text())
    assert f"| cifar100 | {cifar100['figure']['mean']:.2f}±{cifar100['figure']['ci95']:.2f} | " in md
    # the released column read links of the released checkpoints; the user's results/ got nothing else
    assert os.path.samefile(out / "released" / "generator" / "model" / "ckpt_400.pt",
                            nb201_folder / "results" / "generator" / "model" / "ckpt_400.pt")
    assert sorted(p.name for p in (nb201_folder / "results").iterdir()) == ["generator", "predictor", "reproduction"]

    # everything asked for is done: a rerun runs no step and writes the same rows
    calls.clear()
    assert cli.console_main(argv) == 0 and calls == []
    again = json.loads((out / "reproduction.json").read_text())
    assert again["rows"] == report["rows"]


@pytest.fixture
def ofa_folder(tmp_path, monkeypatch, no_checksums):
    pytest.importorskip("ofa", reason="the fine-tuning needs the once-for-all package (pip install -e .[ofa])")
    from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet
    from metad2a.search_spaces.ofa_mbv3.synthetic import write_synthetic_ofa
    from metad2a.search_spaces.ofa_mbv3.synthetic import (
        write_synthetic_released_checkpoints as write_ofa_checkpoints,
    )

    folder = tmp_path / "MetaD2A_ofa"
    targets = {d.name: SEARCH_SPACES["ofa_mbv3"].dataset_info(d.name).num_classes for d in OFA.datasets}
    write_synthetic_ofa(folder / "data", feature_dim=DIM, rows_per_class=20, targets=targets)
    for name, root in (("cifar10", "cifar10"), ("cifar100", "cifar100"), ("aircraft100", "."), ("pets", "pets")):
        write_raw_images(folder / "data" / root, name, train=8, test=4)
    write_ofa_checkpoints(folder / "results", feature_dim=DIM)
    weights = folder / OFA_SUPERNET_TARGET  # a randomly initialised supernet in the released layout
    weights.parent.mkdir(parents=True)
    torch.save({"state_dict": build_supernet(seed=0).state_dict()}, weights)
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.slow
def test_ofa_quick_end_to_end(ofa_folder, monkeypatch, capsys):
    """Search and fine-tuning with --quick for cifar10 (10 search runs) and pets. The other two rows
    pool 100 sets of 100 classes per decoded graph (minutes on a CPU): the report marks them "not run"."""
    calls = _count_steps(monkeypatch)
    quick = ["reproduce", "ofa", "--gpu", "cpu", "--quick"]
    assert cli.console_main([*quick, "--only", "pets"]) == 0
    assert cli.console_main([*quick, "--only", "cifar10,pets"]) == 0  # pets is kept, cifar10 added
    assert [c[c.index("--data-name") + 1] for c in calls] == ["pets", "cifar10"]
    out = ofa_folder / "results" / "reproduction" / "ofa-quick"
    report = json.loads((out / "reproduction.json").read_text())
    md = (out / "reproduction.md").read_text()
    assert report["columns"] == ["released"] and [r["dataset"] for r in report["rows"]] == [
        "cifar10", "cifar100", "aircraft100", "pets"]
    rows = {r["dataset"]: r for r in report["rows"]}
    assert rows["cifar100"]["released"] is None and rows["aircraft100"]["released"] is None  # not in --only
    assert "| cifar100 | 10 run(s), 5 archs, top 1 | fine-tuned top-1, best epoch" in md and "not run" in md
    for name in ("cifar10", "pets"):
        rec = rows[name]["released"]
        summary = json.loads((out / "released" / "evaluation" / f"{name}-metaD2A-None-333" / "summary.json").read_text())
        assert summary["epochs"] == 1
        assert rec["figure"]["values"] == [summary["best"]["test_acc"]]
        assert rec["blind"]["values"] == [summary["last"]["test_acc"]]
        extras = {e["label"]: e["values"] for e in rec["extras"]}
        assert extras["MFLOPs (1000 classes, 224 px)"] == [summary["mflops_1000_classes_224"]]
        assert extras["MFLOPs as fine-tuned"] == [summary["mflops"]]
        assert set(rec["wall_seconds"]) == {"search", "fine-tuning"} and rec["search_seconds"] > 0
        assert rec["difference"] is None and rows[name]["paper"] is None
        runs = 10 if name == "cifar10" else 1
        assert len(list((out / "released" / "meta_test" / name / "5" / "generated_arch").glob("run_*.txt"))) == runs
    assert "Paper" not in _header(md, "| Dataset | Protocol") and "Paper" not in _header(md, "| Dataset | Ours |")
    assert "No published values: none: the original README publishes no table" in md
    assert "| Wall s: fine-tuning |" in md and "| MFLOPs (1000 classes, 224 px) |" in md


def test_link_or_copy_keeps_the_same_file_and_replaces_another(tmp_path, monkeypatch):
    from metad2a.files import link_or_copy

    src, dst = tmp_path / "a.pt", tmp_path / "col" / "model" / "a.pt"
    src.write_bytes(b"released")
    link_or_copy(src, dst)
    assert os.path.samefile(src, dst)
    src.unlink()
    src.write_bytes(b"another file")  # a new download: another inode, another size
    link_or_copy(src, dst)
    assert dst.read_bytes() == b"another file" and os.path.samefile(src, dst)

    def no_links(*a):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    other = tmp_path / "col" / "b.pt"
    link_or_copy(src, other)  # another file system: a copy with the same size and time, kept next time
    assert other.read_bytes() == b"another file" and not os.path.samefile(src, other)
    stamp = other.stat().st_mtime_ns
    link_or_copy(src, other)
    assert other.stat().st_mtime_ns == stamp and not list(other.parent.glob(".*tmp"))


def test_device_name_names_the_cpu():
    from metad2a.runtime import device_name

    name = device_name(torch.device("cpu"))
    assert name.endswith(f"(CPU, {torch.get_num_threads()} threads)") and len(name) > len("(CPU, 1 threads)")
