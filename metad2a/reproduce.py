"""``metad2a reproduce <space>``: a search space's paper table with one command, beside the published values.

The protocol is the space's data (``SearchSpace.reproduction``, ``search_spaces/reproduction.py``);
this driver names no space (docs/fidelity.md#reproduction). For each dataset of the table it runs the
protocol's steps, in this process, through the same code as the front-end scripts (``main.py``'s
``cli.run`` and the space's evaluation command), then reads the figures from their outputs:

1. every file the selected datasets need is checked first; a missing one is listed with the
   command that fetches it, and nothing starts (exit status 2) until the list is empty;
2. ``--retrain`` first meta-trains both models with the README's commands (``--resume``d when
   killed), then the table has two columns: released checkpoints and retrained ones;
3. each column works in its own results folder (``<out>/released``, ``<out>/retrained``); the
   released checkpoints are hard-linked (or copied) there, so the user's own ``results/`` is never
   written to;
4. a finished dataset leaves a done record (``<out>/done/<column>/<data>.json``, written atomically)
   with its figures and the settings it ran with; a rerun of the same command skips it, so a killed
   reproduction continues where it stopped (a dataset killed midway starts again from its first step);
5. ``reproduction.json`` and ``reproduction.md`` are rewritten after every dataset.

``--quick`` swaps in the protocol's short settings (fewer architectures and epochs) and writes to
its own folder; its report says that it is not the paper's protocol.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import inspect
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metad2a.errors import DataFileError, MetaD2AError, one_line, user_command
from metad2a.files import file_sha256, link_or_copy, write_json, write_text
from metad2a.search_spaces import SEARCH_SPACES
from metad2a.search_spaces.base import SearchSpace
from metad2a.search_spaces.reproduction import (
    DatasetProtocol,
    Measure,
    Reproduction,
    RequiredFile,
    Source,
    Step,
)

log = logging.getLogger("metad2a")

RELEASED, RETRAINED = "released", "retrained"
COLUMN_TITLES = {RELEASED: "released checkpoints", RETRAINED: "retrained checkpoints"}
REPORT_JSON, REPORT_MD = "reproduction.json", "reproduction.md"


# --------------------------------------------------------------------------- where things are
@dataclass(frozen=True)
class Layout:
    """The folders of a reproduction.

    Attributes:
        data_path: ``--data-path``.
        save_path: ``--save-path`` (holds the released checkpoints).
        out: the reproduction's folder: columns, done records and the reports.
    """

    data_path: Path
    save_path: Path
    out: Path

    @property
    def root(self) -> Path:
        """The front-end folder: where the ``get_files`` scripts put files that are neither under
        ``data/`` nor under ``results/``."""
        return self.data_path.parent

    def resolve(self, rel: str) -> Path:
        """A path of a ``get_files`` manifest (relative to the front-end folder) on this machine."""
        head, _, rest = rel.partition("/")
        if head == "data":
            return self.data_path / rest
        if head == "results":
            return self.save_path / rest
        return self.root / rel

    def column(self, column: str) -> Path:
        """The ``--save-path`` of a column's steps."""
        return self.out / column

    def done(self, column: str, name: str) -> Path:
        """The done record of a dataset in a column."""
        return self.out / "done" / column / f"{name}.json"

    def retrain_done(self, i: int) -> Path:
        """The done record of the ``i``-th (0-based) meta-training step of ``--retrain``."""
        return self.out / "done" / "retrain" / f"step-{i + 1}.json"


def first_present(layout: Layout, f: RequiredFile) -> Path | None:
    """The first of ``f``'s paths that exists, or None."""
    return next((p for p in map(layout.resolve, f.paths) if p.exists()), None)


