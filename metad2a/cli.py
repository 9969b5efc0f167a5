"""The command line: ``MetaD2A_*/main.py`` with the original flags, and the ``metad2a`` command.

Besides the ``main.py``-style commands of each space (``metad2a <space cli name> ...``), every
search space may register sub-commands of its own (``SearchSpace.commands``); they are found in the
registry, so this module names no space.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
from pathlib import Path

from metad2a.config import (
    GENERATOR_HS,
    PREDICTOR_HS,
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
from metad2a.search_spaces import SEARCH_SPACES, get_search_space
from metad2a.search_spaces.base import SearchSpace
from metad2a.version import __version__

log = logging.getLogger("metad2a")

SHARED_POSITIVE = ("num_sample", "nz", "batch_size", "max_epoch", "save_epoch", "num_gen_arch", "num_class")


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


def data_names(args: argparse.Namespace, space: SearchSpace) -> tuple[str, ...]:
    """The datasets of ``--data-name`` (``all``: the space's list for the step, in its order)."""
    if not args.data_name:
        raise MetaD2AError(f"--test needs --data-name ({', '.join(space.datasets)}, all, "
                           f"or the NAME of your own data/NAMEbylabel.pt)")
    check_data_name(args.data_name)
    if args.data_name == "all":
        return space.data_names(args.model_name)
    return (args.data_name,)


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
                            constrained_decoding=args.constrained_decoding)
        _record(run_dir, "test", argv, rc, mc, tc, options, runner.loop)
        try:
            runner.meta_test(tc)
        except KeyboardInterrupt:
            print("interrupted; the search stopped (the files of datasets finished before are kept); "
                  "run the same command again to search anew", file=sys.stderr)
            return 130
    else:
        tc = TrainConfig(max_epoch=args.max_epoch, save_epoch=args.save_epoch, batch_size=args.batch_size)
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


def console_main(argv: list[str] | None = None) -> int:
    """``metad2a <command> ...``: each space's ``main.py`` under its ``cli_name``, and the
    sub-commands the spaces register."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, tuple[str, object]] = {}
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
