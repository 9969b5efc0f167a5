"""The original ``main.py`` flags of a search space, as one argparse parser.

Shared by ``main.py`` (``cli.py``) and by a database builder whose original parser is the same one.
Space-specific defaults and extra flags come from the ``SearchSpace``.
"""

from __future__ import annotations

import argparse

from metad2a.config import GENERATOR_HS, PREDICTOR_HS
from metad2a.search_spaces.base import FlagSpec, SearchSpace


def str2bool(v: str) -> bool:
    """The original's rule: "t"/"true" (any case) is True, anything else False."""
    return str(v).lower() in ("t", "true")


def _add_flag(p: argparse.ArgumentParser, f: FlagSpec) -> None:
    if f.kind == "flag":
        p.add_argument(*f.names, dest=f.dest, action="store_true", default=bool(f.default), help=f.help)
    else:
        p.add_argument(*f.names, dest=f.dest, type=int if f.kind == "int" else str, default=f.default, help=f.help)


def add_budget_flags(p: argparse.ArgumentParser, input_size: int | str) -> None:
    """The search budget (docs/fidelity.md#budget), shared by both spaces' ``main.py`` and ``metad2a search``
    (``input_size``: the default image side, as shown in the help)."""
    g = p.add_argument_group("new: search under a budget (--test; every limit is optional)")
    a = g.add_argument
    a("--max-params", dest="max_params", type=float, default=None, metavar="M",
      help="at most M million parameters (with the target's classifier)")
    a("--max-flops", dest="max_flops", type=float, default=None, metavar="MFLOPS",
      help="at most MFLOPS million multiply-accumulates per image")
    a("--max-latency-ms", dest="max_latency_ms", type=float, default=None, metavar="MS",
      help="at most MS milliseconds per forward pass, measured on --latency-device")
    a("--latency-device", dest="latency_device", default="cpu", help="cpu, cuda or cuda:<index>")
    a("--latency-batch", dest="latency_batch", type=int, default=1, metavar="N", help="images per timed pass")
    a("--latency-threads", dest="latency_threads", type=int, default=1, metavar="N",
      help="torch intra-op threads while timing")
    a("--latency-cache", dest="latency_cache", default=None, metavar="PATH",
      help="folder of latency caches (one file per device fingerprint), or one cache file; "
           "default <save-path>/latency")
    a("--input-size", dest="input_size", type=int, default=None, metavar="PX",
      help=f"image side the budget is counted at (%(default)s: {input_size})")


def build_parser(space: SearchSpace) -> argparse.ArgumentParser:
    """The original ``parser.py`` flags with their defaults, plus our additions (marked "new").

    Space-specific defaults (``--nvt``, ``--num-gen-arch``, ``--graph-data-name``), the ``--model``
    choices and the extra flags come from the ``SearchSpace`` object.
    """
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
      help=f"generator checkpoint epoch for meta-test (the released one is {space.released_generator_epoch})")
    a("--data-name", "--data_name", dest="data_name", type=str, default=None,
      help=f"meta-test dataset: {', '.join(space.datasets)}, 'all', or any NAME with "
           f"<data-path>/NAMEbylabel.pt")
    a("--num-class", "--num_class", dest="num_class", type=int, default=None,
      help="classes of the meta-test dataset (default: the space's list, else all classes of the file)")
    a("--num-gen-arch", "--num_gen_arch", dest="num_gen_arch", type=int, default=space.default_num_gen_arch,
      help="unique valid architectures to generate")
    a("--train-arch", "--train_arch", dest="train_arch", type=str2bool, default=True,
      help="train/report the selected architecture (true/false)")
    a("--resume", action="store_true", help="new: continue meta-training from the last finished epoch")
    a("--overwrite", action="store_true",
      help="new: delete the meta-training run already in --save-path (checkpoints, resume_state.pt, "
           "results.jsonl, log) and train from scratch")
    a("--constrained-decoding", "--constrained_decoding", dest="constrained_decoding", action="store_true",
      help="new: at search time decode only graphs that are valid architectures of the space (masks "
           "impossible vertex types and edges and renormalises the rest); off by default, as in the original")
    a("--fast-resampling", "--fast_resampling", dest="fast_resampling", action="store_true",
      help="new: at search time draw each resampled set's rows from 40 random numbers per class instead of one "
           "per feature row (uniform too, but other sets for a seed); off by default")
    add_budget_flags(p, space.cost_input_size)
    a("--rank-loss", "--rank_loss", dest="rank_loss", type=float, default=0.0,
      help="new: predictor meta-training adds this weight x a pairwise ranking loss to the MSE (0: original)")
    a("--pred-num-sets", "--pred_num_sets", dest="pred_num_sets", type=int, default=10,
      help="new: resampled sets of the target each prediction is averaged over when ranking (original: 10)")
    a("--ensemble", nargs="+", default=[], metavar="CKPT",
      help="new: further predictor checkpoints whose predictions are averaged with ckpt_max_corr.pt's")
    a("--likelihood-weight", "--likelihood_weight", dest="likelihood_weight", type=float, default=0.0,
      help="new: rank by (1 - W) x standardised prediction + W x the generator's standardised "
           "log-likelihood of the architecture, W in [0, 1] (0: the original ranking; 1: the likelihood alone)")
    for f in space.extra_flags:
        _add_flag(p, f)
    return p
