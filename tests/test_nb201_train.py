"""Training a selected NB201 architecture (docs/fidelity.md#train-arch): recipe, schedule, data splits,
the seed-XXXX.pth files of ``main.py --train-arch`` and their reuse. CPU-only, tiny data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from metad2a.checkpoint import read_record, save_checkpoint
from metad2a.cli import main
from metad2a.data import arch_data
from metad2a.data.archive import write_archive
from metad2a.data.formats import write_bylabel
from metad2a.data.image_sources import build_source, image_folder
from metad2a.data.synthetic import synthetic_features
from metad2a.errors import MetaD2AError
from metad2a.models.predictor import PredictorModel
from metad2a.search_spaces.nasbench201 import cell as nb
from metad2a.search_spaces.nasbench201 import seeds as nb201_seeds
from metad2a.search_spaces.nasbench201.train import TrainRecipe, make_scheduler, train_arch

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
CHEAP = "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"




def _toy(n: int = 48, seed: int = 0) -> TensorDataset:
    """Two classes that differ in brightness."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float(), y)


def _folder(root, classes=3, per_class=10, size=8):
    rng = np.random.default_rng(0)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True)
        for i in range(per_class):
            colour = np.zeros((size, size, 3))
            colour[..., k % 3] = 200
            Image.fromarray((colour * rng.uniform(0.5, 1.0, (size, size, 1))).astype(np.uint8)).save(
                root / f"class{k}" / f"{i}.png")
    return root


# --------------------------------------------------------------------------- recipe and schedule
def test_original_recipe():
    r = TrainRecipe()
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.nesterov, r.weight_decay, r.eta_min,
            r.channel, r.num_cells) == (200, 256, 0.1, 0.9, True, 5e-4, 0.0, 16, 5)
    assert r.config_dict(10)["warmup"] == 0  # the original's config key, always 0
    assert TrainRecipe.original("mnist").epochs == 50
    assert TrainRecipe.original("aircraft").epochs == TrainRecipe.original("pets").epochs == 200
    assert TrainRecipe.original("svhn").with_epochs(3).epochs == 3
    with pytest.raises(MetaD2AError, match="epochs must be a positive integer"):
        TrainRecipe(epochs=0)


def test_cosine_schedule_values():
    """Epoch e trains at eta_min + (lr - eta_min) * (1 + cos(pi * e / epochs)) / 2, the original's
    closed form (with its warm-up of 0 epochs), for every epoch of the 200-epoch recipe."""
    r = TrainRecipe()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=r.lr)
    sched = make_scheduler(opt, r)
    rates = []
    for _ in range(r.epochs + 1):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [r.eta_min + (r.lr - r.eta_min) * (1 + math.cos(math.pi * e / r.epochs)) / 2 for e in range(201)]
    assert rates == pytest.approx(expected, abs=1e-12)
    assert rates[0] == 0.1 and rates[100] == pytest.approx(0.05) and rates[200] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- train_arch
def test_train_arch_learns_and_is_deterministic():
    data = _toy()
    recipe = TrainRecipe(epochs=3, batch_size=16, channel=4, num_cells=1)
    a = train_arch(ARCH, data, {"x-test": data}, 2, recipe, seed=3, progress=False)
    b = train_arch(ARCH, data, {"x-test": data}, 2, recipe, seed=3, progress=False)
    losses = [a["train_losses"][e] for e in range(3)]
    assert losses[-1] < losses[0]
    assert a["train_losses"] == b["train_losses"] and a["valid_acc1es"] == b["valid_acc1es"]
    assert all(torch.equal(a["net_state_dict"][k], b["net_state_dict"][k]) for k in a["net_state_dict"])
    assert set(a["valid_acc1es"]) == {"x-test@0", "x-test@1", "x-test@2"}
    assert a["final_acc"]["x-test"] == a["valid_acc1es"]["x-test@2"]
    assert a["num_params"] > 0 and a["flop"] > 0 and a["param"] == a["num_params"] / 1e6
    c = train_arch(ARCH, data, {"x-test": data}, 2, recipe, seed=4, progress=False, eval_every_epoch=False)
    assert c["train_losses"] != a["train_losses"] and set(c["valid_acc1es"]) == {"x-test@2"}


# --------------------------------------------------------------------------- data: splits and transforms
def test_source_splits(tmp_path):
    pytest.importorskip("sklearn", reason="digits come from scikit-learn")
    digits_train, digits_test = build_source("digits", split="train"), build_source("digits", split="test")
    assert len(digits_train.targets) + len(digits_test.targets) == len(build_source("digits").targets) == 1797
    assert digits_test.num_classes == digits_train.num_classes == 10
    assert len(digits_test.targets) == pytest.approx(0.2 * 1797, abs=10)
    assert build_source("digits", split="test").targets == digits_test.targets  # seeded

    flat = _folder(tmp_path / "flat", classes=2, per_class=10)
    tr, te = image_folder(flat, "train"), image_folder(flat, "test")
    assert (len(tr.targets), len(te.targets)) == (16, 4) and image_folder(flat).num_classes == 2
    files = {p for p, _ in tr.dataset.samples} | {p for p, _ in te.dataset.samples}
    assert len(files) == 20

    pre = tmp_path / "pre"
    _folder(pre / "train", classes=3, per_class=2)
    _folder(pre / "test", classes=2, per_class=1)  # test/ may lack a class
    tr, te = image_folder(pre, "train"), image_folder(pre, "test")
    assert tr.class_names == te.class_names == ["class0", "class1", "class2"] and te.targets == [0, 1]
    assert image_folder(pre).class_names == ["test", "train"]  # split=None keeps the old behaviour


