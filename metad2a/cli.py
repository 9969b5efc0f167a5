"""The command line: the original ``main.py`` flags for each search space, and the ``metad2a`` command.

The only module that reads argparse, environment variables or sets CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from metad2a import __version__
from metad2a.config import (
    GENERATOR_HS,
    PREDICTOR_HS,
    MetaTestConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    to_dict,
)
from metad2a.data.catalog import SpaceCatalog, space_catalog
from metad2a.errors import MetaD2AError, user_command
from metad2a.search_spaces import get_search_space
from metad2a.search_spaces.base import FlagSpec, SearchSpace

log = logging.getLogger("metad2a")


def str2bool(v: str) -> bool:
    """The original's rule: "t"/"true" (any case) is True, anything else False."""
    return str(v).lower() in ("t", "true")


def _add_flag(p: argparse.ArgumentParser, f: FlagSpec) -> None:
    if f.kind == "flag":
        p.add_argument(*f.names, dest=f.dest, action="store_true", default=bool(f.default), help=f.help)
    else:
        p.add_argument(*f.names, dest=f.dest, type=int if f.kind == "int" else str, default=f.default, help=f.help)


def build_parser(space: SearchSpace) -> argparse.ArgumentParser:
    """The original ``parser.py`` flags with their defaults, plus our additions (marked "new").

    Space-specific defaults (``--nvt``, ``--num-gen-arch``, ``--graph-data-name``), the ``--model``
    choices and the extra flags (OFA: ``--index``, ``--imgnet``, ``--collect``, ``--ofa-per-set``)
    come from the ``SearchSpace`` object.
    """
    catalog = space_catalog(space.name)
    p = argparse.ArgumentParser(
        prog="main.py", description=f"MetaD2A on the {space.name} search space",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False,
    )
    a = p.add_argument
    a("--seed", type=int, default=333, help="global random seed")
    a("--gpu", type=str, default="0", help="CUDA device id (sets CUDA_VISIBLE_DEVICES); 'cpu' forces the CPU")
    a("--model", "--model_name", "--model-name", dest="model_name", type=str, default=None,
      choices=list(space.model_choices), help="which model to meta-train or meta-test")
    a("--save-path", "--save_path", dest="save_path", type=str, default="results", help="output root")
    a("--data-path", "--data_path", dest="data_path", type=str, default="data", help="data root")
    a("--save-epoch", "--save_epoch", dest="save_epoch", type=int, default=20, help="checkpoint every N epochs")
    a("--max-epoch", "--max_epoch", dest="max_epoch", type=int, default=400, help="meta-training epochs")
    a("--batch_size", "--batch-size", dest="batch_size", type=int, default=32, help="meta-training batch size")
    a("--graph-data-name", "--graph_data_name", dest="graph_data_name", type=str, default=space.name,
      help="search space (only this folder's space is accepted)")
    a("--nvt", type=int, default=space.nvt - space.nvt_flag_offset, help="number of vertex types")
    a("--num-sample", "--num_sample", dest="num_sample", type=int, default=20, help="feature rows per class")
    a("--hs", type=int, default=None,
      help=f"GRU hidden size (default {GENERATOR_HS} for the generator, {PREDICTOR_HS} for the predictor)")
    a("--nz", type=int, default=56, help="latent / embedding size")
    a("--test", action="store_true", help="meta-test (search) instead of meta-training")
    a("--load-epoch", "--load_epoch", dest="load_epoch", type=int, default=20,
      help=f"generator checkpoint epoch for meta-test (the released one is {catalog.released_generator_epoch})")
    a("--data-name", "--data_name", dest="data_name", type=str, default=None,
      help=f"meta-test dataset: {', '.join(catalog.datasets)}, 'all', or any NAME with "
           f"<data-path>/NAMEbylabel.pt")
    a("--num-class", "--num_class", dest="num_class", type=int, default=None,
      help="classes of the meta-test dataset (default: catalog, else all classes of the file)")
    a("--num-gen-arch", "--num_gen_arch", dest="num_gen_arch", type=int, default=space.default_num_gen_arch,
      help="unique valid architectures to generate")
    a("--train-arch", "--train_arch", dest="train_arch", type=str2bool, default=True,
      help="train/report the selected architecture (true/false)")
    a("--resume", action="store_true", help="new: continue meta-training from the last finished epoch")
    for f in space.extra_flags:
        _add_flag(p, f)
    return p


