"""Parameter and FLOP counts of a network, by forward hooks on its Conv2d and Linear layers.

Shared by the NB201 TinyNetwork (whose benchmark counts bias terms) and the OFA/MobileNetV3
subnets (whose package counts multiply-accumulates without biases, as once-for-all's
``utils.flops_counter.profile`` does and the original MetaD2A database records).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_parameters(net: nn.Module) -> int:
    """Number of parameters of ``net`` (all of ``net.parameters()``; buffers do not count)."""
    return sum(p.numel() for p in net.parameters())


def count_flops(net: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32), *, bias: bool = True) -> int:
    """Multiply-accumulates of ``net``'s Conv2d and Linear layers for one sample.

    Runs one forward pass on a zero input with forward hooks, in eval mode and without
    gradients, so BN running statistics are left alone; the modules' train/eval flags are
    restored afterwards. Each Conv2d counts ``k_h * k_w * c_in / groups * c_out`` per output
    position, plus ``c_out`` per position if it has a bias and ``bias`` is set; each Linear counts
    ``in * out``, plus ``out`` for its bias (with ``bias``), per input row. Other modules (BN,
    pooling, activations, identity, element-wise products) count nothing. The total is divided by
    the batch size.

    Args:
        net: the network.
        input_shape: [B, C, H, W] of the input.
        bias: count bias additions (NAS-Bench-201's rule); False gives once-for-all's count.

    Returns:
        FLOPs (multiply-accumulates) per sample, an integer.
    """
    batch = int(input_shape[0])
    total = 0

    def conv_hook(m: nn.Conv2d, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        per_position = kh * kw * (m.in_channels // m.groups) * m.out_channels
        if bias and m.bias is not None:
            per_position += m.out_channels
        total += per_position * (out.numel() // m.out_channels)

    def linear_hook(m: nn.Linear, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_row = m.in_features * m.out_features + (m.out_features if bias and m.bias is not None else 0)
        total += per_row * (out.numel() // m.out_features)

    first = next(net.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    modes = [(m, m.training) for m in net.modules()]
    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(*input_shape, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return total // batch
