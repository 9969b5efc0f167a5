"""The file names the engine reads and writes, shared by every search space, and the
"missing file" error (files of one space only are named in that space's package).

Defaults stay the original ones: ``--data-path data`` and ``--save-path results``, relative to the
working directory (the README runs inside a space's front-end folder).
"""

from __future__ import annotations

from pathlib import Path

from metad2a.errors import DataFileError

META_TRAIN_TASK_LST = "meta_train_task_lst.pt"
IMAGENET32 = "imgnet32"  # meta-training features: <data>/imgnet32bylabel.pt (both spaces)


def bylabel(data_path: str | Path, name: str) -> Path:
    """Features of a dataset: ``<data>/<name>bylabel.pt``."""
    return Path(data_path) / f"{name}bylabel.pt"


def meta_train_tasks(data_path: str | Path, model: str) -> tuple[Path, Path]:
    """``meta_train_tasks_<model>.pt`` and its ``_idx.pt`` split permutation."""
    base = Path(data_path) / f"meta_train_tasks_{model}"
    return base.with_name(base.name + ".pt"), base.with_name(base.name + "_idx.pt")


def model_dir(save_path: str | Path, model: str) -> Path:
    """``<save>/<model>/model`` holds ``ckpt_<epoch>.pt`` (and the predictor's ``ckpt_max_corr.pt``)."""
    return Path(save_path) / model / "model"


def run_dir(save_path: str | Path, model: str) -> Path:
    return Path(save_path) / model


def ckpt(save_path: str | Path, model: str, epoch: int | str) -> Path:
    return model_dir(save_path, model) / f"ckpt_{epoch}.pt"


def train_log(save_path: str | Path, model: str) -> Path:
    """The original log file: ``results/<model>/meta_train_<model>.log``."""
    return run_dir(save_path, model) / f"meta_train_{model}.log"


def meta_test_dir(save_path: str | Path, data_name: str, num_gen_arch: int | None = None) -> Path:
    """``results/meta_test/<data>``, or ``results/meta_test/<data>/<num-gen-arch>`` for spaces that
    keep one folder per ``--num-gen-arch`` (``SearchSpace.num_gen_arch_dir``)."""
    p = Path(save_path) / "meta_test" / data_name
    return p / str(num_gen_arch) if num_gen_arch is not None else p


def generated_arch_file(test_dir: Path, run: int) -> Path:
    return test_dir / "generated_arch" / f"run_{run}.txt"


def latency_cache(save_path: str | Path) -> Path:
    """``results/latency``: latency caches, one file per device fingerprint (``--latency-cache`` default)."""
    return Path(save_path) / "latency"


def require(path: Path, how: str) -> Path:
    """Return ``path`` if it is a file, else raise an error that names it and how to get it."""
    if not Path(path).is_file():
        raise DataFileError(f"{path}: file not found; {how}")
    return Path(path)