def _configs(args: argparse.Namespace, space: SearchSpace, catalog: SpaceCatalog):
    if args.model_name is None:
        raise MetaD2AError("--model is required: --model generator or --model predictor")
    if args.model_name not in ("generator", "predictor"):  # OFA's parser accepts train_arch
        raise MetaD2AError(f"--model {args.model_name}: main.py runs only the generator or the predictor "
                           f"(the original parser accepts {args.model_name!r} but its main.py rejects it too)")
    if args.test and args.model_name == "predictor" and catalog.generator_ranks:
        raise MetaD2AError("--model predictor --test: in this search space the search is one step, "
                           "`--model generator --test`, which also loads the predictor to rank the "
                           "architectures (the original main.py has no predictor test step)")
    if args.graph_data_name != space.name:
        raise MetaD2AError(f"--graph-data-name {args.graph_data_name!r} is not this folder's search space "
                           f"{space.name!r}; run the main.py of the other folder")
    if args.nvt + space.nvt_flag_offset != space.nvt:
        raise MetaD2AError(f"--nvt {args.nvt} does not fit {space.name} (expects {space.nvt - space.nvt_flag_offset})")
    for flag in ("num_sample", "nz", "batch_size", "max_epoch", "save_epoch", "num_gen_arch", "epochs"):
        if getattr(args, flag, None) is not None and getattr(args, flag) < 1:
            raise MetaD2AError(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    hs = args.hs if args.hs is not None else (GENERATOR_HS if args.model_name == "generator" else PREDICTOR_HS)
    mc = ModelConfig(hs=hs, nz=args.nz, nvt=space.nvt, max_n=space.max_n, num_sample=args.num_sample)
    if args.model_name == "generator" and mc.hs != mc.nz:
        log.warning("warning: the original generator only runs with --hs equal to --nz; "
                    "this one accepts it, but released checkpoints use 56/56")
    return mc


def _data_names(args: argparse.Namespace, catalog: SpaceCatalog) -> tuple[str, ...]:
    if not args.data_name:
        raise MetaD2AError(f"--test needs --data-name ({', '.join(catalog.datasets)}, all, "
                           f"or the NAME of your own data/NAMEbylabel.pt)")
    if args.data_name == "all":
        return catalog.all_generator if args.model_name == "generator" else catalog.all_predictor
    return (args.data_name,)


def run(argv: list[str] | None, space_name: str) -> int:
    from metad2a import paths
    from metad2a.log import setup_logging
    from metad2a.runtime import seed_everything, select_device

    space = get_search_space(space_name)
    catalog = space_catalog(space.name)
    args = build_parser(space).parse_args(argv)
    setup_logging()
    mc = _configs(args, space, catalog)
    ignored = [f.names[0] for f in space.extra_flags if f.ignored_by_main and getattr(args, f.dest) not in (None, False)]
    if ignored:  # the original parser is shared with build_database.py; main.py ignores these
        log.info(f"note: {', '.join(ignored)} belong(s) to the database builder; main.py ignores them")
    # space-specific flags are absent from the other space's namespace
    nb201_table = getattr(args, "nb201_table", None)
    # the original OFA per-sample loops, unless --ofa-per-set
    original_loops = catalog.original_loops and not getattr(args, "ofa_per_set", False)
    device = select_device(args.gpu)
    seed_everything(args.seed)
    rc = RunConfig(space=space.name, model=args.model_name, test=args.test, seed=args.seed, device=str(device),
                   save_path=Path(args.save_path), data_path=Path(args.data_path), resume=args.resume)
    paths.model_dir(rc.save_path, rc.model).mkdir(parents=True, exist_ok=True)
    log.info(f"==> data {rc.data_path.resolve()}  results {rc.save_path.resolve()}  device {device}")
    if args.model_name == "generator":
        from metad2a.engine.generator_runner import GeneratorRunner as Runner
    else:
        from metad2a.engine.predictor_runner import PredictorRunner as Runner
    runner = Runner(space, rc, mc, device)
    run_dir = paths.run_dir(rc.save_path, rc.model)
    if args.test:
        tc = MetaTestConfig(data_names=_data_names(args, catalog), num_gen_arch=args.num_gen_arch,
                            num_class=args.num_class, load_epoch=args.load_epoch, train_arch=args.train_arch,
                            train_epochs=getattr(args, "epochs", None), nb201_table=Path(nb201_table) if nb201_table else None,
                            pool_sets=original_loops)
        _record(run_dir, "test", argv, rc, mc, tc)
        runner.meta_test(tc)
    else:
        tc = TrainConfig(max_epoch=args.max_epoch, save_epoch=args.save_epoch, batch_size=args.batch_size,
                         step_per_sample=original_loops)
        logger = setup_logging(paths.train_log(rc.save_path, rc.model))
        for k, v in vars(args).items():  # the original starts its log with the arguments
            logger.info(f"{k}: {v}")
        logger.info("")
        _record(run_dir, "train", argv, rc, mc, tc)
        runner.meta_train(tc)
    return 0


def _record(run_dir: Path, mode: str, argv: list[str] | None, *configs) -> None:
    """A run directory that describes itself: the configs and the exact command line."""
    import platform

    import torch

    run_dir.mkdir(parents=True, exist_ok=True)
    info = {**to_dict(*configs), "argv": list(sys.argv[:1]) + list(argv if argv is not None else sys.argv[1:]),
            "versions": {"metad2a": __version__, "torch": torch.__version__, "python": platform.python_version()}}
    (run_dir / f"config_{mode}.json").write_text(json.dumps(info, indent=2) + "\n")


@user_command("interrupted; checkpoints and resume_state.pt of finished epochs are kept (use --resume)")
def main(argv: list[str] | None = None, space: str = "nasbench201") -> int:
    """Entry point of ``MetaD2A_*/main.py``: user errors become one line on stderr and exit code 2."""
    return run(argv, space)


def console_main(argv: list[str] | None = None) -> int:
    """``metad2a <command> ...``: ``nasbench201`` / ``ofa`` (the main.py flags), ``nb201-info``,
    ``build-database`` (NB201), ``ofa-build-database`` (``MetaD2A_ofa/build_database.py``) and
    ``ofa-evaluate`` (``MetaD2A_ofa/evaluation/main.py``)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def nb201_info(rest: list[str]) -> int:
        from metad2a.evaluation import nb201_info as info

        return info.main(rest)

    def build_database(rest: list[str]) -> int:
        from metad2a import build_database as builder

        return builder.main(rest)

    def ofa_build_database(rest: list[str]) -> int:
        from metad2a import build_ofa_database as builder

        return builder.main(rest)

    def ofa_evaluate(rest: list[str]) -> int:
        from metad2a.evaluation import ofa_finetune

        return ofa_finetune.main(rest)

    commands = {"nasbench201": lambda rest: main(rest, "nasbench201"), "ofa": lambda rest: main(rest, "ofa_mbv3"),
                "nb201-info": nb201_info, "build-database": build_database,
                "ofa-build-database": ofa_build_database, "ofa-evaluate": ofa_evaluate}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(f"usage: metad2a {{{','.join(commands)}}} ...", file=sys.stderr if argv else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(console_main())
