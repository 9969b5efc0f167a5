"""The paper's protocol of a search space, as data (``SearchSpace.reproduction``).

``metad2a reproduce <space>`` (``metad2a/reproduce.py``) runs it without knowing which space it runs:
everything that differs (the datasets, the ``main.py`` and evaluation command lines of each step,
``--num-gen-arch``, where the reported figure is read from, the published values, the files each
step needs and the ``get_files`` command that fetches them, the ``--quick`` settings, whether the
models can be meta-trained again) is a field below (docs/fidelity.md#reproduction).

Templates. Step arguments and output paths are ``str.format`` templates over these names:
``{gpu}``, ``{seed}``, ``{data}`` (the dataset), ``{num_gen_arch}``, ``{load_epoch}`` (the generator
checkpoint of the column), ``{data_path}``, ``{save_path}`` (the column's results folder),
``{root}`` (the front-end folder, the parent of ``--data-path``), ``{max_epoch}`` and
``{save_epoch}`` (meta-training). Required files are paths relative to the front-end folder, as the
``get_files`` manifests write them: ``data/...`` lives under ``--data-path``, ``results/...``
under ``--save-path``, anything else under the front-end folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal


@dataclass(frozen=True)
class RequiredFile:
    """A file (or folder) a step reads, and the command that fetches it.

    Attributes:
        paths: where it may be, relative to the front-end folder; the first one is the one the
            command fetches, any other that exists is accepted as well.
        get: the command (run inside the front-end folder) that fetches it, or what to do.
    """

    paths: tuple[str, ...]
    get: str


def manifest_file(manifest: Mapping[str, Sequence[Any]], script: str, name: str) -> RequiredFile:
    """The file ``name`` of ``get_files/<script>.py`` (a download manifest: script -> entries with a
    ``target``), with the command that fetches it."""
    target = next(e.target for e in manifest[script] if PurePosixPath(e.target).name == name)
    return RequiredFile((target,), f"python get_files/{script}.py")


@dataclass(frozen=True)
class Step:
    """One command of the protocol, run in the reproducing process.

    Attributes:
        args: its command-line arguments (templates).
        command: ``None`` for the space's ``main.py``; otherwise an entry point
            ``"package.module:function"`` taking the argument list (as ``CommandSpec.target``).
        quick_args: appended with ``--quick``.
        phase: what the step does, as the report labels its wall time ("search", "fine-tuning").
    """

    args: tuple[str, ...]
    command: str | None = None
    quick_args: tuple[str, ...] = ()
    phase: str = "search"


@dataclass(frozen=True)
class Source:
    """Numbers (or strings) read from an output of the steps.

    Attributes:
        file: a path template under the column's results folder (``*`` allowed: every match, sorted).
        keys: the path into a JSON file; ``"*"`` maps over a list, a number indexes one.
        kind: ``"json"``, or ``"archive"``: the elapsed seconds on the first line of a
            ``run_<k>.txt`` (docs/data.md#run-archive), one value per file.
    """

    file: str
    keys: tuple[str, ...] = ()
    kind: Literal["json", "archive"] = "json"


@dataclass(frozen=True)
class Measure:
    """A labelled figure of the report: the values of its sources, as mean and 95 % half-width."""

    label: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class Published:
    """A value of the paper's table: mean, its ``±``, and the reported search time (GPU seconds)."""

    mean: float
    pm: float
    search_seconds: float | None = None


@dataclass(frozen=True)
class DatasetProtocol:
    """How one dataset of the paper's table is reproduced.

    Attributes:
        name: the ``--data-name``.
        num_gen_arch: architectures generated per run (``quick_num_gen_arch`` with ``--quick``).
        steps: the commands, in order.
        figure: our figure, obtained as the paper's is (its label says how).
        blind: the figure of the architecture a user gets without any oracle.
        search_seconds: the recorded search time: the sum of the means of these sources.
        extras: more figures of the report (FLOPs of the chosen subnet, ...).
        files: what the steps read for this dataset.
        paper: the published value, if any.
    """

    name: str
    num_gen_arch: int
    quick_num_gen_arch: int
    steps: tuple[Step, ...]
    figure: Measure
    blind: Measure
    search_seconds: tuple[Source, ...] = ()
    extras: tuple[Measure, ...] = ()
    files: tuple[RequiredFile, ...] = ()
    paper: Published | None = None


@dataclass(frozen=True)
class Retrain:
    """Meta-training both models again with the README's commands (``--retrain``).

    Attributes:
        steps: the commands (templates; ``{max_epoch}``, ``{save_epoch}``), run with ``--resume``
            in their arguments so that a killed run continues.
        max_epoch, save_epoch: meta-training epochs and checkpoint interval (the README's).
        quick_max_epoch, quick_save_epoch: the same with ``--quick``.
        files: the meta-training files.
    """

    steps: tuple[Step, ...]
    max_epoch: int
    save_epoch: int
    quick_max_epoch: int
    quick_save_epoch: int
    files: tuple[RequiredFile, ...] = ()


@dataclass(frozen=True)
class Reproduction:
    """A space's paper protocol (``metad2a reproduce <name>``).

    Attributes:
        name: the argument of ``metad2a reproduce``.
        title: the report's title.
        folder: the front-end folder the commands run in.
        datasets: the table's rows, in the paper's order.
        checkpoints: the released checkpoints (linked into the results of the "released" column).
        files: other files every dataset needs.
        published: where the published values come from, or why there are none.
        retrain: how to meta-train the models again, or None.
        retrain_unavailable: why ``--retrain`` is not offered, when ``retrain`` is None.
        packages: Python packages the steps import beyond the core ones: ``(import name, install command)``.
        quick: what ``--quick`` changes (the report repeats it).
        notes: lines the report adds under the table.
    """

    name: str
    title: str
    folder: str
    datasets: tuple[DatasetProtocol, ...]
    checkpoints: tuple[RequiredFile, ...]
    files: tuple[RequiredFile, ...] = ()
    published: str = ""
    retrain: Retrain | None = None
    retrain_unavailable: str = ""
    packages: tuple[tuple[str, str], ...] = ()
    quick: str = ""
    notes: tuple[str, ...] = ()

    def dataset(self, name: str) -> DatasetProtocol:
        """The row of ``name``; KeyError when the table has none."""
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)
