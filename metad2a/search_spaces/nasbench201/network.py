"""The NAS-Bench-201 TinyNetwork (Dong & Yang, ICLR 2020), written for this repository.

This is the network the original MetaD2A trains for a selected NB201 cell (docs/fidelity.md#tinynetwork):
a 3x3 conv stem, three stages of ``N`` identical cells at ``C``, ``2C`` and ``4C`` channels joined
by residual reduction blocks, BN+ReLU, global average pooling and a linear classifier. Module
semantics (ReLU-Conv-BN ops, the pooling shortcut of the reduction block, count_include_pad=False
in the cell's average pool, the final BN+ReLU) follow the benchmark's description of its network,
so sizes match the benchmark's reported ``params``/``flops`` exactly.

Sizes are counted the way the benchmark reports them (checked against all 240 rows of
``nb201/tinynetwork_reference_sizes.json``):

* parameters: every trainable parameter (conv weights, BN affine weight and bias, linear weight
  and bias); BN running statistics are buffers and do not count;
* FLOPs: multiply-accumulates of ``Conv2d`` (``k_h * k_w * c_in / groups * c_out`` per output
  position, plus ``c_out`` per position when the conv has a bias) and ``Linear``
  (``in * out``, plus ``out`` for the bias), per sample, in millions. Pooling, BN, ReLU, the
  residual/cell additions and the ``none``/``skip_connect`` ops count nothing.

Every edge's op is part of the module (and of its sizes) even when the cell leaves it
unreachable, as in the benchmark. ``tinynetwork_sizes`` gives the same two numbers in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metad2a.config import require_positive
from metad2a.errors import MetaD2AError
from metad2a.evaluation.net_size import count_flops, count_parameters
from metad2a.search_spaces.nasbench201.cell import CELL_EDGES, arch_str_to_ops

__all__ = [
    "NetworkConfigError",
    "ReLUConvBN",
    "Zero",
    "ResNetBasicblock",
    "InferCell",
    "TinyNetwork",
    "make_op",
    "count_parameters",
    "count_flops",
    "count_parameters_and_flops",
    "tinynetwork_sizes",
]


class NetworkConfigError(MetaD2AError, ValueError):
    """A network width, depth or class count that cannot build a TinyNetwork."""


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d (affine), the benchmark's conv op and block unit.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel_size: square kernel size.
        stride: conv stride.
        padding: conv padding.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros shaped like the input (cell ops keep channels and resolution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One cell-edge op at ``channels`` channels, stride 1.

    Args:
        name: an op of ``metad2a.search_spaces.nasbench201.OPS``.
        channels: input = output channels.

    Returns:
        The op as a module.

    Raises:
        NetworkConfigError: for an unknown op name.
    """
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        # Border outputs average only the real pixels, as in the benchmark.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise NetworkConfigError(f"unknown NB201 op {name!r}")


class ResNetBasicblock(nn.Module):
    """Residual reduction block between stages: ``c_in`` -> ``c_out`` channels, half resolution.

    ``conv_a`` = ReLU-Conv3x3(stride 2)-BN, ``conv_b`` = ReLU-Conv3x3-BN; the shortcut is
    AvgPool2d(2, 2) then a bias-free Conv1x1 (no BN, no ReLU). Output = shortcut + conv_b(conv_a(x)).

    Args:
        c_in: input channels.
        c_out: output channels.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class InferCell(nn.Module):
    """A fixed NB201 cell: 4 nodes, node i = sum over j < i of op_{j->i}(node j); output = node 3.

    Args:
        arch_str: the NB201 architecture string of the cell.
        channels: channels of every node.

    Raises:
        ArchStringError: if ``arch_str`` does not parse.
    """

    def __init__(self, arch_str: str, channels: int) -> None:
        super().__init__()
        ops = arch_str_to_ops(arch_str)
        self.arch_str = arch_str
        # edges[k] = (to_node, from_node) of vertex v_{k+1}; the six ops in string order.
        self.edges: tuple[tuple[int, int], ...] = CELL_EDGES
        self.layers = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, 4):
            terms = [self.layers[k](nodes[j]) for k, (to, j) in enumerate(self.edges) if to == i]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class TinyNetwork(nn.Module):
    """The NAS-Bench-201 network for 32x32-class inputs.

    Stem Conv3x3(3->C, no bias)+BN; N cells at C; ResNetBasicblock(C->2C); N cells at 2C;
    ResNetBasicblock(2C->4C); N cells at 4C; BN+ReLU; global average pool; Linear(4C->classes).

    Args:
        arch_str: NB201 architecture string shared by all 3N cells.
        C: channels of the first stage.
        N: cells per stage.
        num_classes: output logits.

    Raises:
        ArchStringError: if ``arch_str`` does not parse.
        NetworkConfigError: if ``C``, ``N`` or ``num_classes`` is not a positive integer.
    """

    def __init__(self, arch_str: str, C: int = 16, N: int = 5, num_classes: int = 10) -> None:
        super().__init__()
        require_positive({"C": C, "N": N, "num_classes": num_classes}, "C", "N", "num_classes", label="{name}",
                         error=NetworkConfigError)
        arch_str_to_ops(arch_str)  # fail early with the parse error
        self.arch_str = arch_str
        self.C, self.N, self.num_classes = C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells: list[nn.Module] = []
        c_prev = C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicblock(c_prev, c))
            cells.extend(InferCell(arch_str, c) for _ in range(N))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        # The final BN+ReLU matters: without it sizes differ from the benchmark and accuracy drops.
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [B, 3, H, W] -> logits [B, num_classes]."""
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        h = self.global_pooling(self.lastact(h)).flatten(1)
        return self.classifier(h)


