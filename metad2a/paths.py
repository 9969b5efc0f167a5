"""Every file name the package reads or writes, and the "missing file -> run get_files/X" errors.

Defaults stay the original ones: ``--data-path data`` and ``--save-path results``, relative to the
working directory (the README runs inside ``MetaD2A_nas_bench_201/`` or ``MetaD2A_ofa/``).
"""

from __future__ import annotations

from pathlib import Path

from metad2a.errors import DataFileError

GET_PREPROCESSED = "python get_files/get_preprocessed_data.py"
GET_GENERATOR_CKPT = {"nasbench201": "python get_files/get_checkpoint.py",
                      "ofa_mbv3": "python get_files/get_generator_checkpoint.py"}
GET_PREDICTOR_CKPT = "python get_files/get_predictor_checkpoint.py"
GET_GENERATOR_DATABASE = "python get_files/get_generator_database.py"

META_TRAIN_TASK_LST = "meta_train_task_lst.pt"
NASBENCH201 = "nasbench201.pt"
IMAGENET32 = "imgnet32"


def bylabel(data_path: str | Path, name: str) -> Path:
    """Features of a dataset: ``<data>/<name>bylabel.pt``."""
    return Path(data_path) / f"{name}bylabel.pt"


def meta_train_tasks(data_path: str | Path, model: str) -> tuple[Path, Path]:
    """``meta_train_tasks_<model>.pt`` and its ``_idx.pt`` split permutation."""
    base = Path(data_path) / f"meta_train_tasks_{model}"
    return base.with_name(base.name + ".pt"), base.with_name(base.name + "_idx.pt")


def collected_database(data_path: str | Path, model: str) -> Path:
    """OFA meta-training database: ``<data>/<model>/processed/collected_database.pt``."""
    return Path(data_path) / model / "processed" / "collected_database.pt"


def collected_split(data_path: str | Path, model: str, split: str) -> Path:
    """Split cache written beside it on first use: ``collected_database_<train|valid|test>.pt``."""
    return Path(data_path) / model / "processed" / f"collected_database_{split}.pt"


def ofa_shard(data_path: str | Path, model: str, index: int) -> Path:
    """One OFA database shard (the original's name): ``<data>/<model>/database_<index>.pt``."""
    return Path(data_path) / model / f"database_{index}.pt"


def ofa_shard_log(data_path: str | Path, model: str, index: int) -> Path:
    """The original's progress lines of a shard: ``<data>/<model>/txt_<index>.txt``."""
    return Path(data_path) / model / f"txt_{index}.txt"


def ofa_build_file(data_path: str | Path, model: str, index: int, kind: str) -> Path:
    """Our bookkeeping of a shard build, ``<data>/<model>/build/<kind>_<index>.<ext>``: ``plan``
    (.json), ``results`` (the journal, .jsonl) and ``summary`` (.json)."""
    ext = "jsonl" if kind == "results" else "json"
    return Path(data_path) / model / "build" / f"{kind}_{index}.{ext}"


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
    """``results/meta_test/<data>`` (NB201) or ``results/meta_test/<data>/<num-gen-arch>`` (OFA)."""
    p = Path(save_path) / "meta_test" / data_name
    return p / str(num_gen_arch) if num_gen_arch is not None else p


def generated_arch_file(test_dir: Path, run: int) -> Path:
    return test_dir / "generated_arch" / f"run_{run}.txt"


def require(path: Path, how: str) -> Path:
    """Return ``path`` if it is a file, else raise an error that names it and how to get it."""
    if not Path(path).is_file():
        raise DataFileError(f"{path}: file not found; {how}")
    return Path(path)
