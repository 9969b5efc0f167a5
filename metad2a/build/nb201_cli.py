"""``metad2a build-database``: the command line of :mod:`metad2a.build.nb201_database`.

Example (a local Ray instance with 4 CPUs; files for ``main.py --data-path db``)::

    metad2a build-database --dataset cifar100 --data-path data --out db \\
        --num-tasks 200 --classes-per-task 20 --archs-per-task 10 --epochs 12 --num-cpus 4

Run the same command again to resume a build that was interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from metad2a.errors import user_command

PROG = "metad2a build-database"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None/False ones (their help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


def build_parser() -> argparse.ArgumentParser:
    """The ``build-database`` argument parser."""
    from metad2a.build.nb201_database import DEFAULT_RECIPE
    from metad2a.data.image_sources import SOURCES

    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=_HelpFormatter, allow_abbrev=False,
        description="Build a NB201 meta-training database (task list, predictor and generator databases, "
                    "features) from labelled images, training the architectures as Ray tasks.",
    )
    a = p.add_argument
    g = p.add_argument_group("source and output")
    g.add_argument("--dataset", required=True,
                   help=f"an image folder (one sub-folder per class, or train/ and test/ sub-folders) or one of: "
                        f"{', '.join(SOURCES)} (their files in <data-path>/raw-data/<dataset>/)")
    g.add_argument("--data-path", "--data_path", dest="data_path", default="data", help="data root of named datasets")
    g.add_argument("--out", required=True, help="output folder: pass it to main.py --data-path")
    g = p.add_argument_group("tasks")
    g.add_argument("--num-tasks", type=int, default=100, help="tasks (class subsets) to sample")
    g.add_argument("--classes-per-task", type=int, default=20, help="classes per task (original: 20)")
    g.add_argument("--archs-per-task", type=int, default=10, help="NB201 architectures trained per task")
    g.add_argument("--top-k", type=int, default=1, help="best architectures per task in the generator database")
    g.add_argument("--images-per-class", type=int, default=100,
                   help="training images per class (seeded subset); 0 = all")
    g.add_argument("--test-images-per-class", type=int, default=50,
                   help="test images per class for the accuracy (seeded subset); 0 = all")
    g.add_argument("--seed", type=int, default=0, help="seeds the tasks, architectures, subsets and training")
    g = p.add_argument_group("training recipe (original optimiser, shorter schedule)")
    g.add_argument("--epochs", type=int, default=DEFAULT_RECIPE.epochs, help="epochs per architecture")
    g.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=DEFAULT_RECIPE.batch_size,
                   help="training batch")
    g.add_argument("--lr", type=float, default=DEFAULT_RECIPE.lr, help="initial learning rate (cosine to 0)")
    g.add_argument("--C", type=int, default=DEFAULT_RECIPE.channel, help="TinyNetwork channels of the first stage")
    g.add_argument("--N", type=int, default=DEFAULT_RECIPE.num_cells, help="TinyNetwork cells per stage")
    g = p.add_argument_group("features (imgnet32bylabel.pt)")
    g.add_argument("--extractor", default="efficientnet_lite0", help="efficientnet_lite0 (offline) or resnet18")
    g.add_argument("--features-per-class", type=int, default=None,
                   help="images per class in the feature file (seeded subset; default: all training images)")
    g.add_argument("--feature-image-size", type=int, default=None, help="extractor input side (default: its own)")
    g.add_argument("--feature-batch-size", type=int, default=64, help="extractor batch")
    g.add_argument("--feature-device", default="auto", help="auto (CUDA when available), cpu or cuda")
    g = p.add_argument_group("Ray")
    g.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (e.g. auto or ray://head:10001); default: a local Ray instance")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    g.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs reserved per training job")
    g.add_argument("--gpus-per-task", type=float, default=None,
                   help="GPUs per training job, fractions allowed (default: 1 if the cluster has GPUs, else 0)")
    g.add_argument("--retries", type=int, default=2, help="retries of a failed training before it is recorded failed")
    g.add_argument("--retry-failed", action="store_true", help="train again the jobs an earlier run recorded failed")
    a("--no-progress", action="store_true", help="no progress bar")
    return p


@user_command("interrupted; finished jobs are kept; run the same command to resume")
def main(argv: list[str] | None = None) -> int:
    """Run ``build-database``. User errors: one line on stderr and exit status 2."""
    import torch

    from metad2a.build.nb201_database import BuildConfig, build_database
    from metad2a.build.ray_pool import RayPoolConfig
    from metad2a.log import setup_logging
    from metad2a.search_spaces.nasbench201.train import TrainRecipe

    args = build_parser().parse_args(argv)
    setup_logging()
    device = args.feature_device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, channel=args.C,
                         num_cells=args.N)
    cfg = BuildConfig(
        dataset=args.dataset, out=Path(args.out), data_path=Path(args.data_path), num_tasks=args.num_tasks,
        classes_per_task=args.classes_per_task, archs_per_task=args.archs_per_task, top_k=args.top_k,
        images_per_class=args.images_per_class or None, test_images_per_class=args.test_images_per_class or None,
        recipe=recipe, seed=args.seed, extractor=args.extractor, features_per_class=args.features_per_class,
        feature_image_size=args.feature_image_size, feature_batch_size=args.feature_batch_size,
        feature_device=device, retry_failed=args.retry_failed)
    pool = RayPoolConfig(address=args.ray_address, num_cpus=args.num_cpus, cpus_per_task=args.cpus_per_task,
                         gpus_per_task=args.gpus_per_task, max_retries=args.retries)
    build_database(cfg, pool, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