# --------------------------------------------------------------------------- the command line
def build_parser(spaces: Iterable[SearchSpace]) -> argparse.ArgumentParser:
    names = [s.reproduction.name for s in spaces if s.reproduction is not None]
    p = argparse.ArgumentParser(
        prog="metad2a reproduce", allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run a search space's paper protocol and write its table (reproduction.md and "
                    "reproduction.json) beside the published values. Run it inside the space's front-end "
                    "folder (MetaD2A_*/), or give --data-path and --save-path.")
    a = p.add_argument
    a("space", help=f"the table to reproduce: {', '.join(names)}")
    a("--data-path", "--data_path", dest="data_path", default="data", help="data root (as main.py)")
    a("--save-path", "--save_path", dest="save_path", default="results",
      help="results root holding the released checkpoints (as main.py)")
    a("--out", default=None, help="the reproduction's folder (default <save-path>/reproduction/<space>[-quick])")
    a("--gpu", default="0", help="as main.py: CUDA device id, or cpu")
    a("--seed", type=int, default=333, help="the seed every step runs with (main.py's default)")
    a("--only", action="append", default=None, metavar="DATASETS",
      help="run only these datasets (comma-separated; repeatable); the report keeps the others' finished rows")
    a("--quick", action="store_true",
      help="short settings (fewer architectures and epochs) to check the whole path in minutes; NOT the protocol")
    a("--retrain", action="store_true",
      help="meta-train the generator and the predictor first (README commands), then run the protocol with "
           "both the released and the retrained checkpoints")
    return p


def find_reproduction(name: str) -> tuple[SearchSpace, Reproduction]:
    """The space whose protocol is called ``name`` (its ``--graph-data-name`` and command name work too)."""
    for space in SEARCH_SPACES.values():
        if space.reproduction is not None and name in (space.reproduction.name, space.name, space.cli_name):
            return space, space.reproduction
    known = ", ".join(s.reproduction.name for s in SEARCH_SPACES.values() if s.reproduction is not None)
    raise MetaD2AError(f"metad2a reproduce {name}: no such table; choose one of {known}")


def selected_datasets(proto: Reproduction, only: Sequence[str] | None) -> list[DatasetProtocol]:
    """The datasets of ``--only`` (comma-separated, repeatable) in the table's order, or all of them."""
    if not only:
        return list(proto.datasets)
    names = {n.strip() for item in only for n in item.split(",") if n.strip()}
    known = [d.name for d in proto.datasets]
    unknown = sorted(names - set(known))
    if unknown or not names:
        raise MetaD2AError(f"--only {','.join(unknown) or '(empty)'}: not in the {proto.name} table; "
                           f"choose among {', '.join(known)}")
    return [d for d in proto.datasets if d.name in names]


# --------------------------------------------------------------------------- settings and done records
@dataclass
class Run:
    """One reproduction: the parsed flags and what they imply."""

    space: SearchSpace
    proto: Reproduction
    layout: Layout
    datasets: list[DatasetProtocol]
    columns: list[str]
    gpu: str
    seed: int
    quick: bool
    retrain: bool
    argv: list[str]
    device: str = ""
    checkpoint_ids: dict[str, dict[str, str] | None] = field(default_factory=dict)

    def num_gen_arch(self, d: DatasetProtocol) -> int:
        return d.quick_num_gen_arch if self.quick else d.num_gen_arch

    def retrain_epochs(self) -> tuple[int, int]:
        r = self.proto.retrain
        assert r is not None
        return (r.quick_max_epoch, r.quick_save_epoch) if self.quick else (r.max_epoch, r.save_epoch)

    def load_epoch(self, column: str) -> int:
        """The generator checkpoint a column's search loads: the released one, or the last retrained."""
        return self.space.released_generator_epoch if column == RELEASED else self.retrain_epochs()[0]

    def step_args(self, step: Step) -> list[str]:
        return [*step.args, *(step.quick_args if self.quick else ())]

    def values(self, column: str, d: DatasetProtocol | None = None) -> dict[str, Any]:
        """The template values of a column's steps (docs of ``search_spaces/reproduction.py``)."""
        v = {"gpu": self.gpu, "seed": self.seed, "data_path": self.layout.data_path,
             "save_path": self.layout.column(column), "root": self.layout.root, "load_epoch": self.load_epoch(column)}
        if self.proto.retrain is not None:
            v["max_epoch"], v["save_epoch"] = self.retrain_epochs()
        if d is not None:
            v.update(data=d.name, num_gen_arch=self.num_gen_arch(d))
        return v

    def settings(self, column: str, d: DatasetProtocol) -> dict[str, Any]:
        """What a done record must match to count as done: the protocol's settings for the dataset
        and the identity of the column's checkpoints (paths and devices may change)."""
        return {"quick": self.quick, "seed": self.seed, "num_gen_arch": self.num_gen_arch(d),
                "load_epoch": self.load_epoch(column), "steps": [self.step_args(s) for s in d.steps],
                "checkpoints": self.checkpoint_ids.get(column)}

    def retrain_settings(self, i: int) -> dict[str, Any]:
        assert self.proto.retrain is not None
        return {"quick": self.quick, "seed": self.seed, "epochs": list(self.retrain_epochs()),
                "step": self.step_args(self.proto.retrain.steps[i])}


