"""Issue 10, security and input checks: no code runs from a data file, no path escapes the data and
save folders, and every bad input is a one-line error (exit status 2) naming the problem and the fix.

Everything runs ``main.py``'s ``main`` in this process on a tiny synthetic NB201 data folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import igraph
import pytest
import torch

from metad2a import paths
from metad2a.checkpoint import (
    TRANSFORM_GLOBALS,
    load_data,
    read_state_dict,
    read_training_state,
    save_checkpoint,
    save_data,
    sidecar_path,
)
from metad2a.data.archive import write_archive
from metad2a.data.formats import read_bylabel, read_task_list, write_bylabel
from metad2a.errors import CheckpointError, DataFileError
from metad2a.models.factory import build_model
from metad2a.search_spaces.nasbench201 import cell as nb
from tests.conftest import one_line_error


class Payload:
    """A pickle that creates ``marker`` when it is loaded (``os.system`` on unpickling)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def work(tiny_nb201) -> Path:
    return tiny_nb201


def _payload_works(path: Path, marker: Path) -> None:
    """The payload file really runs code when loaded the unsafe way (so the tests below can fail)."""
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


# --------------------------------------------------------------------------- 1. pickled code
def _poison(data: Path, name: str, marker: Path) -> None:
    """Put a code-running object into one of the original data files, keeping its layout."""
    path = data / name
    if name == paths.META_TRAIN_TASK_LST:
        tasks = read_task_list(path)
        torch.save([*tasks[:-1], [Payload(marker)]], path)
    elif name.endswith("_idx.pt"):
        torch.save([Payload(marker)], path)
    else:
        obj = load_data(path)
        obj["graph"][0] = Payload(marker)
        torch.save(obj, path)


@pytest.mark.parametrize("name,model", [
    (paths.META_TRAIN_TASK_LST, "predictor"),
    ("meta_train_tasks_predictor.pt", "predictor"),
    ("meta_train_tasks_generator.pt", "generator"),
    ("meta_train_tasks_predictor_idx.pt", "predictor"),
    ("meta_train_tasks_generator_idx.pt", "generator"),
])
def test_pickled_code_in_meta_train_files_never_runs(work, nb201_main, name, model):
    marker = work / "pwned"
    _poison(work / "data", name, marker)
    _payload_works(work / "data" / name, marker)
    err = one_line_error(nb201_main("--model", model, "--max-epoch", "1"))
    assert not marker.exists()
    assert name in err and "posix.system" in err and "not loaded" in err
    assert "weights_only" not in err


def _predictor_search_inputs(work: Path, archs: list[str]) -> None:
    model = build_model("predictor", nvt=nb.NVT, max_n=nb.MAX_N, hs=8, nz=8, feature_dim=8, num_sample=5)
    save_checkpoint(model, paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt",
                    {"model": "predictor", "hs": 8, "nz": 8})
    test_dir = paths.meta_test_dir(work / "results", "cifar10")
    for k in range(1, 11):
        write_archive(paths.generated_arch_file(test_dir, k), 1.0, archs)


def test_pickled_code_in_the_nb201_table_never_runs(work, nb201_main):
    archs = list(nb.all_arch_strs())[:5]
    _predictor_search_inputs(work, archs)
    marker = work / "pwned"
    table = work / "data" / "nasbench201.pt"
    torch.save({"arch": {"str": archs, "igraph": [nb.arch_str_to_igraph(a) for a in archs]},
                "test-acc": {"cifar10": [Payload(marker)] * 5}}, table)
    _payload_works(table, marker)
    err = one_line_error(nb201_main("--model", "predictor", "--test", "--data-name", "cifar10"))
    assert not marker.exists() and "nasbench201.pt" in err and "posix.system" in err
    assert not (work / "results/meta_test/cifar10/best_arch/result.json").exists()


