"""OFA/MobileNetV3 subnets and their evaluation: the supernet weights through metad2a.download (a local
HTTP server via METAD2A_MIRROR, never the real URL), BN re-calibration, the FLOPs-bounded choice,
and a CPU smoke run of ``MetaD2A_ofa/evaluation/main.py`` on a tiny image folder (random supernet)."""

from __future__ import annotations

import functools
import json
import runpy
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("ofa", reason="needs the once-for-all package (pip install -e .[ofa])")

from metad2a.data.archive import write_archive
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.search_spaces.ofa_mbv3 import finetune as FT
from metad2a.search_spaces.ofa_mbv3 import subnet as ofa
from metad2a.search_spaces.ofa_mbv3 import supernet as S
from metad2a.search_spaces.ofa_mbv3.downloads import MANIFEST as OFA
from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET

REPO = Path(__file__).resolve().parents[1]
EVAL_MAIN = REPO / "MetaD2A_ofa" / "evaluation" / "main.py"
LARGEST = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
SMALLEST = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def supernet():
    return S.build_supernet(seed=0)


def test_subnet_sizes_heads_and_bn_recalibration(supernet):
    big, small = S.extract_subnet(supernet, LARGEST), S.extract_subnet(supernet, SMALLEST)
    (pb, fb), (ps, fs) = S.net_size(big), S.net_size(small)
    assert 7.5 < pb < 7.8 and 550 < fb < 580 and 3.3 < ps < 3.5 and 115 < fs < 125  # 1000-class head, 224x224
    head = S.restrict_classifier(S.extract_subnet(supernet, SMALLEST), [4, 1, 999])
    assert torch.equal(head.classifier.weight, small.classifier.linear.weight[[4, 1, 999]])
    assert abs(S.net_size(head)[0] - (ps - 997 * 1281 / 1e6)) < 1e-9

    # one pass over the images re-estimates the statistics of several nets, as one net alone does
    torch.manual_seed(0)
    x = torch.randn(6, 3, 32, 32) * 2 + 1
    a, b = S.extract_subnet(supernet, SMALLEST), S.extract_subnet(supernet, LARGEST)
    assert S.recalibrate_bn([a, b], [x[:4], x[4:]]) == 6
    alone = S.extract_subnet(supernet, SMALLEST)
    S.recalibrate_bn([alone], [(x[:4], None), (x[4:], None)])
    bn = next(m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))  # re-estimated, not the init
    for m1, m2 in zip(a.modules(), alone.modules()):
        if isinstance(m1, torch.nn.BatchNorm2d):
            assert torch.allclose(m1.running_mean, m2.running_mean) and torch.allclose(m1.running_var, m2.running_var)
    # ... and as once-for-all's own set_running_statistics does
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    theirs = S.extract_subnet(supernet, SMALLEST)
    set_running_statistics(theirs, [(x[:4], None), (x[4:], None)])
    for m1, m2 in zip(a.modules(), theirs.modules()):
        if isinstance(m1, torch.nn.BatchNorm2d):
            # equal up to float summation order (ofa averages one axis at a time), compounded over the layers
            # (the deepest layers see 1x1 maps of 32-px inputs: near-zero variances)
            assert torch.allclose(m1.running_mean, m2.running_mean, rtol=1e-2, atol=1e-4)
            assert torch.allclose(m1.running_var, m2.running_var, rtol=1e-2, atol=1e-4)
    res = S.evaluate([a, b], [(x, torch.tensor([0, 1, 2, 3, 4, 5]))])
    assert len(res) == 2 and all(0 <= r["top1"] <= r["top5"] <= 100 and np.isfinite(r["loss"]) for r in res)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_supernet_weights_come_through_the_mirror(supernet, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    name = Path(OFA_SUPERNET_TARGET).name
    torch.save({"state_dict": supernet.state_dict(), "epoch": 1}, served / name)  # the released layout
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("METAD2A_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        target = tmp_path / "MetaD2A_ofa" / OFA_SUPERNET_TARGET
        with pytest.raises(DataFileError, match="get_ofa_supernet.py"):
            S.ensure_supernet_weights(target, download=False)
        assert S.ensure_supernet_weights(target, download=True, progress=False) == target
    finally:
        server.shutdown()
    assert target.read_bytes() == (served / name).read_bytes()
    assert OFA["get_ofa_supernet"][0].target == OFA_SUPERNET_TARGET == ".torch/ofa_nets/ofa_mbv3_d234_e346_k357_w1.0"
    state = S.read_supernet_weights(target)
    loaded = S.build_supernet(state, seed=123)  # another random init, overwritten by the weights
    for (k, v), (k2, v2) in zip(supernet.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for part, n in (("train", 4), ("test", 2)):
        for c in range(3):
            d = root / part / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.uniform(0, 255, (20, 20, 3)).astype(np.uint8)).save(d / f"{i}.png")
    return root


def test_bounded_choice(supernet):
    archs = [LARGEST, SMALLEST, LARGEST]
    assert FT.choose_architecture(supernet, archs, None)[:2] == (0, LARGEST)
    i, a, mflops = FT.choose_architecture(supernet, archs, 300)
    assert (i, a) == (1, SMALLEST) and 115 < mflops < 125
    with pytest.raises(MetaD2AError, match="no architecture among the 1 searched ones has at most 300 MFLOPs"):
        FT.choose_architecture(supernet, archs, 300, limit=1)


def test_finetune_smoke_run_writes_the_run_folder(tmp_path):
    data = _image_folder(tmp_path / "mydata")
    res = tmp_path / "results"
    write_archive(res / "meta_test" / "mydata" / "3" / "generated_arch" / "run_1.txt", 1.0,
                  [ofa.arch_dict_to_str(a) for a in (LARGEST, SMALLEST, LARGEST)])
    args = ["--data-name", str(data), "--save-path", str(res), "--num-gen-arch", "3", "--bound", "300",
            "--random-init", "--epochs", "2", "--max-steps", "2", "--batch-size", "4", "--img-size", "32", "--num_workers", "0",
            "--gpu", "cpu", "--seed", "7"]
    # in this process (a subprocess would spend seconds importing torch); the front-end only calls main
    front = runpy.run_path(str(EVAL_MAIN), run_name="front_end")
    assert front["main"] is FT.main
    assert front["main"](args) == 0
    out = res / "evaluation" / "mydata-metaD2A-300-7"
    log = (out / "log.txt").read_text()
    assert "args = " in log and "epoch 1 lr" in log and "valid acc" in log and "line 2 of" in log
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1] and rows[1]["lr"] < rows[0]["lr"]  # cosine schedule
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arch"] == SMALLEST and summary["last"]["epoch"] == 1
    assert summary["best"]["test_acc"] == max(r["test_acc"] for r in rows)
    sub = json.loads((out / "subnet.json").read_text())
    assert {k: sub[k] for k in ("ks", "e", "d")} == SMALLEST and sub["num_classes"] == 3
    assert 115 < sub["mflops_1000_classes_224"] < 125
    tag = f"net_flops@{round(sub['mflops'])}"
    config = json.loads((out / f"{tag}.config").read_text())
    assert config["classifier"]["out_features"] == 3 and config["classifier"]["dropout_rate"] == 0.2
    best = torch.load(out / f"{tag}.best", weights_only=True)
    assert best["epoch"] == summary["best"]["epoch"] and "classifier.linear.weight" in best["state_dict"]
    assert torch.load(out / f"{tag}.last", weights_only=True)["epoch"] == 1


def test_evaluation_command_lines_and_errors(tmp_path, capsys):
    p = FT.build_parser()
    a = p.parse_args("--data-name cifar10 --num-gen-arch 200 --bound 300".split())
    assert (a.data_name, a.num_gen_arch, a.bound, a.lr, a.epochs, a.batch_size, a.save_path) == (
        "cifar10", 200, 300, 0.01, 150, 96, "../results")
    assert p.parse_args("--data-name cifar10 --model-config flops@232".split()).model_config == "flops@232"
    assert FT.main(["--data-name", "mnist", "--gpu", "cpu"]) == 2
    assert "mnist and svhn are not supported" in capsys.readouterr().err
    assert FT.main(["--data-name", "cifar10", "--data-path", str(tmp_path), "--gpu", "cpu"]) == 2
    assert "downloads are off" in capsys.readouterr().err  # the dataset is absent; --download would fetch it
    data = _image_folder(tmp_path / "other")
    assert FT.main(["--data-name", str(data), "--save-path", str(tmp_path / "r"), "--gpu", "cpu"]) == 2
    assert "run_1.txt: file not found; run the search first" in capsys.readouterr().err
