"""The MobileNetV3 / Once-for-All search space: its facts and hooks as a ``SearchSpace``.

Architectures are OFA subnet dicts (``subnet.py``). Meta-training reads the collected databases
(``collected_database.py``, split 70/15/15 on first use). The search is one step: the generator's
``--test`` also loads the predictor and ranks what it generates. By default both loops run as the
original does (docs/fidelity.md#loop-styles); ``--ofa-per-set`` switches to the per-set loops.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import igraph
import torch
from torch import nn

from metad2a import paths
from metad2a.data.catalog import DatasetInfo
from metad2a.data.formats import read_bylabel
from metad2a.data.meta_train import RaggedMetaTrainDatabase
from metad2a.errors import DataFileError
from metad2a.latency import LatencyMeter
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.base import CommandSpec, FlagSpec, GetFiles, LoopStyle, SearchSpace
from metad2a.search_spaces.ofa_mbv3 import subnet
from metad2a.search_spaces.ofa_mbv3.collected_database import (
    collected_database,
    collected_split,
    load_or_make_splits,
)
from metad2a.search_spaces.ofa_mbv3.reproduction import OFA_REPRODUCTION

# Meta-test datasets (docs/fidelity.md#ofa-protocol): 10 runs for the CIFARs, else 1; no accuracy
# table (the searched subnet is evaluated by fine-tuning, a later step). aircraft100 is FGVC's 100
# variants; aircraft30 (manufacturers) is in the original's table and its "all" list although no
# feature file was ever distributed for it.
DATASETS = {
    "cifar10": DatasetInfo(10, runs=10),
    "cifar100": DatasetInfo(100, runs=10),
    "mnist": DatasetInfo(10),
    "svhn": DatasetInfo(10),
    "aircraft30": DatasetInfo(30),
    "aircraft100": DatasetInfo(100),
    "pets": DatasetInfo(37),
}
ALL = ("cifar100", "cifar10", "mnist", "svhn", "aircraft30", "aircraft100", "pets")

GET_GENERATOR_DATABASE = "python get_files/get_generator_database.py"

# The original OFA parser is shared by main.py and build_database.py: the database flags are
# accepted by main.py (and ignored there, as in the original), and ``--model_name`` also accepts
# ``train_arch``, which main.py then rejects. ``--ofa-per-set`` is ours.
FLAGS = (
    FlagSpec(("--index",), "index", "int", "database shard id (build_database.py; main.py ignores it)",
             ignored_by_main=True),
    FlagSpec(("--imgnet",), "imgnet", "str", "ImageNet root with train/ (build_database.py; main.py ignores it)",
             ignored_by_main=True),
    FlagSpec(("--collect",), "collect", "flag", "merge database shards (build_database.py; main.py ignores it)",
             False, ignored_by_main=True),
    FlagSpec(("--ofa-per-set", "--ofa_per_set"), "ofa_per_set", "flag",
             "new: NB201-style behaviour instead of the original OFA loops: batched generator updates "
             "(one step per batch), and at meta-test one graph per resampled set (batched), ranked on "
             "canonical chain graphs", False),
)

COMMANDS = (
    CommandSpec("ofa-build-database", "metad2a.build.ofa_cli:main",
                "build a shard of the OFA meta-training databases from ImageNet (MetaD2A_ofa/build_database.py)"),
    CommandSpec("ofa-evaluate", "metad2a.search_spaces.ofa_mbv3.finetune:main",
                "fine-tune and evaluate the searched subnet (MetaD2A_ofa/evaluation/main.py)"),
)


@dataclass(frozen=True)
class OfaOptions:
    """The OFA-only flag of ``main.py`` that changes behaviour: ``--ofa-per-set``."""

    ofa_per_set: bool = False


@dataclass(frozen=True)
class OfaMbv3(SearchSpace):
    """The MobileNetV3 space: architectures are OFA subnet dicts."""

    # ------------------------------------------------------------------ codec
    def arch_to_igraph(self, arch: Mapping[str, Any]) -> igraph.Graph:
        return subnet.arch_dict_to_igraph(arch)

    def igraph_to_arch(self, g: igraph.Graph) -> dict[str, list[int]] | None:
        return subnet.igraph_to_arch_dict(g)

    def is_valid(self, g: igraph.Graph) -> bool:
        return subnet.is_valid(g)

    def arch_from_types(self, types: Sequence[int]) -> dict[str, list[int]] | None:
        return subnet.types_to_arch_dict(types)

    def arch_types(self, arch: Mapping[str, Any]) -> list[int]:
        return subnet.arch_dict_to_types(arch)

    def arch_edges(self, arch: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
        return subnet.CHAIN_EDGES

    def arch_key(self, arch: Mapping[str, Any]) -> str:
        return subnet.arch_dict_to_str(arch)

    def valid_mask(self, graphs: GraphBatch) -> torch.Tensor:
        """``subnet.is_valid`` beyond the DAG check, on tensors: 22 vertices, layer types on the
        slots, one depth group per stage."""
        t = graphs.types
        slots = t[:, 1:-1]
        layers = (slots >= subnet.FIRST_LAYER_TYPE).all(1)
        group = (slots - subnet.FIRST_LAYER_TYPE).div(subnet.TYPES_PER_DEPTH, rounding_mode="floor")
        group = group.reshape(len(graphs), subnet.NUM_STAGES, subnet.SLOTS_PER_STAGE)
        one_depth = (group == group[:, :, :1]).all(2).all(1)
        ends = (t[:, 0] == subnet.START_TYPE) & (t[:, -1] == subnet.END_TYPE)
        return (graphs.num_vertices == subnet.MAX_N) & layers & one_depth & ends

    # ------------------------------------------------------------------ constrained decoding
    def type_mask(self, position: int, types: torch.Tensor) -> torch.Tensor:
        """Layer types on the slots, and within a stage only the depth group of its first slot
        (docs/fidelity.md#constrained-decoding)."""
        n, dev = types.size(0), types.device
        allowed = torch.zeros(n, subnet.NVT, dtype=torch.bool, device=dev)
        if position == 0:
            allowed[:, subnet.START_TYPE] = True
        elif position == subnet.MAX_N - 1:
            allowed[:, subnet.END_TYPE] = True
        elif (position - 1) % subnet.SLOTS_PER_STAGE == 0:  # first slot of a stage: any layer
            allowed[:, subnet.FIRST_LAYER_TYPE:] = True
        else:  # later slots: the depth group of the stage's previous slot
            group = (torch.arange(subnet.NVT, device=dev) - subnet.FIRST_LAYER_TYPE).div(
                subnet.TYPES_PER_DEPTH, rounding_mode="floor")
            prev = group[types[:, position - 1]]
            allowed = (group[None, :] == prev[:, None]) & (torch.arange(subnet.NVT, device=dev) >= subnet.FIRST_LAYER_TYPE)
        return allowed

    def edge_mask(self, position: int, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly the chain edges."""
        return self.fixed_edge_mask(subnet.CHAIN_EDGES, position, types)

    # ------------------------------------------------------------------ hooks
    def options(self, values: Mapping[str, Any]) -> OfaOptions:
        return OfaOptions(bool(values.get("ofa_per_set", False)))

    def loop_style(self, options: OfaOptions) -> LoopStyle:
        """The original loops (one step per task; one graph per pooled batch of 100 resampled
        sets), unless ``--ofa-per-set`` (docs/fidelity.md#loop-styles)."""
        original = not (options is not None and options.ofa_per_set)
        return LoopStyle(step_per_sample=original, pooled_search=original)

    def prepare_meta_train(self, kind: str, data_path: Path, num_sample: int,
                           make_model: Callable[[int], nn.Module]) -> tuple[nn.Module, RaggedMetaTrainDatabase]:
        """imgnet32 features and the collected database of ``kind``, split 70/15/15 on first use."""
        from metad2a.search_spaces.ofa_mbv3.downloads import PREDICTOR_DATABASE_UNAVAILABLE

        feats = read_bylabel(paths.bylabel(data_path, paths.IMAGENET32),
                             hint=f"download it with `{self.get_files.preprocessed}`")
        # The original builds the model before its database, so a first-use split (torch.randperm)
        # draws from the global RNG after the model's initialisation: keep that order.
        model = make_model(feats[0].size(1))
        hint = (f"download it with `{GET_GENERATOR_DATABASE}`" if kind == "generator"
                else PREDICTOR_DATABASE_UNAVAILABLE)
        splits = load_or_make_splits(data_path, kind, hint)
        graphs = {}
        for name, sp in splits.items():
            try:
                types = [self.arch_types(net) for net in sp.nets]
            except ValueError as e:  # ArchDictError: one line naming the file
                raise DataFileError(f"{collected_split(data_path, kind, name)}: {e}") from e
            graphs[name] = GraphBatch.from_lists(types, [self.arch_edges(n) for n in sp.nets], self.max_n)
        db = RaggedMetaTrainDatabase(
            feats, {k: v.classes for k, v in splits.items()}, graphs, {k: v.acc for k, v in splits.items()},
            splits["train"].mean, splits["train"].std, num_sample, source=str(collected_database(data_path, kind)))
        return model, db

    # ------------------------------------------------------------------ cost (docs/fidelity.md#budget-ofa)
    def arch_cost(self, arch: Mapping[str, Any], num_classes: int, input_size: int) -> tuple[float, float]:
        """once-for-all's count of the extracted subnet with a ``num_classes`` head, in closed form."""
        from metad2a.search_spaces.ofa_mbv3.cost import subnet_size

        params, macs = subnet_size(arch, num_classes, input_size)
        return params / 1e6, macs / 1e6

    def latency_ms(self, archs: Sequence[Mapping[str, Any]], num_classes: int, meter: LatencyMeter) -> list[float]:
        """The sum of the subnet's entries in the per-layer latency table of the meter's fingerprint."""
        from metad2a.search_spaces.ofa_mbv3.latency_table import subnet_latencies

        return subnet_latencies(archs, num_classes, meter)

    def latency_table(self, meter: LatencyMeter, num_classes: int) -> int:
        from metad2a.search_spaces.ofa_mbv3.latency_table import build_table

        return build_table(meter, num_classes)
    # ------------------------------------------------------------------ networks (metad2a search, metad2a.api)
    def arch_to_json(self, arch: Mapping[str, Any]) -> dict[str, list[int]]:
        return subnet.canonical_arch_dict(arch)

    def arch_from_json(self, value: Any) -> dict[str, list[int]]:
        return subnet.canonical_arch_dict(value)

    def random_archs(self, count: int, seed: int = 0) -> list[dict[str, list[int]]]:
        """``count`` subnets sampled like OFA's ``sample_active_subnet`` (``subnet.random_arch_dict``)."""
        import random

        rng = random.Random(seed)
        return [subnet.random_arch_dict(rng) for _ in range(count)]

    def build_network(self, arch: Mapping[str, Any], num_classes: int, weights: Path | None = None,
                      seed: int = 0) -> nn.Module:
        """The subnet extracted from the supernet (its ImageNet weights from ``weights``; without them
        the supernet's random initialisation, seeded) with a fresh ``num_classes``-way head."""
        from metad2a.search_spaces.ofa_mbv3.supernet import extract_subnet, new_classifier

        net = extract_subnet(_supernet(str(weights) if weights is not None else None, seed), arch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            new_classifier(net, num_classes, dropout=0.0)
        return net.eval()

    def train_network(self, arch: Mapping[str, Any], train_set: Any, eval_set: Any, num_classes: int, epochs: int,
                      *, weights: Path | None = None, seed: int = 0, device: torch.device | str = "cpu",
                      on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> nn.Module:
        """Fine-tuning with the evaluation's optimiser (SGD 0.01, momentum 0.9, weight decay 4e-5,
        cosine over ``epochs``, gradient clipping 5, batch 96; docs/fidelity.md#ofa-evaluation), without
        its augmentation: the images come as given."""
        from torch.utils.data import DataLoader

        from metad2a.search_spaces.ofa_mbv3.finetune import FinetuneConfig, test_epoch, train_epoch

        device = torch.device(device)
        cfg = FinetuneConfig(data_name="images", epochs=epochs, report_freq=10**9)
        net = self.build_network(arch, num_classes, weights, seed).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        g = torch.Generator().manual_seed(seed)
        train = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=g)
        test = DataLoader(eval_set, batch_size=cfg.test_batch_size)
        for epoch in range(epochs):
            loss, acc = train_epoch(net, train, opt, cfg, device)
            sched.step()
            eval_loss, eval_acc = test_epoch(net, test, device)
            if on_epoch is not None:
                on_epoch(epoch, {"train_loss": loss, "train_acc": acc, "eval_loss": eval_loss, "eval_acc": eval_acc})
        return net.cpu().eval()

    def draw_arch(self, arch: Mapping[str, Any], path: Path) -> bool:
        from metad2a.search_spaces.ofa_mbv3.drawing import draw_subnet

        draw_subnet(arch, path)
        return True

    def describe_arch(self, arch: Mapping[str, Any]) -> str:
        """Depths per stage and the active layers' kernel/expand pairs, stage by stage."""
        a = subnet.canonical_arch_dict(arch)
        stages = []
        for s in range(subnet.NUM_STAGES):
            i0 = s * subnet.SLOTS_PER_STAGE
            stages.append(" ".join(f"k{a['ks'][i]}e{a['e'][i]}" for i in range(i0, i0 + a["d"][s])))
        return f"d={a['d']} | " + " | ".join(stages)


@functools.lru_cache(maxsize=2)
def _supernet(weights: str | None, seed: int) -> nn.Module:
    """The supernet with the weights of the file ``weights`` (or its seeded random initialisation),
    built once per process (a few seconds)."""
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet, read_supernet_weights

    state = read_supernet_weights(weights) if weights is not None else None
    return build_supernet(state, seed=seed, source=weights or "the supernet weights")


OFA_MBV3 = OfaMbv3(
    name="ofa_mbv3", cli_name="ofa", aliases=("mbv3",), nvt=subnet.NVT, max_n=subnet.MAX_N, start_type=subnet.START_TYPE,
    end_type=subnet.END_TYPE, nvt_flag_offset=subnet.NVT - subnet.NVT_FLAG, default_num_gen_arch=200,
    model_choices=("generator", "predictor", "train_arch"), extra_flags=FLAGS, datasets=DATASETS,
    all_generator=ALL, all_predictor=ALL, generator_ranks=True, num_gen_arch_dir=True,
    released_generator_epoch=120, get_files=GetFiles(generator_checkpoint="python get_files/get_generator_checkpoint.py"),
    commands=COMMANDS, reproduction=OFA_REPRODUCTION, cost_input_size=224,
    network_weights_hint="the supernet's ImageNet weights (MetaD2A_ofa/.torch/ofa_nets/ofa_mbv3_d234_e346_k357_w1.0, "
                         "from `python get_files/get_ofa_supernet.py`)",
)
