from pathlib import Path

import pytest
import torch

from metad2a.checkpoint import (
    load_checkpoint,
    load_data,
    read_sidecar,
    read_state_dict,
    save_checkpoint,
)
from metad2a.errors import CheckpointError, DataFileError
from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel

GOLDEN = Path(__file__).parent / "golden"
README_MODELS = {
    "nasbench201_generator": (GeneratorModel, dict(nvt=7, max_n=8, hs=56, nz=56)),
    "nasbench201_predictor": (PredictorModel, dict(nvt=7, max_n=8, hs=512, nz=56)),
    "ofa_mbv3_generator": (GeneratorModel, dict(nvt=29, max_n=22, hs=56, nz=56)),
    "ofa_mbv3_predictor": (PredictorModel, dict(nvt=29, max_n=22, hs=512, nz=56)),
}
PARAM_COUNTS = {  # docs/data.md#checkpoint-keys
    "nasbench201_generator": 304_200,
    "nasbench201_predictor": 4_020_361,
    "ofa_mbv3_generator": 322_478,
    "ofa_mbv3_predictor": 4_116_617,
}


def golden(name):
    rows = [line.split() for line in (GOLDEN / f"{name}.txt").read_text().splitlines() if not line.startswith("#")]
    return [(k, [int(x) for x in s.split(",")]) for k, s in rows]


@pytest.mark.parametrize("name", sorted(README_MODELS))
def test_saved_checkpoint_keys_and_shapes_equal_appendix_a(name, tmp_path):
    cls, kw = README_MODELS[name]
    model = cls(**kw)
    path = save_checkpoint(model, tmp_path / "ckpt_1.pt", meta={"model": name, **kw})
    raw = torch.load(path, weights_only=True)  # a plain state_dict, as the original writes
    assert isinstance(raw, dict) and all(isinstance(v, torch.Tensor) for v in raw.values())
    assert [(k, list(v.shape)) for k, v in raw.items()] == golden(name)  # same keys, order, shapes
    assert sum(v.numel() for v in raw.values()) == PARAM_COUNTS[name]
    assert read_sidecar(path)["hs"] == kw["hs"]


def test_round_trip_restores_outputs(tmp_path):
    a, b = PredictorModel(7, 8, hs=16, nz=8), PredictorModel(7, 8, hs=16, nz=8)
    save_checkpoint(a, tmp_path / "m.pt")
    load_checkpoint(b, tmp_path / "m.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix", "compiled_prefix"])
def test_accepts_original_and_wrapped_formats(tmp_path, wrap):
    src = GeneratorModel(7, 8, hs=8, nz=8)
    sd = src.state_dict()
    obj = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd},
        "module_prefix": {f"module.{k}": v for k, v in sd.items()},
        "compiled_prefix": {f"_orig_mod.{k}": v for k, v in sd.items()},
    }[wrap]
    torch.save(obj, tmp_path / "c.pt")
    dst = GeneratorModel(7, 8, hs=8, nz=8)
    assert load_checkpoint(dst, tmp_path / "c.pt") == {}  # no sidecar for foreign files
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())


def test_mismatch_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    sd = GeneratorModel(7, 8, hs=8, nz=8).state_dict()
    sd.pop("fc3.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(GeneratorModel(29, 22, hs=8, nz=8), tmp_path / "c.pt")
    msg = str(e.value)
    assert "missing: fc3.weight" in msg and "unexpected: extra.weight" in msg
    assert "shape of grud.weight_ih: checkpoint [24, 7] vs model [24, 29]" in msg
    assert "\n" not in msg


def test_missing_and_truncated_files_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="file not found; run get_files"):
        read_state_dict(tmp_path / "nope.pt", hint="run get_files/get_checkpoint.py")
    save_checkpoint(GeneratorModel(7, 8, hs=8, nz=8), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as e:
        read_state_dict(tmp_path / "cut.pt")
    assert "\n" not in str(e.value)
    with pytest.raises(DataFileError, match="truncated"):
        load_data(tmp_path / "cut.pt")


def test_data_loader_reads_pickled_graphs(tmp_path):
    import igraph

    g = igraph.Graph(directed=True)
    g.add_vertices(2)
    torch.save({"graph": [g], "acc": [1.0]}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError):  # the safe loader refuses it ...
        read_state_dict(tmp_path / "d.pt")
    assert load_data(tmp_path / "d.pt")["graph"][0].vcount() == 2  # ... the restricted data loader reads it