def count_parameters_and_flops(
    net: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32)
) -> tuple[int, float]:
    """Parameters and MFLOPs of ``net`` as NAS-Bench-201 reports them.

    Args:
        net: the network.
        input_shape: [B, C, H, W] of the input (32x32 RGB for the benchmark's numbers).

    Returns:
        ``(num_parameters, mflops)``: the parameter count and the per-sample multiply-accumulates
        of conv and linear layers divided by 1e6.
    """
    return count_parameters(net), count_flops(net, input_shape) / 1e6


def tinynetwork_sizes(
    arch_str: str,
    C: int = 16,
    N: int = 5,
    num_classes: int = 10,
    input_size: tuple[int, int] = (32, 32),
) -> tuple[int, float]:
    """Closed-form ``count_parameters_and_flops(TinyNetwork(...), (1, 3, *input_size))``.

    Needs no module and no forward pass (microseconds), so it can size the whole space. Only
    the conv ops of the cell contribute: ``nor_conv_kxk`` at ``c`` channels has ``k*k*c*c + 2c``
    parameters and ``k*k*c*c`` MACs per pixel; ``none``, ``skip_connect`` and ``avg_pool_3x3``
    add nothing.

    Args:
        arch_str: NB201 architecture string.
        C: channels of the first stage.
        N: cells per stage.
        num_classes: output logits.
        input_size: (H, W) of the input; both must be divisible by 4.

    Returns:
        ``(num_parameters, mflops)`` exactly as ``count_parameters_and_flops`` gives them.

    Raises:
        ArchStringError: if ``arch_str`` does not parse.
        NetworkConfigError: for a non-positive size or an input not divisible by 4.
    """
    ops = arch_str_to_ops(arch_str)
    require_positive({"C": C, "N": N, "num_classes": num_classes}, "C", "N", "num_classes", label="{name}",
                     error=NetworkConfigError)
    h, w = input_size
    if h < 4 or w < 4 or h % 4 or w % 4:
        raise NetworkConfigError(f"input size must be divisible by 4 (two reductions), got {h}x{w}")
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
    cell_weights = sum(kernel[op] ** 2 for op in ops if op in kernel)  # sum of k*k over conv ops
    cell_bns = sum(op in kernel for op in ops)
    params = 27 * C + 2 * C  # stem conv + BN
    macs = 27 * C * h * w
    for stage, c in enumerate((C, 2 * C, 4 * C)):
        pixels = (h >> stage) * (w >> stage)
        if stage > 0:  # ResNetBasicblock(c/2 -> c): conv_a, conv_b (+ BNs), 1x1 shortcut conv
            c_in = c // 2
            block = 9 * c_in * c + 9 * c * c + c_in * c
            params += block + 4 * c
            macs += block * pixels
        params += N * (cell_weights * c * c + cell_bns * 2 * c)
        macs += N * cell_weights * c * c * pixels
    params += 2 * 4 * C + 4 * C * num_classes + num_classes  # lastact BN + classifier
    macs += 4 * C * num_classes + num_classes
    return params, macs / 1e6