@pytest.mark.parametrize("what", ["features", "checkpoint", "resume_state"])
def test_pickled_code_in_tensor_files_never_runs_and_torch_advice_is_not_repeated(work, nb201_main, what):
    marker = work / "pwned"
    if what == "features":
        path = work / "data" / "minebylabel.pt"
        torch.save({0: [torch.zeros(6, 8)], 1: [Payload(marker)], 2: [torch.zeros(6, 8)]}, path)
        argv = ("--model", "generator", "--test", "--data-name", "mine", "--load-epoch", "1")
        save_checkpoint(build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5),
                        paths.ckpt(work / "results", "generator", 1))
    elif what == "checkpoint":
        path = paths.ckpt(work / "results", "generator", 1)
        path.parent.mkdir(parents=True)
        torch.save({"fc1.weight": torch.zeros(2), "x": Payload(marker)}, path)
        argv = ("--model", "generator", "--test", "--data-name", "mine", "--load-epoch", "1")
    else:
        assert nb201_main("--model", "generator", "--max-epoch", "1")[0] == 0
        path = paths.model_dir(work / "results", "generator") / "resume_state.pt"
        torch.save({**read_training_state(path), "rng": Payload(marker)}, path)
        argv = ("--model", "generator", "--max-epoch", "2", "--resume")
    _payload_works(path, marker)
    err = one_line_error(nb201_main(*argv))
    assert not marker.exists() and path.name in err and "posix.system" in err
    # case 14: the refusal says what happened and never repeats torch's advice to disable the check
    assert "not loaded" in err and "weights_only" not in err and "truncated" not in err


def test_pickled_code_in_ofa_and_pets_pickles_never_runs(tmp_path):
    from metad2a.data.image_sources import build_source
    from metad2a.search_spaces.ofa_mbv3.collected_database import read_collected_database

    marker = tmp_path / "pwned"
    db = tmp_path / "collected_database.pt"
    torch.save([{"top1": 70.0, "net": {}, "class": torch.tensor([0, 1]), "test_transform": Payload(marker)}], db)
    with pytest.raises(DataFileError, match="posix.system") as e:
        read_collected_database(db)
    assert "\n" not in str(e.value)
    pets = tmp_path / "raw-data" / "pets"
    pets.mkdir(parents=True)
    torch.save([(Payload(marker), 0)], pets / "train85.pth")
    with pytest.raises(DataFileError, match="posix.system"):
        build_source("pets", tmp_path)
    assert not marker.exists()


def test_restricted_loader_admits_exactly_the_formats_classes(tmp_path):
    """igraph graphs, numpy values and tensors load; a torchvision transform only where the format has one."""
    import numpy as np
    from torchvision import transforms

    g = nb.arch_str_to_igraph(next(nb.all_arch_strs()))
    torch.save({"graph": [g], "acc": [np.float64(1.5)], "m": [np.zeros((2, 2))], "t": torch.arange(3),
                "s": {1, 2}}, tmp_path / "a.pt")
    a = load_data(tmp_path / "a.pt")
    assert isinstance(a["graph"][0], igraph.Graph) and a["graph"][0].vcount() == g.vcount()
    assert a["acc"][0] == 1.5 and a["m"][0].shape == (2, 2) and a["t"].tolist() == [0, 1, 2] and a["s"] == {1, 2}
    torch.save([transforms.Compose([transforms.Resize(256), transforms.ToTensor()])], tmp_path / "t.pt")
    with pytest.raises(DataFileError, match="torchvision.transforms.transforms.Compose"):
        load_data(tmp_path / "t.pt")
    assert len(load_data(tmp_path / "t.pt", allow=TRANSFORM_GLOBALS)[0].transforms) == 2


# --------------------------------------------------------------------------- 2. --data-name is a name
@pytest.mark.parametrize("name", ["../../x", "/abs/y", "a/b", "..", "x..y"])
def test_data_name_must_not_be_a_path(work, nb201_main, name):
    before = sorted(p for p in work.rglob("*"))
    err = one_line_error(nb201_main("--model", "generator", "--test", "--data-name", name))
    assert "is not a dataset name" in err and "--data-name NAME" in err
    assert sorted(p for p in work.rglob("*")) == before  # nothing read from or written outside (or inside)


# --------------------------------------------------------------------------- 3. NaN / Inf features
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_when_loaded(work, nb201_main, bad):
    feats = read_bylabel(work / "data" / "minebylabel.pt")
    feats[1][4, 2] = bad
    write_bylabel(feats, work / "data" / "minebylabel.pt")
    save_checkpoint(build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5),
                    paths.ckpt(work / "results", "generator", 1))
    err = one_line_error(nb201_main("--model", "generator", "--test", "--data-name", "mine", "--load-epoch", "1"))
    assert "minebylabel.pt: class 1 holds 1 NaN or infinite value(s) (first in row 4)" in err
    feats = read_bylabel(work / "data" / "imgnet32bylabel.pt")  # meta-training features: the same check
    feats[0][0, 0] = bad
    write_bylabel(feats, work / "data" / "imgnet32bylabel.pt")
    assert "imgnet32bylabel.pt: class 0 holds" in one_line_error(nb201_main("--model", "generator", "--save-path", "r2"))


