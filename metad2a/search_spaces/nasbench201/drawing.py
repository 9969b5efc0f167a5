"""A drawing of an NB201 cell: its four nodes and the operation on each of its six edges."""

from __future__ import annotations

from pathlib import Path

from metad2a.search_spaces.nasbench201.cell import CELL_EDGES, arch_str_to_ops

# node positions (x, y) of the cell's DAG: input 0 on the left, output 3 on the right
_POS = {0: (0.0, 0.0), 1: (1.0, 0.8), 2: (2.0, -0.8), 3: (3.0, 0.0)}
_LABEL_AT = {(3, 0): 0.22, (2, 1): 0.62}
_COLOUR = {"none": "0.75", "skip_connect": "tab:green", "nor_conv_1x1": "tab:orange",
           "nor_conv_3x3": "tab:red", "avg_pool_3x3": "tab:blue"}


def draw_cell(arch_str: str, path: Path, title: str = "") -> Path:
    """Draw the cell of ``arch_str`` as a DAG into the PNG ``path`` (``none`` edges dashed)."""
    from metad2a.plotting import pyplot, save_figure

    plt = pyplot()
    ops = arch_str_to_ops(arch_str)
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=120)
    for (to, frm), op in zip(CELL_EDGES, ops):
        (x0, y0), (x1, y1) = _POS[frm], _POS[to]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": _COLOUR[op], "lw": 2,
                                "linestyle": "--" if op == "none" else "-", "shrinkA": 14, "shrinkB": 14})
        t = _LABEL_AT.get((to, frm), 0.5)  # where along the edge its label sits (apart from crossings)
        ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), op, ha="center", va="center", fontsize=8,
                color=_COLOUR[op], bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.9})
    for n, (x, y) in _POS.items():
        label = {0: "in", 3: "out"}.get(n, str(n))
        ax.scatter([x], [y], s=650, c="white", edgecolors="black", zorder=3)
        ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=4)
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-1.5, 1.5)
    ax.axis("off")
    ax.set_title(title or "NB201 cell (each of the 3 stages stacks N of it)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