def read_json(path: Path) -> dict | None:
    """A JSON record, or None when it is missing or unreadable (an unreadable record is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def done_record(run: Run, column: str, d: DatasetProtocol) -> dict | None:
    """The dataset's done record when it matches the current settings."""
    rec = read_json(run.layout.done(column, d.name))
    if rec is not None and rec.get("settings") == run.settings(column, d):
        return rec
    return None


def retrain_done(run: Run, i: int) -> bool:
    rec = read_json(run.layout.retrain_done(i))
    return rec is not None and rec.get("settings") == run.retrain_settings(i)


def released_checkpoint_ids(run: Run) -> dict[str, str] | None:
    """sha256 of each released checkpoint, or None while one is missing."""
    ids = {}
    for f in run.proto.checkpoints:
        p = first_present(run.layout, f)
        if p is None:
            return None
        ids[f.paths[0]] = file_sha256(p)
    return ids


def retrained_checkpoint_ids(run: Run) -> dict[str, str] | None:
    """The retraining's identity: when each of its steps finished (a new retraining redoes the column)."""
    assert run.proto.retrain is not None
    out = {}
    for i in range(len(run.proto.retrain.steps)):
        rec = read_json(run.layout.retrain_done(i))
        if rec is None:
            return None
        out[f"step-{i + 1}"] = rec["finished"]
    return out


# --------------------------------------------------------------------------- files up front
def missing_files(run: Run, todo: dict[str, list[DatasetProtocol]],
                  retraining: bool) -> list[tuple[str, RequiredFile, list[str]]]:
    """``(shown path, file, datasets needing it)`` of every required file that is not there."""
    need: dict[RequiredFile, list[str]] = {}

    def want(files: Iterable[RequiredFile], who: str) -> None:
        for f in files:
            need.setdefault(f, [])
            if who not in need[f]:
                need[f].append(who)

    if todo.get(RELEASED):
        want(run.proto.checkpoints, "released checkpoints")
    if retraining:
        assert run.proto.retrain is not None
        want(run.proto.retrain.files, "--retrain")
    for column, ds in todo.items():
        if ds:
            want(run.proto.files, "every dataset")
        for d in ds:
            want(d.files, d.name)
    missing = [(str(run.layout.resolve(f.paths[0])), f, who) for f, who in need.items()
               if first_present(run.layout, f) is None]
    if any(todo.values()):
        missing += [(f"Python package {name!r}", RequiredFile((), get), ["every dataset"])
                    for name, get in run.proto.packages if importlib.util.find_spec(name) is None]
    return missing