def test_json_is_strict_everywhere(tmp_path):
    from metad2a.files import append_text, to_json, write_json
    from metad2a.log import append_jsonl

    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, float("inf"), -float("inf")], "z": 2.5})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [1.0, None, None], "z": 2.5}
    append_jsonl(tmp_path / "r.jsonl", {"corr": float("nan")})
    append_text(tmp_path / "r.jsonl", to_json({"corr": 0.5}) + "\n")
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(ln, parse_constant=pytest.fail) for ln in lines] == [{"corr": None}, {"corr": 0.5}]


def test_json_is_written_only_through_files_py():
    """Every JSON output of the package goes through files.to_json (strict): no other json.dumps."""
    pkg = Path(__file__).resolve().parents[1] / "metad2a"
    hits = [f"{p.relative_to(pkg)}:{i}" for p in pkg.rglob("*.py") if p.name != "files.py"
            for i, ln in enumerate(p.read_text().splitlines(), 1) if "json.dump" in ln]
    assert not hits, hits


# --------------------------------------------------------------------------- 4. NaN targets
@pytest.mark.parametrize("acc", [float("nan"), float("inf"), "74.5", None])
def test_non_finite_or_non_numeric_accuracy_is_refused_when_loaded(work, nb201_main, acc):
    path = work / "data" / "meta_train_tasks_predictor.pt"
    obj = load_data(path)
    obj["acc"][3] = acc
    save_data(obj, path)
    err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "1"))
    assert "meta_train_tasks_predictor.pt: entry 3 has accuracy" in err and "finite number" in err
    assert not (work / "results/predictor/model").exists() or not list((work / "results/predictor/model").iterdir())


# --------------------------------------------------------------------------- 8. --num-gen-arch
def test_num_gen_arch_above_the_spaces_architectures_is_refused(work, nb201_main):
    err = one_line_error(nb201_main("--model", "generator", "--test", "--data-name", "mine", "--num-gen-arch", "15626"))
    assert "--num-gen-arch 15626 exceeds the 15,625 distinct architectures of nasbench201" in err
    assert "--num-gen-arch 15625 or fewer" in err


# --------------------------------------------------------------------------- 9-10. malformed data files
def _edit_bylabel(path: Path, change) -> None:
    obj = torch.load(path, weights_only=True)
    change(obj)
    torch.save(obj, path)


@pytest.mark.parametrize("change,expected", [
    (lambda o: o.__setitem__(1, []), "class 1 holds an empty list"),
    (lambda o: o.clear(), "holds no classes (an empty dict)"),
])
def test_malformed_feature_files(work, nb201_main, change, expected):
    _edit_bylabel(work / "data" / "imgnet32bylabel.pt", change)
    err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "1"))
    assert "imgnet32bylabel.pt" in err and expected in err and "got dict" not in err


def _edit_tasks(data: Path, change) -> None:
    tasks = read_task_list(data / paths.META_TRAIN_TASK_LST)
    save_data(change(tasks), data / paths.META_TRAIN_TASK_LST)


def _edit_meta(data: Path, change, model: str = "predictor") -> None:
    path = data / f"meta_train_tasks_{model}.pt"
    obj = load_data(path)
    change(obj)
    save_data(obj, path)


