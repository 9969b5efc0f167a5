"""The command line: ``MetaD2A_*/main.py`` with the original flags, and the ``metad2a`` command.

Besides the ``main.py``-style commands of each space (``metad2a <space cli name> ...``), every
search space may register sub-commands of its own (``SearchSpace.commands``); they are found in the
registry, so this module names no space.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import platform
import sys
from pathlib import Path

from metad2a import paths
from metad2a.config import (
    GENERATOR_HS,
    PREDICTOR_HS,
    Budget,
    MetaTestConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    require_positive,
    to_dict,
)
from metad2a.errors import MetaD2AError, user_command
from metad2a.files import make_dirs, write_json
from metad2a.parser import build_parser
from metad2a.search_spaces import SEARCH_SPACES, find_space, get_search_space
from metad2a.search_spaces.base import SearchSpace
from metad2a.version import __version__

log = logging.getLogger("metad2a")

SHARED_POSITIVE = ("num_sample", "nz", "batch_size", "max_epoch", "save_epoch", "num_gen_arch", "num_class",
                   "pred_num_sets")


def _model_config(args: argparse.Namespace, space: SearchSpace) -> ModelConfig:
    """Check the flags that do not depend on the mode, and the model's hyper-parameters."""
    if args.model_name is None:
        raise MetaD2AError("--model is required: --model generator or --model predictor")
    if args.model_name not in ("generator", "predictor"):  # a builder's parser also accepts train_arch
        raise MetaD2AError(f"--model {args.model_name}: main.py runs only the generator or the predictor "
                           f"(the original parser accepts {args.model_name!r} but its main.py rejects it too)")
    if args.test and args.model_name == "predictor" and space.generator_ranks:
        raise MetaD2AError("--model predictor --test: in this search space the search is one step, "
                           "`--model generator --test`, which also loads the predictor to rank the "
                           "architectures (the original main.py has no predictor test step)")
    if args.graph_data_name != space.name:
        raise MetaD2AError(f"--graph-data-name {args.graph_data_name!r} is not this folder's search space "
                           f"{space.name!r}; run the main.py of the other folder")
    if args.nvt + space.nvt_flag_offset != space.nvt:
        raise MetaD2AError(f"--nvt {args.nvt} does not fit {space.name} (expects {space.nvt - space.nvt_flag_offset})")
    require_positive(args, *SHARED_POSITIVE, *(f.dest for f in space.extra_flags if f.positive), allow_none=True)
    if args.test and space.num_archs is not None and args.num_gen_arch > space.num_archs:
        raise MetaD2AError(f"--num-gen-arch {args.num_gen_arch} exceeds the {space.num_archs:,} distinct "
                           f"architectures of {space.name}; pass --num-gen-arch {space.num_archs} or fewer")
    _check_ranking_flags(args)
    hs = args.hs if args.hs is not None else (GENERATOR_HS if args.model_name == "generator" else PREDICTOR_HS)
    mc = ModelConfig(hs=hs, nz=args.nz, nvt=space.nvt, max_n=space.max_n, num_sample=args.num_sample)
    if args.model_name == "generator" and mc.hs != mc.nz:
        log.warning("warning: the original generator only runs with --hs equal to --nz; "
                    "this one accepts it, but released checkpoints use 56/56")
    return mc


def check_data_name(name: str | None) -> None:
    """``--data-name`` is a name, not a path (docs/fidelity.md#data-name): it picks
    ``<data-path>/<name>bylabel.pt`` and ``<save-path>/meta_test/<name>/`` and must not reach outside."""
    if name is None:
        return
    bad = not name or name in (".", "..") or ".." in name or "/" in name or "\\" in name or "\0" in name
    if bad or (os.altsep and os.altsep in name):
        raise MetaD2AError(f"--data-name {name!r} is not a dataset name (no folders, no '..'); put the "
                           "features in <data-path>/NAMEbylabel.pt and pass --data-name NAME (or --data-path "
                           "for another folder)")


def _check_ranking_flags(args: argparse.Namespace) -> None:
    """``--rank-loss`` belongs to predictor meta-training; ``--ensemble`` and ``--likelihood-weight``
    to the predictor's ranking step (docs/fidelity.md#ranking-options)."""
    if not math.isfinite(args.rank_loss) or args.rank_loss < 0:
        raise MetaD2AError(f"--rank-loss must be a non-negative number, got {args.rank_loss}")
    if not 0 <= args.likelihood_weight <= 1:
        raise MetaD2AError(f"--likelihood-weight must be between 0 and 1, got {args.likelihood_weight}")
    if args.rank_loss and (args.model_name != "predictor" or args.test):
        raise MetaD2AError("--rank-loss applies to predictor meta-training (--model predictor without --test)")
    if (args.ensemble or args.likelihood_weight) and not (args.model_name == "predictor" and args.test):
        raise MetaD2AError("--ensemble and --likelihood-weight apply to the predictor's ranking step "
                           "(--model predictor --test)")


