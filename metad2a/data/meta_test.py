"""Meta-test (search) target datasets: resampled feature sets of a dataset's classes (docs/fidelity.md#nb201-generator-step)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from metad2a import paths
from metad2a.data.catalog import DatasetInfo
from metad2a.data.formats import read_bylabel
from metad2a.data.sets import check_rows, sample_batch, sample_rows, sample_rows_fast
from metad2a.errors import DataFileError

HOW_TO_GET_FEATURES = (
    "download the released features with `python get_files/get_preprocessed_data.py`, or extract "
    "your own with `python process_dataset.py --dataset PATH --name NAME`"
)


@dataclass
class TargetDataset:
    name: str
    feats: list[torch.Tensor]
    info: DatasetInfo
    num_sample: int
    fast_resampling: bool = False  # --fast-resampling: sample_rows_fast (docs/fidelity.md#fast-resampling)

    @property
    def feature_dim(self) -> int:
        return self.feats[0].size(1)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` independent resamples: classes 0..C-1 in order, ``num_sample`` distinct random rows
        each -> [count, C*num_sample, D]."""
        return sample_batch(self.feats, [range(self.info.num_classes)] * count, self.num_sample, generator,
                            self.fast_resampling)

    def rows(self) -> torch.Tensor:
        """The feature rows of the used classes 0..C-1, concatenated in class order: [R, D]."""
        return torch.cat(self.feats[: self.info.num_classes]).float()

    def sample_indices(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``sample`` as indices into ``rows()``: the same random draws and the same sets, i.e.
        ``rows()[sample_indices(k, g)]`` equals ``sample(k, g)`` for an equal generator state
        -> [count, C*num_sample] long."""
        sizes = [f.size(0) for f in self.feats[: self.info.num_classes]]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
        draw = sample_rows_fast if self.fast_resampling else sample_rows
        idx = draw(sizes * count, self.num_sample, generator)  # [count*C, n]
        idx = idx + offsets.repeat(count)[:, None]
        return idx.reshape(count, -1)


def load_target(data_path: Path, name: str, num_sample: int, info: DatasetInfo,
                feature_dim: int | None = None, fast_resampling: bool = False) -> TargetDataset:
    """Load ``<data>/<name>bylabel.pt``; the class count comes from ``--num-class``, the space's
    catalog, or the file itself (your own dataset).

    Raises:
        DataFileError: missing file, too few classes or rows, or a feature width that differs from
            the checkpoint's (``feature_dim``).
    """
    path = paths.bylabel(data_path, name)
    feats = read_bylabel(path, hint=HOW_TO_GET_FEATURES)
    if info.num_classes == 0:  # not in the space's list and no --num-class: every class of the file
        info = replace(info, num_classes=len(feats))
    if info.num_classes > len(feats) or info.num_classes < 1:
        raise DataFileError(f"{path}: has {len(feats)} classes, but {info.num_classes} are requested "
                            f"(--num-class); pass --num-class {len(feats)} or fewer")
    check_rows(feats, range(info.num_classes), num_sample, str(path))
    d = feats[0].size(1)
    if feature_dim is not None and d != feature_dim:
        raise DataFileError(f"{path}: features are {d}-dimensional but the checkpoint expects {feature_dim}; "
                            f"extract features with the same extractor the model was meta-trained on")
    return TargetDataset(name, feats, info, num_sample, fast_resampling)