MALFORMED_META_TRAIN = {
    "class id 0": (lambda d: _edit_tasks(d, lambda t: [[0, *t[0][1:]], *t[1:]]),
                   "task class id 0 is outside 1..8: the ids are 1-based and the feature file has 8 classes"),
    "class id beyond": (lambda d: _edit_tasks(d, lambda t: [[9, *t[0][1:]], *t[1:]]),
                        "task class id 9 is outside 1..8"),
    "ragged task list": (lambda d: _edit_tasks(d, lambda t: [t[0][:2], *t[1:]]),
                         "tasks have different class counts (2, 3; task 0 has 2, task 1 3)"),
    "empty task list": (lambda d: _edit_tasks(d, lambda t: []), "meta_train_task_lst.pt: holds no tasks"),
    "task index out of range": (lambda d: _edit_meta(d, lambda o: o["task"].__setitem__(0, 10)),
                                "task index 10 is outside 0..9, the 10 tasks of the task list"),
    "negative task index": (lambda d: _edit_meta(d, lambda o: o["task"].__setitem__(0, -1)),
                            "entry 0 has task index -1; task indices are integers >= 0"),
    "non-graph entry": (lambda d: _edit_meta(d, lambda o: o["graph"].__setitem__(2, "not a graph")),
                        "entry 2 of 'graph' is a str, not an igraph graph"),
    "string accuracy": (lambda d: _edit_meta(d, lambda o: o["acc"].__setitem__(0, "high")),
                        "entry 0 has accuracy 'high'"),
    "empty database": (lambda d: (_edit_meta(d, lambda o: [o[k].clear() for k in ("acc", "task", "graph")]),
                                  save_data(torch.zeros(0, dtype=torch.long),
                                            d / "meta_train_tasks_predictor_idx.pt")),
                       "holds no entries"),
}


@pytest.mark.parametrize("case", list(MALFORMED_META_TRAIN))
def test_malformed_meta_train_files(work, nb201_main, case):
    change, expected = MALFORMED_META_TRAIN[case]
    change(work / "data")
    err = one_line_error(nb201_main("--model", "predictor", "--max-epoch", "1"))
    assert expected in err, err
    assert "reach" not in err  # case 14: no "ids reach 10, but the file has 10 classes"


# --------------------------------------------------------------------------- 11. sidecars and archives
def test_binary_sidecar_is_a_one_line_error(work, nb201_main):
    ckpt = paths.ckpt(work / "results", "generator", 1)
    save_checkpoint(build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5), ckpt)
    sidecar_path(ckpt).write_bytes(bytes(range(256)))
    err = one_line_error(nb201_main("--model", "generator", "--test", "--data-name", "mine", "--load-epoch", "1"))
    assert "ckpt_1.json: unreadable sidecar JSON" in err and "delete it" in err


@pytest.mark.parametrize("sidecar", [{"acc_mean": 70.0, "acc_std": None}, {"acc_mean": "x", "acc_std": 2.0}])
def test_predictor_sidecar_without_usable_statistics(work, nb201_main, sidecar):
    archs = list(nb.all_arch_strs())[:4]
    _predictor_search_inputs(work, archs)
    test_dir = paths.meta_test_dir(work / "results", "mine")
    write_archive(paths.generated_arch_file(test_dir, 1), 1.0, archs)
    ckpt = paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt"
    sidecar_path(ckpt).write_text(json.dumps({"model": "predictor", **sidecar}))
    rc, _, err = nb201_main("--model", "predictor", "--test", "--data-name", "mine", "--train-arch", "false")
    assert rc == 0, err
    result = json.loads((test_dir / "best_arch" / "result.json").read_text())
    assert result["runs"][0]["top1_predicted_acc"] is None and result["runs"][0]["top1_arch"] in archs


def test_archive_with_only_its_header_is_a_one_line_error(work, nb201_main):
    _predictor_search_inputs(work, list(nb.all_arch_strs())[:4])
    test_dir = paths.meta_test_dir(work / "results", "mine")
    write_archive(paths.generated_arch_file(test_dir, 1), 1.0, [])
    err = one_line_error(nb201_main("--model", "predictor", "--test", "--data-name", "mine", "--train-arch", "false"))
    assert "run_1.txt: holds no architectures after its header line" in err


# --------------------------------------------------------------------------- 14. misleading messages
def test_generator_checkpoint_used_as_predictor_says_so(work, nb201_main):
    gen = build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5)
    ckpt = paths.model_dir(work / "results", "predictor") / "ckpt_max_corr.pt"
    save_checkpoint(gen, ckpt, {"model": "generator", "hs": 8, "nz": 8})
    test_dir = paths.meta_test_dir(work / "results", "mine")
    write_archive(paths.generated_arch_file(test_dir, 1), 1.0, list(nb.all_arch_strs())[:3])
    err = one_line_error(nb201_main("--model", "predictor", "--test", "--data-name", "mine", "--train-arch", "false"))
    assert "holds a generator (its sidecar ckpt_max_corr.json says model: generator), not a predictor" in err
    assert "--hs/--nz" not in err