def data_names(args: argparse.Namespace, space: SearchSpace) -> tuple[str, ...]:
    """The datasets of ``--data-name`` (``all``: the space's list for the step, in its order)."""
    if not args.data_name:
        raise MetaD2AError(f"--test needs --data-name ({', '.join(space.datasets)}, all, "
                           f"or the NAME of your own data/NAMEbylabel.pt)")
    check_data_name(args.data_name)
    if args.data_name == "all":
        return space.data_names(args.model_name)
    return (args.data_name,)


def budget(args: argparse.Namespace) -> Budget:
    """The search budget of the flags; checked (numbers, device syntax, and CUDA when latency is
    to be measured on it) before any model work."""
    b = Budget(max_params_m=args.max_params, max_mflops=args.max_flops, max_latency_ms=args.max_latency_ms,
               latency_device=args.latency_device, latency_batch=args.latency_batch,
               latency_threads=args.latency_threads, input_size=args.input_size,
               cache=Path(args.latency_cache) if args.latency_cache else None)
    if b.measures_latency:
        from metad2a.latency import resolve_device

        resolve_device(b.latency_device)
    return b


def run(argv: list[str] | None, space_name: str) -> int:
    """Parse ``main.py`` flags for a space and meta-train or search."""
    from metad2a import paths
    from metad2a.engine.trainer import claim_run_dir
    from metad2a.log import setup_logging
    from metad2a.runtime import select_device
    from metad2a.seeding import seed_everything

    space = get_search_space(space_name)
    args = build_parser(space).parse_args(argv)
    setup_logging()
    check_data_name(args.data_name)  # before any file is read or written
    mc = _model_config(args, space)
    limits = budget(args)
    if limits.active and not args.test:
        log.info("note: --max-params/--max-flops/--max-latency-ms apply to the search (--test); ignored")
    ignored = [f.names[0] for f in space.extra_flags if f.ignored_by_main and getattr(args, f.dest) not in (None, False)]
    if ignored:  # the original parser is shared with a database builder; main.py ignores these
        log.info(f"note: {', '.join(ignored)} belong(s) to the database builder; main.py ignores them")
    options = space.options({f.dest: getattr(args, f.dest) for f in space.extra_flags})
    device = select_device(args.gpu)
    seed_everything(args.seed)
    rc = RunConfig(space=space.name, model=args.model_name, test=args.test, seed=args.seed, device=str(device),
                   save_path=Path(args.save_path), data_path=Path(args.data_path), resume=args.resume)
    if args.overwrite and args.test:
        raise MetaD2AError("--overwrite applies to meta-training (it deletes the earlier run); a search "
                           "replaces its own output files")
    make_dirs(paths.model_dir(rc.save_path, rc.model))
    log.info(f"==> data {rc.data_path.resolve()}  results {rc.save_path.resolve()}  device {device}")
    if args.model_name == "generator":
        from metad2a.engine.generator_runner import GeneratorRunner as Runner
    else:
        from metad2a.engine.predictor_runner import PredictorRunner as Runner
    runner = Runner(space, rc, mc, device, options)
    run_dir = paths.run_dir(rc.save_path, rc.model)
    if args.test:
        tc = MetaTestConfig(data_names=data_names(args, space), num_gen_arch=args.num_gen_arch,
                            num_class=args.num_class, load_epoch=args.load_epoch, train_arch=args.train_arch,
                            constrained_decoding=args.constrained_decoding, budget=limits,
                            fast_resampling=args.fast_resampling,
                            pred_num_sets=args.pred_num_sets, ensemble=tuple(Path(p) for p in args.ensemble),
                            likelihood_weight=args.likelihood_weight)
        _record(run_dir, "test", argv, rc, mc, tc, options, runner.loop)
        try:
            runner.meta_test(tc)
        except KeyboardInterrupt:
            print("interrupted; the search stopped (the files of datasets finished before are kept); "
                  "run the same command again to search anew", file=sys.stderr)
            return 130
    else:
        tc = TrainConfig(max_epoch=args.max_epoch, save_epoch=args.save_epoch, batch_size=args.batch_size,
                         rank_loss=args.rank_loss)
        with claim_run_dir(rc.save_path, rc.model, resume=args.resume, overwrite=args.overwrite):
            logger = setup_logging(paths.train_log(rc.save_path, rc.model))
            for k, v in vars(args).items():  # the original starts its log with the arguments
                logger.info(f"{k}: {v}")
            logger.info("")
            _record(run_dir, "train", argv, rc, mc, tc, options, runner.loop)
            runner.meta_train(tc)
    return 0


