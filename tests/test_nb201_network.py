"""NB201 TinyNetwork: exact benchmark sizes, forward shapes, cell semantics, and ``nb201-info``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from metad2a.errors import MetaD2AError
from metad2a.search_spaces.nasbench201.cell import OPS, ArchStringError, arch_str_to_ops, ops_to_arch_str
from metad2a.search_spaces.nasbench201.info import main, nb201_info
from metad2a.search_spaces.nasbench201.network import (
    InferCell,
    NetworkConfigError,
    ResNetBasicblock,
    TinyNetwork,
    count_parameters_and_flops,
    tinynetwork_sizes,
)
from tests.conftest import REPO, shared_file

SIZES_FILE = "nb201/tinynetwork_reference_sizes.json"
ALL_NONE = ops_to_arch_str(["none"] * 6)
BEST_C100 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"




@pytest.fixture(scope="module")
def reference_rows() -> list[dict]:
    rows = json.loads(shared_file(SIZES_FILE).read_text())["rows"]
    assert len(rows) == 240
    return rows


def _covering_rows(rows: list[dict]) -> list[dict]:
    """A few rows that together put every op on every cell edge, for both class counts."""
    wanted = {(k, op, n) for k in range(6) for op in OPS for n in {r["num_classes"] for r in rows}}
    chosen = []
    for r in rows:
        covers = {(k, op, r["num_classes"]) for k, op in enumerate(arch_str_to_ops(r["arch_str"]))}
        if covers & wanted:
            chosen.append(r)
            wanted -= covers
    assert not wanted
    return chosen


# --- sizes -----------------------------------------------------------------------------------


def test_closed_form_sizes_equal_every_reference_row(reference_rows):
    for r in reference_rows:
        assert r["input"] == [1, 3, 32, 32]
        got = tinynetwork_sizes(r["arch_str"], r["C"], r["N"], r["num_classes"])
        assert got == (r["num_parameters"], r["mflops"]), r["arch_str"]


def test_built_network_sizes_equal_reference_rows(reference_rows):
    # Building and running the real network for all 240 rows takes ~6 s here; the closed form above
    # covers every row and is tied to the real network by these rows and the test below.
    rows = _covering_rows(reference_rows)
    for r in rows:
        net = TinyNetwork(r["arch_str"], C=r["C"], N=r["N"], num_classes=r["num_classes"])
        got = count_parameters_and_flops(net, tuple(r["input"]))
        assert got == (r["num_parameters"], r["mflops"]), (r["arch_str"], r["num_classes"])


@pytest.mark.parametrize(
    ("arch", "C", "N", "classes", "hw"),
    [
        (
            "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
            4, 1, 3, (8, 12),
        ),
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|",
            8, 2, 7, (16, 16),
        ),
    ],
)
def test_counter_matches_closed_form_off_default(arch, C, N, classes, hw):
    net = TinyNetwork(arch, C=C, N=N, num_classes=classes)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    assert count_parameters_and_flops(net, (2, 3, *hw)) == tinynetwork_sizes(arch, C, N, classes, hw)
    # Counting is side-effect free: train mode kept, BN running statistics untouched.
    assert all(m.training for m in net.modules())
    assert all(torch.equal(stats[k], v) for k, v in net.state_dict().items())


def test_known_sizes_without_reference_file():
    # Cells with no conv: only the skeleton counts (stem, two reduction blocks, BN, classifier).
    assert tinynetwork_sizes(ALL_NONE) == (73306, 7.78305)
    assert tinynetwork_sizes(ops_to_arch_str(["avg_pool_3x3"] * 6), num_classes=100) == (79156, 7.7889)


# --- structure and forward -------------------------------------------------------------------


def test_structure_of_ops_and_reduction_block():
    net = TinyNetwork(BEST_C100, C=4, N=1)
    assert [type(c).__name__ for c in net.cells] == ["InferCell", "ResNetBasicblock"] * 2 + ["InferCell"]
    conv = net.cells[0].layers[0]  # nor_conv_3x3 on edge 0->1
    assert [type(m) for m in conv] == [nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    assert conv[1].bias is None and conv[2].affine
    block = net.cells[1]
    assert isinstance(block, ResNetBasicblock)
    assert block.conv_a[1].stride == (2, 2) and block.conv_b[1].stride == (1, 1)
    assert isinstance(block.downsample[0], nn.AvgPool2d) and block.downsample[1].bias is None
    assert [type(m) for m in net.lastact] == [nn.BatchNorm2d, nn.ReLU]
    assert (net.classifier.in_features, net.classifier.out_features) == (16, 10)


@pytest.mark.parametrize("classes", [10, 100])
def test_forward_gives_logits(classes):
    net = TinyNetwork(BEST_C100, num_classes=classes)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert net.stem[0].weight.grad is not None and net.stem[0].weight.grad.abs().sum() > 0


def _randomize_bn(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -1, 1)


def test_all_none_cells_cut_the_input_off():
    net = TinyNetwork(ALL_NONE, C=8, N=2)
    _randomize_bn(net)
    net.eval()
    seen = {}
    net.stem.register_forward_hook(lambda m, i, o: seen.__setitem__("stem", o))
    net.cells[0].register_forward_hook(lambda m, i, o: seen.__setitem__("cell0", o))
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y1, y2 = net(x1), net(x2)
    # The stem sees the input, the first all-none cell outputs exact zeros, so the logits are one
    # constant vector, the same for every sample; it is not trivially zero (the reduction blocks'
    # BN biases and the classifier still act).
    assert seen["stem"].abs().sum() > 0 and torch.count_nonzero(seen["cell0"]) == 0
    assert torch.equal(y1, y2) and torch.equal(y1[0], y1[1])
    assert y1[0].std() > 1e-3
    # Control: one skip on edge 0->3 lets the input through, and then the logits depend on it.
    skip = TinyNetwork(ops_to_arch_str(["none"] * 3 + ["skip_connect"] + ["none"] * 2), C=8, N=2)
    skip.load_state_dict(net.state_dict())
    skip.eval()
    with torch.no_grad():
        assert not torch.allclose(skip(x1), skip(x2))


@pytest.mark.parametrize(
    ("ops", "scale"),
    [
        # node 3 = op(0->3) + op(1->3) + op(2->3); each case pins the vertex order v1..v6.
        (["skip_connect", "none", "skip_connect", "none", "none", "skip_connect"], 1.0),  # 0->1->2->3
        (["skip_connect", "none", "none", "none", "skip_connect", "none"], 1.0),  # 0->1->3
        (["none", "skip_connect", "none", "none", "none", "skip_connect"], 1.0),  # 0->2->3
        (["none", "skip_connect", "skip_connect", "skip_connect", "skip_connect", "skip_connect"], 2.0),
        (["skip_connect"] * 6, 4.0),  # n1 = x, n2 = 2x, n3 = x + x + 2x
        (["skip_connect", "skip_connect", "skip_connect", "none", "none", "none"], 0.0),  # no edge into 3
    ],
)
def test_cell_sums_its_edges_in_vertex_order(ops, scale):
    cell = InferCell(ops_to_arch_str(ops), 3)
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(cell(x), x * scale)


def test_cell_average_pool_ignores_padding():
    cell = InferCell(ops_to_arch_str(["none"] * 3 + ["avg_pool_3x3"] + ["none"] * 2), 2)
    x = torch.full((1, 2, 4, 4), 3.0)
    assert torch.allclose(cell(x), x)  # with count_include_pad=True the corners would be 4/9 * 3


def test_bad_arguments_raise_one_line_user_errors():
    with pytest.raises(ArchStringError):
        TinyNetwork("|nor_conv_3x3~0|+|nor_conv_3x3~0|")
    for kwargs in ({"C": 0}, {"N": -1}, {"num_classes": 0}, {"C": 2.5}):
        with pytest.raises(NetworkConfigError) as info:
            TinyNetwork(ALL_NONE, **kwargs)
        assert isinstance(info.value, MetaD2AError) and "\n" not in str(info.value)


# --- nb201-info ------------------------------------------------------------------------------

INFO_KEYS = {"arch_str", "C", "N", "num_classes", "input", "num_parameters", "mparams", "mflops"}


def test_nb201_info_main_prints_one_json_object(capsys):
    assert main([BEST_C100, "--num-classes", "100"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    info = json.loads(out)
    assert set(info) == INFO_KEYS
    assert (info["arch_str"], info["C"], info["N"], info["num_classes"]) == (BEST_C100, 16, 5, 100)
    assert (info["num_parameters"], info["mflops"]) == tinynetwork_sizes(BEST_C100, num_classes=100)
    assert info["mparams"] == info["num_parameters"] / 1e6


def test_nb201_info_small_network():
    info = nb201_info(BEST_C100, num_classes=7, C=4, N=1)
    assert (info["C"], info["N"], info["num_classes"]) == (4, 1, 7)
    assert (info["num_parameters"], info["mflops"]) == tinynetwork_sizes(BEST_C100, 4, 1, 7)


@pytest.mark.parametrize(
    "argv",
    [["|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|"], ["not an arch"], [ALL_NONE, "--C", "0"]],
)
def test_nb201_info_main_rejects_bad_input_in_one_line(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("metad2a nb201-info: error: ") and captured.err.count("\n") == 1


@pytest.mark.slow
def test_nb201_info_as_module_subprocess():
    arch = ops_to_arch_str(["nor_conv_1x1"] * 6)
    proc = subprocess.run(
        [sys.executable, "-m", "metad2a.search_spaces.nasbench201.info", arch, "--C", "4", "--N", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert set(info) == INFO_KEYS
    assert (info["num_parameters"], info["mflops"]) == tinynetwork_sizes(arch, 4, 1, 10)