def missing_message(run: Run, missing: list[tuple[str, RequiredFile, list[str]]]) -> str:
    lines = [f"error: {len(missing)} required file(s) missing; nothing was started:"]
    for shown, f, who in missing:
        alt = f" (or {', '.join(str(run.layout.resolve(p)) for p in f.paths[1:])})" if len(f.paths) > 1 else ""
        lines.append(f"  {shown}{alt}  [{', '.join(who)}]\n      fetch: {f.get}")
    lines.append(f"Run the fetch commands inside {run.proto.folder}/ (the get_files scripts take --root DIR "
                 "when data/ and results/ are elsewhere), then run the same command again; "
                 "--only DATASETS leaves datasets out.")
    return "\n".join(lines)


def link_released_checkpoints(run: Run) -> None:
    """The released column reads the released checkpoints (and their sidecars, when they have one)
    through links in its own results folder, at the same relative paths."""
    from metad2a.checkpoint import sidecar_path

    for f in run.proto.checkpoints:
        src = first_present(run.layout, f)
        head, _, rel = f.paths[0].partition("/")
        if src is None or head != "results":
            raise MetaD2AError(f"{f.paths[0]}: a released checkpoint must be a file under results/ (protocol error)")
        dst = run.layout.column(RELEASED) / rel
        link_or_copy(src, dst)
        if sidecar_path(src).is_file():
            link_or_copy(sidecar_path(src), sidecar_path(dst))


# --------------------------------------------------------------------------- steps
def load_entry_point(target: str) -> Callable[[list[str]], int]:
    """``"package.module:function"`` without its ``user_command`` wrapper, so that its errors reach
    the reproduction as exceptions rather than as an exit status and a printed line."""
    module, _, function = target.partition(":")
    return inspect.unwrap(getattr(importlib.import_module(module), function))


def run_step(run: Run, step: Step, values: dict[str, Any]) -> list[str]:
    """Run one step in this process with its formatted arguments; returns them."""
    from metad2a.cli import run as run_main

    argv = [a.format(**values) for a in run.step_args(step)]
    shown = f"{step.command.partition(':')[0] if step.command else 'main.py'} {' '.join(argv)}"
    say(f"==> [{run.proto.name}] {shown}")
    try:
        rc = run_main(argv, run.space.name) if step.command is None else load_entry_point(step.command)(argv)
    except MetaD2AError as e:
        raise MetaD2AError(f"{values.get('data', 'meta-training')}: `{shown}` failed: {one_line(e)}; fix it and run "
                           "the same command again (finished datasets are kept)") from e
    if rc:
        raise MetaD2AError(f"`{shown}` exited with status {rc}; run the same command again after fixing it")
    return argv


def say(message: str) -> None:
    """A line of the reproduction's own on the console (steps re-configure the package logger)."""
    from metad2a.log import setup_logging

    setup_logging().info(message)


# --------------------------------------------------------------------------- figures from the outputs
def source_values(src: Source, folder: Path, values: dict[str, Any]) -> list[Any]:
    """The values ``src`` names, in file order (``None`` entries kept)."""
    from metad2a.data.archive import read_archive

    pattern = str(folder / src.file.format(**values))
    files = sorted(glob.glob(pattern), key=_natural) if any(c in pattern for c in "*?[") else \
        [pattern] if Path(pattern).is_file() else []
    if not files:
        raise DataFileError(f"{pattern}: not found after the steps ran (the protocol reads it)")
    out: list[Any] = []
    for f in files:
        if src.kind == "archive":
            out.append(read_archive(Path(f))[0])
            continue
        try:
            obj: Any = json.loads(Path(f).read_text())
        except ValueError as e:
            raise DataFileError(f"{f}: not JSON ({e})") from e
        out += _walk(obj, src.keys, f)
    return out


