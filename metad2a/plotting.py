"""matplotlib, an optional extra (``pip install 'metad2a[plot]'``): the one place that imports it for
the report's figures (docs/data.md#search-report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metad2a.errors import MetaD2AError
from metad2a.files import atomic_write

PLOT_EXTRA = "pip install 'metad2a[plot]'"


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend.

    Raises:
        MetaD2AError: matplotlib is not installed (the message names the extra to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MetaD2AError(f"the report's plots need matplotlib: {PLOT_EXTRA}") from e
    return plt


def has_pyplot() -> bool:
    """Whether matplotlib can be imported."""
    try:
        pyplot()
    except MetaD2AError:
        return False
    return True


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    plt = pyplot()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return Path(path)
