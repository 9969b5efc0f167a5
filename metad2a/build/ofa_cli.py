"""``MetaD2A_ofa/build_database.py`` / ``metad2a ofa-build-database``: the command line of
:mod:`metad2a.build.ofa_database`.

The original flags (the OFA ``parser.py`` is shared with ``main.py``, whose flags are accepted and
ignored here), e.g. from inside ``MetaD2A_ofa/``::

    python build_database.py --gpu 0,1 --model_name predictor --index 0 --imgnet $IMGNET_PATH --hs 512 --nz 56
    python build_database.py --model_name predictor --collect

plus our additions: tasks per shard, classes per task, image counts, the weights file, Ray. Each
shard's tasks run as Ray jobs (one GPU each when there are GPUs); ``--gpu`` picks the visible GPUs
of a local Ray instance (``all``: every GPU, ``cpu``: none). Run the same command again to resume
an interrupted shard.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from metad2a.errors import MetaD2AError, user_command

PROG = "build_database.py"


def build_parser() -> argparse.ArgumentParser:
    """The original OFA parser plus the database builder's own flags."""
    from metad2a.parser import build_parser as main_parser
    from metad2a.search_spaces import get_search_space
    from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET

    p = main_parser(get_search_space("ofa_mbv3"))
    p.prog = PROG
    p.description = ("Build one shard (--index) of the OFA/MobileNetV3 predictor or generator meta-training "
                     "database from ImageNet, or merge the shards (--collect). The meta-training flags of "
                     "main.py are accepted and ignored. --batch_size is the evaluation batch; --hs/--nz/"
                     "--num-sample size the predictor that ranks the generator database's candidates.")
    g = p.add_argument_group("database (new)")
    g.add_argument("--num-tasks", type=int, default=100,
                   help="tasks in this shard (the original looped until killed)")
    g.add_argument("--way-min", type=int, default=10, help="fewest classes per task")
    g.add_argument("--way-max", type=int, default=990, help="most classes per task (capped to the classes present)")
    g.add_argument("--way-step", type=int, default=10, help="classes per task: way-min, way-min + step, ...")
    g.add_argument("--val-per-class", type=int, default=10, help="task images per class (seeded sample of val/)")
    g.add_argument("--bn-images", type=int, default=2000,
                   help="training images for BN re-calibration (seeded sample of train/)")
    g.add_argument("--bn-batch-size", type=int, default=200, help="BN re-calibration batch")
    g.add_argument("--image-size", type=int, default=224, help="image side the subnets see (smaller: quick tests)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per job")
    g.add_argument("--candidates", type=int, default=10, help="generator database: subnets ranked per task")
    g.add_argument("--eval-candidates", choices=("all", "chosen"), default="all",
                   help="generator database: measure every candidate (the original) or only the best-ranked")
    # --pred-num-sets is main.py's flag (sets averaged per prediction); here: the feature draws averaged
    # by the predictor per task of the generator database, one by default
    p.set_defaults(pred_num_sets=1)
    g.add_argument("--ofa-weights", default=OFA_SUPERNET_TARGET,
                   help="supernet ImageNet weights (downloaded there when missing, unless --no-download)")
    g.add_argument("--no-download", action="store_true", help="fail instead of downloading missing weights")
    g.add_argument("--random-init", action="store_true",
                   help="a seeded random supernet instead of the ImageNet weights (tests only)")
    g = p.add_argument_group("Ray (new)")
    g.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (e.g. auto or ray://head:10001); default: a local Ray instance. "
                        "--imgnet must be readable at the same path on every node")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    g.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs reserved per task")
    g.add_argument("--gpus-per-task", type=float, default=None,
                   help="GPUs per task, fractions allowed (default: 1 if the cluster has GPUs, else 0)")
    g.add_argument("--retries", type=int, default=2, help="retries of a failed task before it is recorded failed")
    g.add_argument("--retry-failed", action="store_true",
                   help="evaluate again the tasks an earlier run recorded failed")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _gpus(spec: str) -> tuple[float | None, str]:
    """``--gpu``: sets CUDA_VISIBLE_DEVICES for a local Ray instance; returns (GPUs per task or None, device
    for the predictor)."""
    import torch

    spec = str(spec).strip().lower()
    if spec == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return 0.0, "cpu"
    if spec != "all":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", spec)
    return None, "cuda" if torch.cuda.is_available() else "cpu"


@user_command("interrupted; finished tasks are kept; run the same command to resume")
def main(argv: list[str] | None = None) -> int:
    """Run the builder. User errors: one line on stderr and exit status 2."""
    from metad2a.build.ofa_database import OfaBuildConfig, build_shard, collect_database
    from metad2a.build.ray_pool import RayPoolConfig
    from metad2a.config import PREDICTOR_HS
    from metad2a.log import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    if args.model_name is None:
        raise MetaD2AError("--model_name is required: predictor or generator")
    if args.collect:
        if args.model_name not in ("predictor", "generator"):
            raise MetaD2AError(f"--model_name must be predictor or generator, got {args.model_name!r}")
        collect_database(args.data_path, args.model_name)
        return 0
    if args.index is None or args.imgnet is None:
        raise MetaD2AError("building a shard needs --index N and --imgnet DIR (or use --collect)")
    gpus, device = _gpus(args.gpu)
    cfg = OfaBuildConfig(
        model=args.model_name, index=args.index, imgnet=Path(args.imgnet), data_path=Path(args.data_path),
        save_path=Path(args.save_path), num_tasks=args.num_tasks, way_min=args.way_min, way_max=args.way_max,
        way_step=args.way_step, val_per_class=args.val_per_class, bn_images=args.bn_images,
        image_size=args.image_size, batch_size=args.batch_size, bn_batch_size=args.bn_batch_size,
        workers=args.workers, candidates=args.candidates, eval_candidates=args.eval_candidates,
        hs=args.hs if args.hs is not None else PREDICTOR_HS, nz=args.nz, num_sample=args.num_sample,
        pred_num_sets=args.pred_num_sets, weights=Path(args.ofa_weights), random_init=args.random_init,
        download=not args.no_download, seed=args.seed, retry_failed=args.retry_failed)
    pool = RayPoolConfig(address=args.ray_address, num_cpus=args.num_cpus, cpus_per_task=args.cpus_per_task,
                         gpus_per_task=args.gpus_per_task if args.gpus_per_task is not None else gpus,
                         max_retries=args.retries)
    build_shard(cfg, pool, progress=not args.no_progress, device=device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
