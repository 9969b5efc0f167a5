"""``metad2a nb201-info``: size of the NAS-Bench-201 network built for one cell, as JSON.

Builds ``TinyNetwork`` for the cell and counts its parameters and MFLOPs the way the benchmark
reports them (see ``metad2a.search_spaces.nasbench201.network``), e.g.::

    metad2a nb201-info --num-classes 100 \\
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from metad2a.errors import MetaD2AError
from metad2a.files import to_json
from metad2a.search_spaces.nasbench201.network import TinyNetwork, count_parameters_and_flops

PROG = "metad2a nb201-info"
INPUT_SHAPE = (1, 3, 32, 32)


def nb201_info(arch_str: str, num_classes: int = 10, C: int = 16, N: int = 5) -> dict[str, Any]:
    """Size of ``TinyNetwork(arch_str, C, N, num_classes)`` on a 32x32 RGB input.

    Args:
        arch_str: NB201 architecture string.
        num_classes: output logits.
        C: channels of the first stage.
        N: cells per stage.

    Returns:
        ``{"arch_str", "C", "N", "num_classes", "input", "num_parameters", "mparams", "mflops"}``,
        the keys and units of the benchmark's reference sizes (``mparams`` = parameters / 1e6,
        ``mflops`` = conv and linear multiply-accumulates per sample / 1e6).

    Raises:
        ArchStringError: if ``arch_str`` does not parse.
        NetworkConfigError: if ``C``, ``N`` or ``num_classes`` is not a positive integer.
    """
    net = TinyNetwork(arch_str, C=C, N=N, num_classes=num_classes)
    num_parameters, mflops = count_parameters_and_flops(net, INPUT_SHAPE)
    return {
        "arch_str": arch_str,
        "C": C,
        "N": N,
        "num_classes": num_classes,
        "input": list(INPUT_SHAPE),
        "num_parameters": num_parameters,
        "mparams": num_parameters / 1e6,
        "mflops": mflops,
    }


def build_parser() -> argparse.ArgumentParser:
    """The ``nb201-info`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print the parameter count and MFLOPs of the NAS-Bench-201 network of a cell as JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("arch", help="NB201 architecture string, e.g. '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
    parser.add_argument("--num-classes", type=int, default=10, help="number of output classes")
    parser.add_argument("--C", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--N", type=int, default=5, help="cells per stage")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``nb201-info``: print one JSON object to stdout.

    Args:
        argv: arguments after the command name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 (with a one-line message on stderr) for an invalid architecture or size.
    """
    args = build_parser().parse_args(argv)
    try:
        info = nb201_info(args.arch, num_classes=args.num_classes, C=args.C, N=args.N)
    except MetaD2AError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(to_json(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