def test_num_class_zero_is_refused(work, nb201_main):
    err = one_line_error(nb201_main("--model", "generator", "--test", "--data-name", "mine", "--num-class", "0"))
    assert "--num-class must be a positive integer, got 0" in err


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5)
    state = model.state_dict()
    state["fc1.weight"][0, 0] = float("nan")
    save_checkpoint(state, tmp_path / "c.pt")
    from metad2a.checkpoint import load_checkpoint

    with pytest.raises(CheckpointError, match="1 of .* weights are NaN or infinite"):
        load_checkpoint(build_model("generator", nvt=7, max_n=8, hs=8, nz=8, feature_dim=8, num_sample=5),
                        tmp_path / "c.pt")
    assert read_state_dict(tmp_path / "c.pt")["fc1.weight"].isnan().any()  # reading alone still works


# --------------------------------------------------------------------------- 7. image folders
def _images(root: Path, classes: dict[str, int]) -> Path:
    import numpy as np
    from PIL import Image

    for k, (c, n) in enumerate(classes.items()):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((30, 40, 3), 40 * k + i, np.uint8)).save(root / c / f"img{i}.png")
    return root


@pytest.mark.parametrize("link,target,expected", [
    ("a/up", "..", "loops back to a folder that contains it"),
    ("a/deep/self", "..", "loops back to a folder that contains it"),
    ("a/other", "../b", "leaves its class folder"),
    ("a/abs", "ELSEWHERE", "leaves its class folder"),  # a folder outside the image folder
])
def test_folder_links_that_leave_or_loop_are_refused(tmp_path, capsys, link, target, expected):
    from metad2a.data import features as F

    root = _images(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / link).parent.mkdir(exist_ok=True)
    if target == "ELSEWHERE":
        target = str(_images(tmp_path / "elsewhere", {"x": 1}))
    os.symlink(target, root / link)
    rc = F.main(["--dataset", str(root), "--data-path", str(tmp_path / "data"), "--gpu", "cpu", "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"{link}: a link to the folder" in err[0] and expected in err[0], err
    assert not (tmp_path / "data").exists()


def test_folder_links_inside_the_class_folder_are_followed(tmp_path):
    from metad2a.data.image_sources import image_folder

    root = _images(tmp_path / "imgs", {"a": 3, "b": 2})
    _images(tmp_path / "imgs" / "a" / "extra", {"more": 2})
    os.symlink("extra/more", root / "a" / "link")
    src = image_folder(root)
    assert src.targets.count(0) == 3 + 2 + 2 and src.targets.count(1) == 2  # the link's 2 images read twice


@pytest.mark.parametrize("link", ["a/gone.png", "gone_class"])
def test_broken_links_give_a_short_message(tmp_path, capsys, link):
    from metad2a.data import features as F

    root = _images(tmp_path / "imgs", {"a": 3, "b": 3})
    os.symlink(tmp_path / "nowhere", root / link)
    rc = F.main(["--dataset", str(root), "--data-path", str(tmp_path / "data"), "--gpu", "cpu", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"error: {root / link}: broken symbolic link (to {tmp_path / 'nowhere'}); remove it or fix it"


def test_decompression_bomb_in_a_loader_worker_names_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from metad2a.build.imagenet_folder import FileImages
    from metad2a.data import features as F
    from metad2a.data.image_sources import build_source
    from metad2a.errors import one_line

    root = _images(tmp_path / "imgs", {"a": 2})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 30x40 = 1,200 pixels > 2 x 100: a "bomb"
    with pytest.raises(DataFileError) as e:  # from a DataLoader worker process
        F.extract_features(build_source(str(root)), F.EXTRACTORS["resnet18"], model=torch.nn.Flatten(),
                           workers=1, progress=False)
    msg = one_line(e.value)
    assert msg.startswith(f"{root / 'a' / 'img0.png'}: too large to read") and "decompression bomb" in msg
    assert len(msg) < 300
    loader = torch.utils.data.DataLoader(FileImages(root, [("a/img1.png", 0)], lambda img: img), num_workers=1)
    with pytest.raises(DataFileError) as e:
        next(iter(loader))
    assert one_line(e.value).startswith(f"{root / 'a' / 'img1.png'}: too large to read")