def test_test_halves_and_transform():
    xv, xt = arch_data.test_halves(10000)
    assert (len(xv), len(xt)) == (5000, 5000) and not set(xv) & set(xt)
    assert [len(h) for h in arch_data.test_halves(3333)] == [1666, 1667]
    assert arch_data.test_halves(11) == arch_data.test_halves(11)
    grey = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10))
    x = arch_data.image_transform("mnist")(grey)
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[2])
    pix = arch_data.pixels_transform()(grey)
    assert torch.allclose(arch_data.normalise_pixels(pix, "mnist"), x, atol=1e-6)


# --------------------------------------------------------------------------- main.py --train-arch
@pytest.fixture
def searched(tmp_path, monkeypatch):
    """A predictor checkpoint, features and generated architectures for "mine", and its raw images."""
    monkeypatch.chdir(tmp_path)
    gen = torch.Generator().manual_seed(0)
    write_bylabel(synthetic_features(3, 20, 512, gen), tmp_path / "data" / "minebylabel.pt")
    _folder(tmp_path / "data" / "raw-data" / "mine", classes=3, per_class=6)
    model = PredictorModel(nvt=nb.NVT, max_n=nb.MAX_N, hs=512, nz=56, feature_dim=512)
    save_checkpoint(model, tmp_path / "results" / "predictor" / "model" / "ckpt_max_corr.pt")
    write_archive(tmp_path / "results" / "meta_test" / "mine" / "generated_arch" / "run_1.txt", 0.1, [CHEAP])
    return tmp_path


@pytest.mark.slow
def test_train_arch_writes_seed_files_and_reuses_them(searched, monkeypatch, capsys):
    argv = ["--gpu", "cpu", "--model", "predictor", "--test", "--data-name", "mine", "--num-gen-arch", "1",
            "--train-arch", "true", "--epochs", "1"]
    assert main(argv, space="nasbench201") == 0
    out = searched / "results" / "meta_test" / "mine" / "best_arch"
    rec = read_record(out / "seed-0777.pth")
    assert set(rec) == {"info", "mine", "all_dataset_keys"} and rec["all_dataset_keys"] == ["mine"]
    entry = rec["mine"]
    for key in ("flop", "param", "channel", "num_cells", "config", "total_epoch", "train_losses", "train_acc1es",
                "train_acc5es", "train_times", "valid_losses", "valid_acc1es", "valid_acc5es", "valid_times",
                "net_state_dict", "net_string"):
        assert key in entry, key
    assert entry["finish-train"] is True and (entry["channel"], entry["num_cells"]) == (16, 5)
    assert entry["total_epoch"] == 1 and entry["config"]["epochs"] == 1 and entry["config"]["LR"] == 0.1
    assert set(entry["valid_acc1es"]) == {"ori-test@0", "x-valid@0", "x-test@0"}
    assert entry["arch_str"] == CHEAP and "TinyNetwork" in entry["net_string"]
    accs = [read_record(out / f"seed-0{s}.pth")["mine"]["valid_acc1es"]["x-test@0"] for s in (777, 888, 999)]
    lines = (out / "accuracy.txt").read_text().splitlines()
    assert lines[:3] == [f"run {r} {a:.2f} (%)" for r, a in enumerate(accs, 1)] and lines[3].startswith("Avg ")
    result = json.loads((out / "result.json").read_text())
    assert result["trained"]["x_test_acc"] == accs and result["trained"]["reused"] == [False] * 3
    assert result["summary"]["trained_x_test_acc"]["mean"] == pytest.approx(sum(accs) / 3)
    assert len(list(out.glob("seed-0-T-*.log"))) == 1

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(nb201_seeds, "train_arch", no_training)
    stamp = (out / "seed-0777.pth").stat().st_mtime_ns
    assert main(argv, space="nasbench201") == 0
    assert (out / "seed-0777.pth").stat().st_mtime_ns == stamp
    assert json.loads((out / "result.json").read_text())["trained"]["reused"] == [True] * 3
    assert (out / "accuracy.txt").read_text().splitlines() == lines
    capsys.readouterr()
    # a seed file with other epochs is refused, not reported
    assert main(argv[:-1] + ["2"], space="nasbench201") == 2
    err = capsys.readouterr().err.strip()
    assert "seed-0777.pth: was trained for 1 epochs, not 2" in err and len(err.splitlines()) == 1


def test_missing_raw_data_is_one_line_naming_the_script(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--gpu", "cpu", "--model", "predictor", "--test", "--data-name", "mnist"], space="nasbench201") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raw-data/mnist" in err and "get_files/get_mnist.py" in err
    assert "--train-arch false" in err
