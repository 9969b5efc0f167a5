"""`metad2a search` end to end (both spaces), its resumption and its refusals; the verified export;
the README's API example and onnxruntime snippet."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metad2a import api
from metad2a.cli import console_main
from metad2a.errors import MetaD2AError
from metad2a.priors import nb201_prior

README = Path(__file__).resolve().parents[1] / "README.md"


def make_images(root: Path, classes: int = 3, per_class: int = 20, size: int = 16) -> Path:
    """A folder of ``classes`` classes of noisy single-colour images, ``root/class_<c>/img_<i>.png``."""
    rng = np.random.default_rng(0)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = np.clip(np.array(colours[c])[None, None] + rng.normal(0, 40, (size, size, 3)), 0, 255)
            Image.fromarray(a.astype("uint8")).save(d / f"img_{i}.png")
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("imgs") / "images")


def _search(argv: list[str]) -> int:
    return console_main(["search", *map(str, argv)])


def _state(out: Path) -> dict:
    return json.loads((out / "state.json").read_text())["stages"]


@pytest.mark.slow
def test_search_nb201_end_to_end_and_resume(images, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [images, "--out", out, "--num-archs", "8", "--random-archs", "20", "--train", "--epochs", "1",
            "--top-k", "2"]
    assert _search(argv) == 0
    for f in ("report.md", "candidates.csv", "summary.json", "scores.png", "architecture.png", "training.png",
              "export/model.pt", "export/model.ts", "export/model.onnx", "export/preprocess.json"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert s["trained"]["trained_candidates"] == 2 and s["trained"]["kept_rank"] in (1, 2)
    ex = s["export"]
    assert ex["images"] == 12 and ex["onnx_max_abs_diff"] <= 1e-4 and ex["torchscript_max_abs_diff"] <= 1e-4
    report = (out / "report.md").read_text()
    assert "2 candidate(s) trained" in report and f"{ex['onnx_max_abs_diff']:.2e}" in report
    # without --checkpoints: the committed prior, which says what it learnt from, searched with its ranking
    assert "dataset conditioning inactive" in s["checkpoints"]["description"]
    assert s["ranking"] == nb201_prior().ranking and "dataset conditioning inactive" in report
    rows = (out / "candidates.csv").read_text().splitlines()
    assert len(rows) == 9 and rows[0].startswith("rank,arch,score")
    pre = json.loads((out / "export/preprocess.json").read_text())
    assert pre["class_names"] == ["class_0", "class_1", "class_2"] and pre["input_size"] == 32
    # the exported network is the kept one: its logits are those of the trained network
    net, rec = api.load_network(out / "export/model.pt")
    assert rec["arch"] == s["chosen"]["arch"]
    # resume: every stage but the report is skipped, and nothing is recomputed
    before = _state(out)
    capsys.readouterr()
    assert _search(argv) == 0
    logged = capsys.readouterr()
    after = _state(out)
    for stage in ("features", "search", "baseline", "train", "export"):
        assert after[stage]["finished"] == before[stage]["finished"], stage
    assert (logged.out + logged.err).count("done before") == 5
    # a changed setting reruns its stage and the ones after it, not those before
    assert _search([*argv[:-2], "--top-k", "1"]) == 0
    again = _state(out)
    assert again["search"]["finished"] == before["search"]["finished"]
    assert json.loads((out / "summary.json").read_text())["trained"]["trained_candidates"] == 1


def _ofa_checkpoints(folder: Path, feature_dim: int = 1280) -> Path:
    """A randomly initialised OFA generator and predictor (small sizes) with their sidecars."""
    from metad2a.checkpoint import save_checkpoint
    from metad2a.models.factory import build_model
    from metad2a.search_spaces import get_search_space

    space = get_search_space("ofa_mbv3")
    torch.manual_seed(0)
    for kind, name in (("generator", "ckpt_1.pt"), ("predictor", "ckpt_max_corr.pt")):
        m = build_model(kind, nvt=space.nvt, max_n=space.max_n, hs=16, nz=8, feature_dim=feature_dim,
                        start_type=space.start_type, end_type=space.end_type)
        save_checkpoint(m, folder / name, {"model": kind, "space": space.name, "hs": 16, "nz": 8,
                                            "num_sample": 20, "feature_dim": feature_dim})
    return folder


@pytest.mark.slow
def test_search_ofa_end_to_end(images, tmp_path):
    pytest.importorskip("ofa")
    ck = _ofa_checkpoints(tmp_path / "ck")
    out = tmp_path / "out"
    assert _search([images, "--space", "ofa", "--out", out, "--checkpoints", ck, "--num-archs", "3",
                    "--random-archs", "5", "--constrained-decoding", "--image-size", "32", "--train", "--epochs",
                    "1"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["space"] == "ofa_mbv3" and set(s["chosen"]["arch"]) == {"ks", "e", "d"}
    assert s["export"]["onnx_max_abs_diff"] <= 1e-4 and s["export"]["torchscript_max_abs_diff"] <= 1e-4
    assert (out / "architecture.png").is_file() and (out / "training.png").is_file()
    assert s["trained"]["trained_candidates"] == 1


# --------------------------------------------------------------------------- refusals
def _refused(argv: list[str], out: Path, capsys, pattern: str) -> None:
    assert _search([*argv, "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(pattern, err[0]), err
    assert not out.exists()


def test_refuses_an_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _refused([tmp_path / "empty"], tmp_path / "out", capsys, "no class folders")


def test_refuses_a_single_class(tmp_path, capsys):
    one = make_images(tmp_path / "one", classes=1, per_class=3)
    _refused([one], tmp_path / "out", capsys, "at least 2 classes")


def test_refuses_too_few_images_per_class(tmp_path, capsys):
    few = make_images(tmp_path / "few", classes=2, per_class=3)
    _refused([few], tmp_path / "out", capsys, "fewer than 20 images")


def test_refuses_an_extractor_that_does_not_fit_the_checkpoints(images, tmp_path, capsys):
    # resnet18 gives 512-d features, the demo checkpoints expect 1280-d; refused before any weight is loaded
    _refused([images, "--extractor", "resnet18"], tmp_path / "out", capsys, "512-d.*1280-d.*efficientnet_lite0")


@pytest.mark.slow
def test_refuses_unreadable_images(tmp_path, capsys):
    bad = make_images(tmp_path / "bad", classes=2, per_class=20)
    (bad / "class_1" / "img_5.png").write_bytes(b"not an image at all")
    _refused([bad], tmp_path / "out", capsys, "img_5.png")


def test_refuses_bad_numbers(images, tmp_path, capsys):
    _refused([images, "--num-archs", "0"], tmp_path / "out", capsys, "--num-archs must be a positive integer")


# --------------------------------------------------------------------------- export
ARCH = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"


@pytest.mark.slow
def test_search_under_a_budget_keeps_only_feasible_candidates(images, tmp_path):
    """--max-params: every candidate fits when its network is built and counted here (independently
    of the closed-form count the filter uses); the budget block and pareto.png are written."""
    from metad2a.evaluation.net_size import count_parameters
    from metad2a.search_spaces.nasbench201.space import NASBENCH201

    out = tmp_path / "out"
    assert _search([images, "--out", out, "--num-archs", "6", "--random-archs", "5", "--max-params", "0.5"]) == 0
    s = json.loads((out / "summary.json").read_text())
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    assert len(cands) == 6 and s["budget"]["limits"] == {"--max-params": 0.5} and (out / "pareto.png").is_file()
    assert s["search"]["fast_resampling"] is False
    for c in cands:
        assert count_parameters(NASBENCH201.build_network(c["arch"], 3)) / 1e6 <= 0.5
    assert s["budget"]["chosen"]["arch"] == s["chosen"]["arch_key"]


def test_search_with_fast_resampling(images, tmp_path, monkeypatch):
    """--fast-resampling reaches the search and the baseline (both score on fast-drawn sets) and is recorded."""
    from metad2a import api
    from metad2a.data import meta_test

    drawn, scored = [], []
    fast, score = meta_test.sample_rows_fast, api.Searcher.score
    monkeypatch.setattr(meta_test, "sample_rows_fast", lambda *a, **k: drawn.append(1) or fast(*a, **k))
    monkeypatch.setattr(api.Searcher, "score", lambda self, *a, **k: scored.append(k) or score(self, *a, **k))
    out = tmp_path / "out"
    assert _search([images, "--out", out, "--num-archs", "4", "--random-archs", "3", "--fast-resampling"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["search"]["fast_resampling"] is True and s["search"]["unique"] == 4
    assert drawn and scored == [{"fast_resampling": True}]
    base = json.loads((out / "baseline.json").read_text())
    assert len(base["generated"]) == 4 and len(base["random"]) == 3


@pytest.mark.slow
def test_an_infeasible_budget_is_one_line_and_leaves_no_out(images, tmp_path, capsys):
    _refused([images, "--num-archs", "3", "--max-params", "0.0001"], tmp_path / "out", capsys,
             r"no candidate fits the budget \(--max-params 0.0001\)")


def test_calibrate_batchnorm_sets_the_statistics_of_the_inputs():
    """An untrained network's batch norm gets the mean and (unbiased) variance of its inputs over all
    images, whatever the batch split; the NB201 cell whose untrained logits reach the hundreds then
    stays within the export tolerance."""
    from metad2a.deploy import calibrate_batchnorm
    from metad2a.search_spaces.nasbench201.space import NASBENCH201

    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
    x = torch.randn(50, 3, 8, 8)
    assert calibrate_batchnorm(torch.nn.Sequential(conv, bn), x, batch_size=50) == 1
    with torch.no_grad():
        y = conv(x).transpose(0, 1).reshape(4, -1)
    assert torch.allclose(bn.running_mean, y.mean(1), atol=1e-5) and not bn.training
    assert torch.allclose(bn.running_var, y.var(1), rtol=1e-3)
    arch = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
    net, images = NASBENCH201.build_network(arch, 3), torch.rand(64, 3, 32, 32)
    with torch.no_grad():
        before = net(images).abs().max()
        calibrate_batchnorm(net, images)
        after = net(images).abs().max()
    assert before > 100 and after < 20


def _tiny_net() -> torch.nn.Module:
    return api.build_network(ARCH, 3)


def test_export_is_verified_by_onnxruntime_and_torchscript(tmp_path):
    import onnxruntime as ort

    net = _tiny_net()
    x = torch.randn(5, 3, 32, 32)
    res = api.export(net, tmp_path / "e", x[:2], verify_input=x, arch=ARCH, space="nasbench201",
                     preprocess={"input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "class_names": list("abc")})
    assert res.images == 5 and res.onnx_max_abs_diff <= 1e-4 and res.torchscript_max_abs_diff <= 1e-4
    ref = net(x).detach()
    # the files themselves: a batch size never traced (dynamic batch axis), and TorchScript
    y = ort.InferenceSession(str(tmp_path / "e/model.onnx")).run(None, {"input": x.numpy()})[0]
    assert np.abs(y - ref.numpy()).max() <= 1e-4
    with warnings.catch_warnings():  # torch announces the deprecation of TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        assert (torch.jit.load(str(tmp_path / "e/model.ts"))(x) - ref).abs().max() <= 1e-4
    import onnx

    assert onnx.load(str(tmp_path / "e/model.onnx")).opset_import[0].version >= 17
    back, rec = api.load_network(tmp_path / "e/model.pt")
    assert (back(x) - ref).abs().max() == 0 and rec["space"] == "nasbench201"


def test_export_refuses_a_network_it_cannot_reproduce(tmp_path):
    """A network whose exported form differs (here: dropout left in training mode for the check)
    is refused and nothing is written."""
    from metad2a.deploy import ExportError, export

    class Noisy(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] + (torch.rand(1) if torch.jit.is_tracing() else 0)

    with pytest.raises(ExportError, match="differ from PyTorch"):
        export(Noisy(), tmp_path / "e", torch.randn(2, 3, 4, 4), preprocess={})
    assert not (tmp_path / "e").exists()


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MetaD2AError, match=r"pip install 'metad2a\[export\]'"):
        api.export(_tiny_net(), tmp_path / "e", torch.randn(1, 3, 32, 32), preprocess={})


def test_import_metad2a_is_cheap_and_reexports_the_api():
    import subprocess

    code = "import sys, metad2a; assert 'torch' not in sys.modules; assert callable(metad2a.load_searcher)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_space_hooks_round_trip_and_draw(tmp_path):
    from metad2a.search_spaces import SEARCH_SPACES

    for space in SEARCH_SPACES.values():
        archs = space.random_archs(3, seed=1)
        assert archs == space.random_archs(3, seed=1)
        for a in archs:
            assert space.arch_key(space.arch_from_json(json.loads(json.dumps(space.arch_to_json(a))))) == \
                space.arch_key(a)
        assert space.draw_arch(archs[0], tmp_path / f"{space.name}.png")
        assert (tmp_path / f"{space.name}.png").stat().st_size > 1000


# --------------------------------------------------------------------------- README
def _readme_blocks(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(heading)
    end = text.index("\n## ", start + 1) if "\n## " in text[start + 1:] else len(text)
    part = text[start:end]
    sub = part.split("\n### ")[0]
    return re.findall(r"```python\n(.*?)```", sub, re.S)


@pytest.mark.slow
def test_readme_api_example_and_onnxruntime_snippet(tmp_path, monkeypatch):
    make_images(tmp_path / "my_images")
    (tmp_path / "my_images" / "cat").mkdir()
    Image.fromarray(np.full((20, 20, 3), 128, dtype="uint8")).save(tmp_path / "my_images" / "cat" / "001.png")
    # "cat" has one image: the API example needs 20 per class, so it runs on the three full classes
    api_code = _readme_blocks("### Python API")
    ort_code = _readme_blocks("### Classifying an image with onnxruntime alone")
    assert len(api_code) == 1 and len(ort_code) == 1
    monkeypatch.chdir(tmp_path)
    cat = tmp_path / "my_images" / "cat"
    cat.rename(tmp_path / "cat")
    exec(compile(api_code[0], "README.md (Python API)", "exec"), {})
    assert (tmp_path / "my_network" / "model.onnx").is_file()
    (tmp_path / "my_images" / "cat").mkdir()
    (tmp_path / "cat" / "001.png").rename(tmp_path / "my_images" / "cat" / "001.png")
    env: dict = {}
    exec(compile(ort_code[0], "README.md (onnxruntime)", "exec"), env)
    assert env["pre"]["class_names"][int(env["logits"].argmax())] in {"class_0", "class_1", "class_2"}
