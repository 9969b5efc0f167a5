"""The interface every search space implements: its facts and its hooks.

A search space is a plug-in. The command line, the configs, ``paths.py`` and the engine never ask
which space they run on: whatever differs between spaces (the architecture codec, the meta-test
datasets, the meta-training files, the flags only one space has, the files the ``get_files``
scripts fetch, the original's loop quirks, accuracy tables, training the chosen architecture, extra
``metad2a`` sub-commands) is a field or a method of a ``SearchSpace``. Adding a space means writing
one package ``search_spaces/<name>/`` whose ``space.py`` builds a ``SearchSpace`` subclass, and
registering it in ``search_spaces/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import igraph
import torch
from torch import nn

from metad2a.data.catalog import DatasetInfo, resolve_dataset
from metad2a.errors import MetaD2AError
from metad2a.latency import LatencyMeter
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.reproduction import Reproduction


@dataclass(frozen=True)
class FlagSpec:
    """A command-line flag only one space's ``main.py`` has, as plain data (``cli.py`` turns it into
    an argparse argument).

    Attributes:
        names: option strings, the original spelling first (``("--index",)``).
        dest: attribute name, and the key under which ``SearchSpace.options`` receives the value.
        kind: ``"int"``, ``"str"`` or ``"flag"`` (store_true).
        help: help text; "new: ..." marks flags the original does not have.
        default: default value (None / False).
        ignored_by_main: accepted by ``main.py`` but meant for another script sharing the
            original parser (a database builder); ``main.py`` says so when one is given.
        positive: an integer that must be at least 1 when given.
    """

    names: tuple[str, ...]
    dest: str
    kind: Literal["int", "str", "flag"]
    help: str
    default: Any = None
    ignored_by_main: bool = False
    positive: bool = False


@dataclass(frozen=True)
class GetFiles:
    """The front-end commands that fetch the released files, named in "file not found" errors."""

    preprocessed: str = "python get_files/get_preprocessed_data.py"
    generator_checkpoint: str = "python get_files/get_checkpoint.py"
    predictor_checkpoint: str = "python get_files/get_predictor_checkpoint.py"


@dataclass(frozen=True)
class CommandSpec:
    """An extra ``metad2a <name>`` sub-command of a space.

    ``target`` is an entry point, ``"package.module:function"`` (the function takes the remaining
    argv and returns an exit status); it is imported only when the command runs, as console-script
    entry points are, so a space's commands can live in layers above the space.
    """

    name: str
    target: str
    help: str


@dataclass(frozen=True)
class LoopStyle:
    """How meta-training and search loop over the data (docs/fidelity.md#loop-styles).

    Attributes:
        step_per_sample: the generator takes one optimizer step per task and logs its losses
            divided by the task's feature rows, instead of one step per batch divided by the batch.
        pooled_search: at search time each batch of resampled sets is pooled into ONE set: one
            latent, one decoded graph, scored by the predictor on the same pooled set and on the
            graph's sampled edges. Otherwise one graph per resampled set, ranked on canonical graphs.
        max_pooled_batches: the cap on pooled batches per run.
    """

    step_per_sample: bool = False
    pooled_search: bool = False
    max_pooled_batches: int = 10_000


class AccuracyTable(Protocol):
    """Known accuracies of architectures, by dataset column (a benchmark table)."""

    source: str

    def has(self, column: str) -> bool: ...

    def lookup(self, column: str, arch: Any) -> float | None: ...


@dataclass(frozen=True)
class SearchSpace:
    """Facts and hooks of one search space.

    Attributes:
        name: registry key and original ``--graph-data-name`` value.
        cli_name: the ``metad2a <cli_name>`` command that runs this space's ``main.py``.
        nvt: vertex types including start and end.
        max_n: vertices of every full graph.
        start_type, end_type: vertex types of the input and output vertices.
        nvt_flag_offset: ``--nvt`` on the command line is ``nvt - offset``.
        default_num_gen_arch: original ``--num-gen-arch`` default.
        num_archs: distinct architectures of the space (None: too many to matter); a larger
            ``--num-gen-arch`` is refused, since generation could never find that many.
        model_choices: values the original parser accepts for ``--model``/``--model_name``
            (``main.py`` itself runs only ``generator`` and ``predictor``).
        extra_flags: flags of this space's parser beyond the shared ones.
        datasets: meta-test datasets known by name (others work given their bylabel file).
        all_generator, all_predictor: the order ``--data-name all`` runs in each step.
        generator_ranks: the generator's ``--test`` step also loads the predictor and writes its
            architectures sorted by predicted score; there is no predictor ``--test`` step.
        num_gen_arch_dir: meta-test outputs go to ``meta_test/<data>/<num-gen-arch>/``.
        released_generator_epoch: ``--load-epoch`` of the authors' generator checkpoint.
        get_files: the commands that fetch the released files.
        commands: extra ``metad2a`` sub-commands.
        reproduction: the paper's protocol for ``metad2a reproduce`` (docs/fidelity.md#reproduction).
        cost_input_size: image side of the space's networks: a budget's sizes and latency are counted
            at it unless ``--input-size`` says otherwise (docs/fidelity.md#budget), and ``metad2a search``
            trains and exports at it unless ``--image-size`` says otherwise.
        aliases: further names the command lines and the API accept for the space (``--space``).
        prior_dir: the folder of the space's committed prior (``metad2a.priors.load_prior``), the
            checkpoints a search uses without any (docs/data.md#committed-priors); None: it ships none.
        network_weights_hint: what ``build_network``'s ``weights`` are, for help texts and reports
            (empty: the space's networks start from random weights).
    """

    name: str
    cli_name: str
    nvt: int
    max_n: int
    start_type: int = 0
    end_type: int = 1
    nvt_flag_offset: int = 0
    default_num_gen_arch: int = 800
    num_archs: int | None = None
    model_choices: tuple[str, ...] = ("generator", "predictor")
    extra_flags: tuple[FlagSpec, ...] = ()
    datasets: Mapping[str, DatasetInfo] = field(default_factory=dict)
    all_generator: tuple[str, ...] = ()
    all_predictor: tuple[str, ...] = ()
    generator_ranks: bool = False
    num_gen_arch_dir: bool = False
    released_generator_epoch: int = 400
    get_files: GetFiles = GetFiles()
    commands: tuple[CommandSpec, ...] = ()
    reproduction: Reproduction | None = None
    cost_input_size: int = 32
    network_weights_hint: str = ""
    prior_dir: Path | None = None
    aliases: tuple[str, ...] = ()

    # ------------------------------------------------------------------ codec
    def arch_to_igraph(self, arch: Any) -> igraph.Graph:
        raise NotImplementedError

    def igraph_to_arch(self, g: igraph.Graph) -> Any | None:
        """The architecture a graph encodes, or None if the original would reject the graph."""
        raise NotImplementedError

    def is_valid(self, g: igraph.Graph) -> bool:
        raise NotImplementedError

    def arch_from_types(self, types: Sequence[int]) -> Any | None:
        """Fast path for decoded graphs already known to pass the generic DAG check: the
        architecture given the vertex types alone, or None if the space rejects them."""
        raise NotImplementedError

    def arch_types(self, arch: Any) -> list[int]:
        """Vertex types of the graph the predictor encodes for ``arch``."""
        raise NotImplementedError

    def arch_edges(self, arch: Any) -> Sequence[tuple[int, int]]:
        """Edges of the graph the predictor encodes for ``arch``."""
        raise NotImplementedError

    def arch_key(self, arch: Any) -> str:
        """A hashable, printable identity of an architecture (uniqueness during generation); also
        the line written for it in ``run_<k>.txt``."""
        return str(arch)

    def valid_mask(self, graphs: GraphBatch) -> torch.Tensor:
        """The space's acceptance test of decoded graphs on tensors, beyond the generic DAG check
        (``GraphBatch.dag_valid_mask``): [n] bool, True where ``arch_from_types`` gives an
        architecture. The default accepts every graph and leaves the decision to ``arch_from_types``."""
        return torch.ones(len(graphs), dtype=torch.bool, device=graphs.device)

    # ------------------------------------------------------------------ constrained decoding
    # (docs/fidelity.md#constrained-decoding) The generator applies these masks while it decodes
    # (``models.generator.DecodeConstraints``); every decoded graph is then valid.
    def type_mask(self, position: int, types: torch.Tensor) -> torch.Tensor:
        """The vertex types that can still lead to a valid architecture at ``position`` given the
        types decoded so far ``types`` [n, position] -> [n, nvt] bool."""
        raise NotImplementedError(f"{self.name} has no constrained decoding")

    def edge_mask(self, position: int, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The edges from vertices ``0..position-1`` into the new vertex at ``position`` that are
        allowed, and those that are required, given the types ``types`` [n, position + 1]
        -> two [n, position] bool tensors."""
        raise NotImplementedError(f"{self.name} has no constrained decoding")

    @property
    def has_constrained_decoding(self) -> bool:
        """Whether the space implements ``type_mask`` and ``edge_mask``."""
        return type(self).type_mask is not SearchSpace.type_mask

    def fixed_edge_mask(self, edges: Sequence[tuple[int, int]], position: int,
                        types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``edge_mask`` of a space whose graphs all have the edges ``edges``: exactly those."""
        need = torch.zeros(position, dtype=torch.bool, device=types.device)
        for i, j in edges:
            if j == position:
                need[i] = True
        need = need[None].expand(types.size(0), -1)
        return need, need

    # ------------------------------------------------------------------ protocol hooks
    def options(self, values: Mapping[str, Any]) -> Any:
        """This space's options from the values of its ``extra_flags`` (keyed by ``dest``); a
        frozen dataclass, recorded in ``config_{train,test}.json`` and passed back to the hooks."""
        return None

    def loop_style(self, options: Any) -> LoopStyle:
        """How the generator's training and the search loop run under ``options``."""
        return LoopStyle()

    def dataset_info(self, name: str, num_classes: int | None = None) -> DatasetInfo:
        """Facts for a meta-test dataset (see ``data.catalog.resolve_dataset``)."""
        return resolve_dataset(self.datasets, name, num_classes)

    def data_names(self, model: str) -> tuple[str, ...]:
        """The datasets ``--data-name all`` runs for ``model``, in the original's order."""
        return self.all_generator if model == "generator" else self.all_predictor

    def prepare_meta_train(self, kind: str, data_path: Path, num_sample: int,
                           make_model: Callable[[int], nn.Module]) -> tuple[nn.Module, Any]:
        """The model to meta-train and its database (a ``data.meta_train`` database).

        ``make_model(feature_dim)`` builds the model; the space decides whether the model or the
        database comes first, since that fixes which random draws each of them consumes.
        """
        raise NotImplementedError

    def accuracy_table(self, data_path: Path, options: Any) -> AccuracyTable | None:
        """The table that gives the accuracy of ranked architectures, or None."""
        return None

    def trains_selected(self, info: DatasetInfo, options: Any) -> bool:
        """Whether ``--train-arch`` trains the top-1 architecture for this dataset."""
        return False

    def check_train_selected(self, data_path: Path, name: str, out_dir: Path, options: Any) -> None:
        """Fail early, before any model work, when training the selected architecture would fail."""

    def train_selected(self, arch: Any, name: str, data_path: Path, out_dir: Path, options: Any,
                       device: torch.device) -> dict:
        """Train the selected architecture; returns the ``trained`` record of ``result.json``."""
        raise NotImplementedError(f"{self.name} has no training of the selected architecture")

    # ------------------------------------------------------------------ cost hooks (docs/fidelity.md#budget)
    def arch_cost(self, arch: Any, num_classes: int, input_size: int) -> tuple[float, float]:
        """``(parameters in millions, MFLOPs)`` of the network an architecture stands for, with a
        ``num_classes`` head, for one ``3 x input_size x input_size`` image, by the space's own count."""
        raise MetaD2AError(f"the {self.name} space has no cost model; --max-params/--max-flops/--max-latency-ms "
                           f"are not available")

    def latency_ms(self, archs: Sequence[Any], num_classes: int, meter: LatencyMeter) -> list[float]:
        """Latency (ms) of each architecture's network with a ``num_classes`` head on the meter's
        device, batch, threads and input size; measured through ``meter`` (and its cache)."""
        raise MetaD2AError(f"the {self.name} space has no latency model; --max-latency-ms is not available")

    def latency_table(self, meter: LatencyMeter, num_classes: int) -> int:
        """Measure everything the space's latency model needs in advance (``metad2a latency-table``);
        returns the number of entries. Spaces that time each network whole have no table."""
        raise MetaD2AError(f"the {self.name} space times each candidate network whole; it has no latency table")
    # ------------------------------------------------------------------ networks (``metad2a search``, ``metad2a.api``)
    def arch_to_json(self, arch: Any) -> Any:
        """A JSON value that ``arch_from_json`` turns back into ``arch`` (``model.pt``, ``summary.json``)."""
        return self.arch_key(arch)

    def arch_from_json(self, value: Any) -> Any:
        """The architecture ``arch_to_json`` wrote; raises a ``MetaD2AError`` for a malformed value."""
        raise NotImplementedError(f"{self.name} cannot read architectures back")

    def random_archs(self, count: int, seed: int = 0) -> list[Any]:
        """``count`` architectures drawn uniformly from the space (the report's random baseline)."""
        raise NotImplementedError(f"{self.name} cannot draw random architectures")

    def build_network(self, arch: Any, num_classes: int, weights: Path | None = None, seed: int = 0) -> nn.Module:
        """The network ``arch`` stands for, with a ``num_classes``-way head, in eval mode. ``weights``:
        the space's pretrained weights to start from (``network_weights_hint``); ``seed`` seeds the
        random initialisation."""
        raise NotImplementedError(f"{self.name} builds no network")

    def train_network(self, arch: Any, train_set: Any, eval_set: Any, num_classes: int, epochs: int, *,
                      weights: Path | None = None, seed: int = 0, device: torch.device | str = "cpu",
                      on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> nn.Module:
        """Train ``build_network(arch, num_classes, weights, seed)`` for ``epochs`` on ``train_set``
        (items ``(tensor [3, s, s], label)``) with the space's recipe, evaluating on ``eval_set``
        after every epoch; ``on_epoch(epoch, {"train_loss", "train_acc", "eval_loss", "eval_acc"})``.
        Returns the trained network on the CPU, eval mode."""
        raise NotImplementedError(f"{self.name} has no training recipe")

    def draw_arch(self, arch: Any, path: Path) -> bool:
        """Draw the architecture into the PNG ``path`` (matplotlib); False when it cannot."""
        return False

    def describe_arch(self, arch: Any) -> str:
        """A short human-readable line for an architecture (report tables)."""
        return self.arch_key(arch)