def _record(run_dir: Path, mode: str, argv: list[str] | None, *configs: object) -> None:
    """A run directory that describes itself: the configs and the exact command line."""
    import torch

    info = {**to_dict(*configs), "argv": list(sys.argv[:1]) + list(argv if argv is not None else sys.argv[1:]),
            "versions": {"metad2a": __version__, "torch": torch.__version__, "python": platform.python_version()}}
    write_json(run_dir / f"config_{mode}.json", info)


@user_command("interrupted; checkpoints and resume_state.pt of finished epochs are kept (use --resume)",
              also=(OSError,))
def main(argv: list[str] | None = None, *, space: str) -> int:
    """Entry point of ``MetaD2A_*/main.py``: user errors become one line on stderr and exit code 2."""
    return run(argv, space)


def _entry_point(target: str):
    """Import ``"package.module:function"`` (a space's sub-command) when it runs."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _space_by_name(name: str) -> SearchSpace:
    """A space by its name, its ``metad2a`` command name or an alias."""
    return find_space(name)


@user_command("interrupted; entries measured so far are not saved")
def latency_table_main(argv: list[str] | None = None) -> int:
    """``metad2a latency-table``: measure a space's latency table on this machine's device
    (docs/fidelity.md#budget-latency); the search finds it in its cache folder."""
    import time

    from metad2a.latency import REPEATS, WARMUP, LatencyMeter
    from metad2a.log import setup_logging

    p = argparse.ArgumentParser(prog="metad2a latency-table", allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Measure a search space's per-layer latency table on a device.")
    p.add_argument("--space", required=True, help="search space: " + ", ".join(s.cli_name for s in SEARCH_SPACES.values()))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<index>")
    p.add_argument("--resolution", type=int, default=None, help="input image side (default: the space's)")
    p.add_argument("--batch", type=int, default=1, help="images per timed pass (as --latency-batch)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (as --latency-threads)")
    p.add_argument("--classes", type=int, default=1000, help="classifier width of the head entry (others are "
                                                           "measured when a search needs them)")
    p.add_argument("--out", default=str(paths.latency_cache("results")),
                   help="cache folder (the search's --latency-cache) or a .json file")
    p.add_argument("--warmup", type=int, default=WARMUP, help="untimed passes per entry")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed passes per entry (the median counts)")
    args = p.parse_args(argv)
    setup_logging()
    space = _space_by_name(args.space)
    b = Budget(latency_device=args.device, latency_batch=args.batch, latency_threads=args.threads,
               input_size=args.resolution or space.cost_input_size)
    require_positive(args, "classes", "warmup", "repeats")
    meter = LatencyMeter.open(space.name, b.latency_device, b.latency_batch, b.latency_threads, b.input_size,
                              args.out, warmup=args.warmup, repeats=args.repeats)
    t0, before = time.time(), len(meter.cache.entries)
    entries = space.latency_table(meter, args.classes)
    meter.cache.save()
    print(f"{entries} entries ({len(meter.cache.entries) - before} measured now) in {time.time() - t0:.1f}s: "
          f"{meter.cache.path}")
    return 0


def console_main(argv: list[str] | None = None) -> int:
    """``metad2a <command> ...``: each space's ``main.py`` under its ``cli_name``, the sub-commands
    the spaces register, and ``latency-table`` (any space with a latency table)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, tuple[str, object]] = {
        "latency-table": ("measure a space's per-layer latency table on this machine (--space ...)",
                          latency_table_main)}
    for space in SEARCH_SPACES.values():
        commands[space.cli_name] = (f"main.py of the {space.name} space (the original flags)",
                                    lambda rest, name=space.name: main(rest, space=name))
        for c in space.commands:
            commands[c.name] = (c.help, lambda rest, target=c.target: _entry_point(target)(rest))
    tables = ",".join(s.reproduction.name for s in SEARCH_SPACES.values() if s.reproduction is not None)
    commands["search"] = ("from a folder of images to a trained, exported network and a report: "
                          "search IMAGES --space SPACE --out DIR",
                          lambda rest: _entry_point("metad2a.search_cmd:main")(rest))
    commands["reproduce"] = (f"a space's paper table beside the published values: reproduce {{{tables}}} ...",
                             lambda rest: _entry_point("metad2a.reproduce:main")(rest))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        out = sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout
        print(f"usage: metad2a {{{','.join(commands)}}} ...", file=out)
        for name, (text, _) in commands.items():
            print(f"  {name:20s} {text}", file=out)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return commands[argv[0]][1](argv[1:])


if __name__ == "__main__":
    raise SystemExit(console_main())