def _natural(path: str) -> list[Any]:
    """Sort key: run_2 before run_10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _walk(obj: Any, keys: Sequence[str], where: str) -> list[Any]:
    if not keys:
        return [obj]
    k, rest = keys[0], keys[1:]
    if k == "*":
        if not isinstance(obj, list):
            raise DataFileError(f"{where}: expected a list where the protocol reads '*'")
        return [v for item in obj for v in _walk(item, rest, where)]
    try:
        return _walk(obj[int(k)] if isinstance(obj, list) else obj[k], rest, where)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise DataFileError(f"{where}: no {k!r} where the protocol reads {'/'.join(keys)}") from e


def summarise(measure: Measure, folder: Path, values: dict[str, Any]) -> dict[str, Any]:
    """A measure's values and their mean with a 95 % half-width (None values are counted, not averaged)."""
    from metad2a.evaluation.metrics import mean_confidence_interval

    vals = [v for s in measure.sources for v in source_values(s, folder, values)]
    bad = [v for v in vals if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if bad:
        raise DataFileError(f"{measure.label}: the protocol reads {bad[0]!r} where it expects numbers")
    nums = [float(v) for v in vals if v is not None]
    m, ci = mean_confidence_interval(nums) if nums else (None, None)
    return {"label": measure.label, "mean": m, "ci95": ci, "n": len(nums), "missing": len(vals) - len(nums),
            "values": nums}


# --------------------------------------------------------------------------- one dataset
def run_dataset(run: Run, column: str, d: DatasetProtocol) -> dict[str, Any]:
    """Run a dataset's steps in a column, read its figures and write its done record."""
    values = run.values(column, d)
    folder = run.layout.column(column)
    walls: dict[str, float] = {}
    argvs = []
    t_all = time.time()
    for step in d.steps:
        t0 = time.time()
        argvs.append(run_step(run, step, values))
        walls[step.phase] = walls.get(step.phase, 0.0) + time.time() - t0
    parts = [summarise(Measure("", (s,)), folder, values)["mean"] for s in d.search_seconds]
    info = run.space.dataset_info(d.name)
    record = {
        "dataset": d.name, "column": column, "settings": run.settings(column, d),
        "device": run.device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": info.runs, "top_n": info.top_n, "num_gen_arch": run.num_gen_arch(d),
        "figure": summarise(d.figure, folder, values), "blind": summarise(d.blind, folder, values),
        "extras": [summarise(m, folder, values) for m in d.extras],
        "search_seconds": sum(p for p in parts if p is not None) if parts else None,
        "search_seconds_parts": parts, "wall_seconds": walls, "wall_seconds_total": time.time() - t_all,
        "argv": argvs,
    }
    write_json(run.layout.done(column, d.name), record)
    return record


# --------------------------------------------------------------------------- the report
def _fmt(x: float | None, ci: float | None = None, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" if ci is None else f"{x:.{digits}f}±{ci:.{digits}f}"


def _phases(proto: Reproduction) -> list[str]:
    out: list[str] = []
    for d in proto.datasets:
        out += [s.phase for s in d.steps if s.phase not in out]
    return out


def build_report(run: Run) -> dict[str, Any]:
    """The report of every dataset of the table (finished rows only; the rest "not run")."""
    proto = run.proto
    rows = []
    for d in proto.datasets:
        info = run.space.dataset_info(d.name)
        row: dict[str, Any] = {
            "dataset": d.name, "runs": info.runs, "top_n": info.top_n, "num_gen_arch": run.num_gen_arch(d),
            "figure_label": d.figure.label, "blind_label": d.blind.label,
            "paper": None if d.paper is None else {"mean": d.paper.mean, "pm": d.paper.pm,
                                                   "search_seconds": d.paper.search_seconds},
        }
        for column in run.columns:
            rec = done_record(run, column, d)
            if rec is None:
                row[column] = None
                continue
            diff = None
            if d.paper is not None and rec["figure"]["mean"] is not None:
                diff = rec["figure"]["mean"] - d.paper.mean
            row[column] = {k: rec[k] for k in ("figure", "blind", "extras", "search_seconds", "search_seconds_parts",
                                                "wall_seconds", "wall_seconds_total", "device", "finished", "argv")}
            row[column]["difference"] = diff
        rows.append(row)
    return {
        "title": proto.title, "reproduction": proto.name, "search_space": run.space.name,
        "protocol": "the paper's protocol" if not run.quick else f"--quick: NOT the paper's protocol ({proto.quick})",
        "quick": run.quick, "published": proto.published, "columns": run.columns,
        "column_titles": {c: COLUMN_TITLES[c] for c in run.columns},
        "device": run.device, "command": "metad2a reproduce " + " ".join(run.argv),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows, "notes": list(proto.notes),
    }


def _cell(stat: dict[str, Any] | None, digits: int = 2) -> str:
    return "–" if stat is None or stat["mean"] is None else _fmt(stat["mean"], stat["ci95"], digits)


def render_markdown(report: dict[str, Any], proto: Reproduction) -> str:
    """``reproduction.md``: the figures beside the published ones, then each column's details."""
    rows, columns = report["rows"], report["columns"]
    has_paper = any(r["paper"] for r in rows)
    lines = [f"# Reproduction: {report['title']}", ""]
    if report["quick"]:
        lines += [f"> **--quick: this is NOT the paper's protocol.** {proto.quick}. The figures only show that "
                  "the whole path runs; they are not comparable with the paper's.", ""]
    lines += [f"Command: `{report['command']}` ({'--quick' if report['quick'] else 'the paper protocol'}); "
              f"written {report['written']}. Published values: {report['published']}.", ""]

    head = ["Dataset", "Protocol", "Figure (how it is obtained)"]
    head += ["Paper"] if has_paper else []
    for c in columns:
        head += [f"Ours, {c}"] + ([f"Ours − paper, {c}"] if has_paper else [])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dataset"], f"{r['runs']} run(s), {r['num_gen_arch']} archs, top {r['top_n']}", r["figure_label"]]
        if has_paper:
            cells += ["–" if r["paper"] is None else _fmt(r["paper"]["mean"], r["paper"]["pm"])]
        for c in columns:
            rec = r[c]
            cells += ["not run" if rec is None else _cell(rec["figure"])]
            if has_paper:
                cells += ["" if rec is None or rec["difference"] is None else f"{rec['difference']:+.2f}"]
        lines.append("| " + " | ".join(cells) + " |")

    phases = _phases(proto)
    extras = [m.label for m in proto.datasets[0].extras] if proto.datasets else []
    for c in columns:
        lines += ["", f"## {COLUMN_TITLES[c].capitalize()}: details", ""]
        head = ["Dataset", "Ours", "Blind top-1 (no oracle)", *extras, "Search s (this device)"]
        head += ["Paper search s (GPU)"] if has_paper else []
        head += [f"Wall s: {p}" for p in phases] + ["Device"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            rec = r[c]
            paper_s = [] if not has_paper else ["–" if r["paper"] is None else _fmt(r["paper"]["search_seconds"], None, 0)]
            if rec is None:
                lines.append("| " + " | ".join([r["dataset"], "not run", *[""] * (len(head) - 2)]) + " |")
                continue
            cells = [r["dataset"], _cell(rec["figure"]), _cell(rec["blind"]), *(_cell(e, 1) for e in rec["extras"]),
                     _fmt(rec["search_seconds"], None, 1), *paper_s,
                     *(_fmt(rec["wall_seconds"].get(p), None, 0) for p in phases), rec["device"]]
            lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "## Notes", "", "- *Ours* is obtained as the paper's figure is (the first table says how); the blind "
              "top-1 is the architecture a user gets without any oracle: "
              + "; ".join(f"{r['dataset']}: {r['blind_label']}" for r in rows) + ".",
              "- ± is the 95 % confidence half-width over runs or seeds (0 for a single value); *Search s* is the "
              "recorded search time on this device, *Wall s* the wall time of each phase of the steps."]
    lines += [f"- {n}" for n in report["notes"]]
    if not has_paper:
        lines += [f"- No published values: {report['published']}."]
    lines += ["", "## Commands run", ""]
    for r in rows:
        for c in columns:
            if r[c] is not None:
                lines += [f"- {r['dataset']} ({c}):"] + [f"  `{' '.join(a)}`" for a in r[c]["argv"]]
    return "\n".join(lines) + "\n"


def write_report(run: Run) -> dict[str, Any]:
    report = build_report(run)
    write_json(run.layout.out / REPORT_JSON, report)
    write_text(run.layout.out / REPORT_MD, render_markdown(report, run.proto))
    return report


# --------------------------------------------------------------------------- main
@user_command("interrupted; finished datasets are kept: run the same command again to continue")
def main(argv: list[str] | None = None) -> int:
    """``metad2a reproduce SPACE [flags]``: see the module docstring."""
    from metad2a.log import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(SEARCH_SPACES.values()).parse_args(argv)
    setup_logging()
    space, proto = find_reproduction(args.space)
    if args.retrain and proto.retrain is None:
        raise MetaD2AError(f"--retrain is not offered for {proto.name}: {proto.retrain_unavailable}")
    save = Path(args.save_path)
    out = Path(args.out) if args.out else save / "reproduction" / (proto.name + ("-quick" if args.quick else ""))
    layout = Layout(Path(args.data_path), save, out)
    columns = [RELEASED] + ([RETRAINED] if args.retrain or (out / "done" / RETRAINED).is_dir() else [])
    run = Run(space, proto, layout, selected_datasets(proto, args.only), columns, args.gpu, args.seed, args.quick,
              args.retrain, argv)

    # what is left to do, and the files it needs: all before anything starts
    run.checkpoint_ids[RELEASED] = released_checkpoint_ids(run)
    retraining = args.retrain and not all(retrain_done(run, i) for i in range(len(proto.retrain.steps)))
    if RETRAINED in columns and proto.retrain is not None:
        run.checkpoint_ids[RETRAINED] = None if retraining else retrained_checkpoint_ids(run)
    run_columns = [RELEASED] + ([RETRAINED] if args.retrain else [])
    todo = {c: [d for d in run.datasets if run.checkpoint_ids.get(c) is None or done_record(run, c, d) is None]
            for c in run_columns}
    missing = missing_files(run, todo, retraining)
    if missing:
        print(missing_message(run, missing), file=sys.stderr)
        return 2

    from metad2a.runtime import device_name, select_device

    run.device = device_name(select_device(args.gpu))
    say(f"==> reproducing {proto.title} ({'--quick, NOT the protocol' if args.quick else 'the protocol'}) on "
        f"{run.device}; output {out}")
    if retraining:
        assert proto.retrain is not None
        for i, step in enumerate(proto.retrain.steps):
            if retrain_done(run, i):
                say(f"==> meta-training step {i + 1} finished already")
                continue
            t0 = time.time()
            a = run_step(run, step, run.values(RETRAINED))
            write_json(layout.retrain_done(i),
                       {"settings": run.retrain_settings(i), "argv": a, "wall_seconds": time.time() - t0,
                        "device": run.device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        run.checkpoint_ids[RETRAINED] = retrained_checkpoint_ids(run)
    if todo[RELEASED]:
        link_released_checkpoints(run)
    for column in run_columns:
        for d in run.datasets:
            if done_record(run, column, d) is not None:
                say(f"==> {d.name} ({column}): finished already (done record), not redone")
                continue
            say(f"==> {d.name} ({COLUMN_TITLES[column]})")
            run_dataset(run, column, d)
            write_report(run)
    write_report(run)
    say(f"==> {out / REPORT_MD}\n" + (out / REPORT_MD).read_text())
    return 0
