"""The NAS-Bench-201 search space: its facts and hooks as a ``SearchSpace``.

Architectures are NB201 strings (``cell.py``). Meta-training reads the original task files
(``meta_train_task_lst.pt``, ``meta_train_tasks_<model>.pt`` and ``_idx.pt``, docs/data.md); the
predictor's search looks the ranked cells up in the NB201 table (``table.py``) for the CIFARs and
trains the top-1 cell with the original recipe for the other datasets (``seeds.py``,
docs/fidelity.md#train-arch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import igraph
import torch
from torch import nn

from metad2a import paths
from metad2a.data.catalog import DatasetInfo
from metad2a.data.formats import read_bylabel, read_meta_train, read_task_list
from metad2a.data.meta_train import MetaTrainDatabase
from metad2a.latency import LatencyMeter
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.base import CommandSpec, FlagSpec, GetFiles, SearchSpace
from metad2a.search_spaces.nasbench201 import cell
from metad2a.search_spaces.nasbench201.reproduction import NB201_REPRODUCTION
from metad2a.search_spaces.nasbench201.table import (
    NASBENCH201_FILE,
    AccuracyTable,
    read_nasbench201_pt,
    read_nb201_csv,
)

log = logging.getLogger("metad2a")

# Meta-test datasets (docs/fidelity.md#nb201-protocol): the CIFARs are searched 10 times and their
# 30 top-ranked cells looked up in the NB201 table; the others searched once and the top-1 trained.
DATASETS = {
    "cifar10": DatasetInfo(10, runs=10, top_n=30, table_column="cifar10"),
    "cifar100": DatasetInfo(100, runs=10, top_n=30, table_column="cifar100"),
    "mnist": DatasetInfo(10),
    "svhn": DatasetInfo(10),
    "aircraft": DatasetInfo(30),
    "pets": DatasetInfo(37),
}
# The original's order for --data-name all differs between the two steps.
ALL_GENERATOR = ("cifar100", "cifar10", "mnist", "svhn", "aircraft", "pets")
ALL_PREDICTOR = ("cifar10", "cifar100", "mnist", "svhn", "aircraft", "pets")

FLAGS = (
    FlagSpec(("--nb201-table", "--nb201_table"), "nb201_table", "str",
             "new: NB201 accuracy CSV (arch_str, <dataset>_test_200ep columns) instead of data/nasbench201.pt"),
    FlagSpec(("--epochs",), "epochs", "int",
             "new: epochs of --train-arch training (default: the original recipe's, 200; 50 for mnist)",
             positive=True),
)

COMMANDS = (
    CommandSpec("nb201-info", "metad2a.search_spaces.nasbench201.info:main",
                "parameters and MFLOPs of an NB201 cell's network, as JSON"),
    CommandSpec("build-database", "metad2a.build.nb201_cli:main",
                "build an NB201 meta-training database from labelled images (Ray)"),
)


@dataclass(frozen=True)
class Nb201Options:
    """The NB201-only flags: ``--nb201-table`` and ``--epochs``."""

    nb201_table: Path | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class NasBench201(SearchSpace):
    """The NB201 space: architectures are NB201 strings."""

    # ------------------------------------------------------------------ codec
    def arch_to_igraph(self, arch: str) -> igraph.Graph:
        return cell.arch_str_to_igraph(arch)

    def igraph_to_arch(self, g: igraph.Graph) -> str | None:
        return cell.igraph_to_arch_str(g)

    def is_valid(self, g: igraph.Graph) -> bool:
        return cell.is_valid(g)

    def arch_from_types(self, types: Sequence[int]) -> str | None:
        return cell.types_to_arch_str(types)

    def arch_types(self, arch: str) -> list[int]:
        return cell.arch_str_to_types(arch)

    def arch_edges(self, arch: str) -> tuple[tuple[int, int], ...]:
        return cell.CANONICAL_EDGES

    def valid_mask(self, graphs: GraphBatch) -> torch.Tensor:
        """``cell.is_valid`` beyond the DAG check, on tensors: 8 vertices, operation types in between."""
        middle = graphs.types[:, 1:-1]
        ops = ((middle >= cell.FIRST_OP_TYPE) & (middle < cell.NVT)).all(1)
        ends = (graphs.types[:, 0] == cell.START_TYPE) & (graphs.types[:, -1] == cell.END_TYPE)
        return (graphs.num_vertices == cell.MAX_N) & ops & ends

    # ------------------------------------------------------------------ constrained decoding
    def type_mask(self, position: int, types: torch.Tensor) -> torch.Tensor:
        """Operation types between the start and the end vertex (docs/fidelity.md#constrained-decoding)."""
        allowed = torch.zeros(cell.NVT, dtype=torch.bool, device=types.device)
        if position == 0:
            allowed[cell.START_TYPE] = True
        elif position == cell.MAX_N - 1:
            allowed[cell.END_TYPE] = True
        else:
            allowed[cell.FIRST_OP_TYPE:] = True
        return allowed[None].expand(types.size(0), -1)

    def edge_mask(self, position: int, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly the canonical cell edges (the only topology NB201 graphs have)."""
        return self.fixed_edge_mask(cell.CANONICAL_EDGES, position, types)

    # ------------------------------------------------------------------ hooks
    def options(self, values: Mapping[str, Any]) -> Nb201Options:
        table = values.get("nb201_table")
        return Nb201Options(Path(table) if table else None, values.get("epochs"))

    def prepare_meta_train(self, kind: str, data_path: Path, num_sample: int,
                           make_model: Callable[[int], nn.Module]) -> tuple[nn.Module, MetaTrainDatabase]:
        """Reads imgnet32 features, the task list and ``meta_train_tasks_<kind>.pt`` (+ ``_idx.pt``)."""
        hint = f"download it with `{self.get_files.preprocessed}` or build one with `metad2a build-database`"
        db_file, idx_file = paths.meta_train_tasks(data_path, kind)
        for p in (db_file, idx_file):
            paths.require(p, hint)
        tasks = read_task_list(paths.require(Path(data_path) / paths.META_TRAIN_TASK_LST, hint), hint)
        mt = read_meta_train(db_file, idx_file, hint)
        feats = read_bylabel(paths.bylabel(data_path, paths.IMAGENET32), hint=hint)
        db = MetaTrainDatabase(mt, tasks, feats, self.max_n, num_sample, class_offset=1, source=str(db_file))
        # the database draws no random numbers, so building the model after it changes nothing
        return make_model(feats[0].size(1)), db

    def accuracy_table(self, data_path: Path, options: Nb201Options) -> AccuracyTable | None:
        """``--nb201-table`` if given, else ``<data>/nasbench201.pt`` if present, else None (warned)."""
        if options.nb201_table is not None:
            return read_nb201_csv(options.nb201_table)
        p = Path(data_path) / NASBENCH201_FILE
        if p.is_file():
            return read_nasbench201_pt(p)
        log.warning(f"warning: no accuracy table ({p} missing, no --nb201-table); reporting predictions only")
        return None

    def trains_selected(self, info: DatasetInfo, options: Nb201Options) -> bool:
        """Datasets without a table column (mnist, svhn, aircraft, pets, yours) train the top-1 cell."""
        return info.table_column is None

    def check_train_selected(self, data_path: Path, name: str, out_dir: Path, options: Nb201Options) -> None:
        from metad2a.data.arch_data import check_raw_data
        from metad2a.search_spaces.nasbench201.seeds import missing_seeds

        if missing_seeds(out_dir):  # raw images are needed only for seeds still to train
            check_raw_data(data_path, name)

    def train_selected(self, arch: str, name: str, data_path: Path, out_dir: Path, options: Nb201Options,
                       device: torch.device) -> dict:
        """The top-1 cell trained with the original's seeds and recipe, reusing ``seed-XXXX.pth``
        files already in ``out_dir`` (docs/fidelity.md#train-arch)."""
        from metad2a.search_spaces.nasbench201.seeds import ORIGINAL_SEEDS, train_selected_arch
        from metad2a.search_spaces.nasbench201.train import TrainRecipe

        recipe = TrainRecipe.original(name).with_epochs(options.epochs)
        log.info(f"==> train the selected architecture on {name} ({recipe.epochs} epochs, seeds "
                 f"{', '.join(map(str, ORIGINAL_SEEDS))}): {arch}")
        seed_runs = train_selected_arch(arch, name, data_path, out_dir, recipe, ORIGINAL_SEEDS, device)
        return {"arch": arch, "epochs": recipe.epochs, "seeds": [r.seed for r in seed_runs],
                "x_test_acc": [r.acc for r in seed_runs], "reused": [r.reused for r in seed_runs],
                "files": [r.path.name for r in seed_runs], "param_mb": seed_runs[0].param,
                "flop_mb": seed_runs[0].flop}

    # ------------------------------------------------------------------ cost (docs/fidelity.md#budget-nb201)
    def arch_cost(self, arch: str, num_classes: int, input_size: int) -> tuple[float, float]:
        """The benchmark's count of ``TinyNetwork(arch, C=16, N=5, num_classes)`` (the network the
        table's accuracies and ``--train-arch`` belong to), in closed form."""
        from metad2a.search_spaces.nasbench201.network import tinynetwork_sizes

        params, mflops = tinynetwork_sizes(arch, num_classes=num_classes, input_size=(input_size, input_size))
        return params / 1e6, mflops

    def latency_ms(self, archs: Sequence[str], num_classes: int, meter: LatencyMeter) -> list[float]:
        """Each candidate's ``TinyNetwork(arch, C=16, N=5, num_classes)`` built and timed whole,
        cached under ``<arch>|classes=<n>``."""
        from metad2a.search_spaces.nasbench201.network import TinyNetwork

        def build(arch: str) -> tuple[nn.Module, tuple[int, ...]]:
            return TinyNetwork(arch, num_classes=num_classes), meter.image_shape()

        return [meter.measure(f"{a}|classes={num_classes}", lambda a=a: build(a)) for a in archs]
    # ------------------------------------------------------------------ networks (metad2a search, metad2a.api)
    def arch_from_json(self, value: Any) -> str:
        cell.arch_str_to_ops(value)  # raises ArchStringError naming the problem
        return value

    def random_archs(self, count: int, seed: int = 0) -> list[str]:
        """``count`` cells with each of the six operations drawn uniformly (repeats possible)."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(cell.OPS), (count, 6), generator=g).tolist()
        return [cell.ops_to_arch_str([cell.OPS[i] for i in row]) for row in idx]

    def build_network(self, arch: str, num_classes: int, weights: Path | None = None, seed: int = 0) -> nn.Module:
        """``TinyNetwork(arch, C=16, N=5, num_classes)``: the network of the benchmark and of
        ``--train-arch`` (random weights; NB201 has no pretrained weights)."""
        from metad2a.search_spaces.nasbench201.network import TinyNetwork
        from metad2a.search_spaces.nasbench201.train import TrainRecipe

        r = TrainRecipe()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TinyNetwork(arch, C=r.channel, N=r.num_cells, num_classes=num_classes).eval()

    def train_network(self, arch: str, train_set: Any, eval_set: Any, num_classes: int, epochs: int, *,
                      weights: Path | None = None, seed: int = 0, device: torch.device | str = "cpu",
                      on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> nn.Module:
        """The original ``--train-arch`` recipe (``train.TrainRecipe``: SGD 0.1, Nesterov, cosine,
        batch 256) for ``epochs`` epochs, evaluated on ``eval_set`` after every epoch."""
        from metad2a.search_spaces.nasbench201.train import TrainRecipe, train_arch

        def report(epoch: int, m: dict[str, Any]) -> None:
            if on_epoch is not None:
                vl, v1, _ = m["valid"]["eval"]
                on_epoch(epoch, {"train_loss": m["train_loss"], "train_acc": m["train_acc1"],
                                 "eval_loss": vl, "eval_acc": v1})

        out = train_arch(arch, train_set, {"eval": eval_set}, num_classes, TrainRecipe(epochs=epochs), seed=seed,
                         device=device, progress=False, on_epoch=report)
        net = self.build_network(arch, num_classes)
        net.load_state_dict(out["net_state_dict"])
        return net.eval()

    def draw_arch(self, arch: str, path: Path) -> bool:
        from metad2a.search_spaces.nasbench201.drawing import draw_cell

        draw_cell(arch, path)
        return True


# the committed NB201 prior (docs/data.md#nb201-prior): package data, regenerated by scripts/build_nb201_prior.py
PRIOR_DIR = Path(__file__).resolve().parents[2] / "priors" / "nasbench201"

NASBENCH201 = NasBench201(
    prior_dir=PRIOR_DIR, aliases=("nb201",),
    name="nasbench201", cli_name="nasbench201", nvt=cell.NVT, max_n=cell.MAX_N, start_type=cell.START_TYPE,
    end_type=cell.END_TYPE, default_num_gen_arch=800, num_archs=cell.NUM_ARCHS, extra_flags=FLAGS,
    datasets=DATASETS,
    all_generator=ALL_GENERATOR, all_predictor=ALL_PREDICTOR, released_generator_epoch=400,
    get_files=GetFiles(generator_checkpoint="python get_files/get_checkpoint.py"), commands=COMMANDS,
    reproduction=NB201_REPRODUCTION,
)
