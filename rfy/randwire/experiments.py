"""The chapter's experiment: networks from each generator over several graph seeds, baselines, removal study.

Each network is one resumable stage: it is built from its graphs, trained, evaluated, and (for the
first ``removal_instances`` instances of each random generator) probed by removing every node and
every edge in turn without retraining. Graph 0 of each random generator is also trained
``training_repeats`` more times from other seeds, which measures the spread that training alone
causes. The stage keeps only JSON (accuracy, size, the removal damages with the degrees involved);
``Study`` turns the stages into the flat metrics and the claims.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from torch import nn

from rfy.checkpoint import RunState
from rfy.randwire.config import BASELINE_KINDS, Config
from rfy.randwire.graphs import DAG, GraphSpec, parse_generator, stage_graphs
from rfy.randwire.network import RandWireNet, count_flops, flop_matched_resnet, removed
from rfy.randwire.train import ImageData, load_data, evaluate_accuracy, train_network
from rfy.runtime import seed_everything, torch_threads

NUM_CLASSES = 10
STEM_STRIDES = {"digits": (1, 1), "cifar-10": (1, 1)}  # ImageNet's small regime uses (2, 2) at 224×224
RESNET = "resnet"
REPEAT_SEED_STRIDE = 10**13


def graph_seed(config: Config, instance: int) -> int:
    """The seed of instance ``instance`` of a generator: the run's seed picks a fresh set of graphs."""
    return 1000 * config.seed + instance


def training_seed(config: Config, instance: int, repeat: int = 0) -> int:
    """The seed of the initial weights and batch order: the graph seed for ``repeat`` 0; a repeat r > 0 trains the
    same graph again from ``graph_seed + r·10^13``, a seed no graph of any run uses (graph seeds stay below
    2.2·10^12, and r ≤ ``MAX_REPEATS`` keeps the seed small enough for the batch-order seeds derived from it)."""
    return graph_seed(config, instance) + REPEAT_SEED_STRIDE * repeat


def instances(config: Config, generator: str) -> int:
    """How many graphs a generator contributes: ``graph_seeds`` if it is random, one if it is fixed."""
    if generator in BASELINE_KINDS or generator in config.baselines:
        return 1
    return config.graph_seeds if parse_generator(generator, config.nodes).is_random else 1


def network_list(config: Config) -> list[tuple[str, int]]:
    """Every (generator or baseline, instance) pair the experiment trains, in order."""
    return [(name, index) for name in (*config.generators, *config.baselines) for index in range(instances(config, name))]


def repeat_list(config: Config) -> list[tuple[str, int]]:
    """Every (random generator, repeat) pair: graph 0 of the generator trained again from another seed."""
    return [(name, repeat) for name in config.generators if instances(config, name) > 1
            for repeat in range(1, config.training_repeats + 1)]


def build_randwire(config: Config, spec: GraphSpec, instance: int, shape: tuple[int, int, int]) -> RandWireNet:
    """A RandWire network whose ``config.stages`` stages each draw their own graph from ``spec``."""
    dags = stage_graphs(spec, config.nodes, config.stages, graph_seed(config, instance))
    return RandWireNet(dags, in_channels=shape[0], channels=config.channels, width=config.width,
                       num_classes=NUM_CLASSES, strides=STEM_STRIDES[config.dataset], dropout=config.dropout)


def build_network(config: Config, name: str, instance: int, shape: tuple[int, int, int]) -> nn.Module:
    """The network called ``name``: a RandWire from a generator or graph, or the ResNet FLOP-matched to the first one."""
    if name == RESNET:
        reference = config.generators[0] if config.generators else config.baselines[0]
        target = count_flops(build_randwire(config, parse_generator(reference, config.nodes), 0, shape), shape)
        return flop_matched_resnet(target, in_channels=shape[0], image_size=shape[1], num_classes=NUM_CLASSES)
    return build_randwire(config, parse_generator(name, config.nodes), instance, shape)


def generator_slug(name: str) -> str:
    """``ws-4-0.75`` for ``WS(4, 0.75)``, ``resnet`` for the ResNet: the name in metric keys."""
    return RESNET if name == RESNET else parse_generator(name, 2**31).slug


def network_key(name: str, instance: int, repeat: int = 0) -> str:
    """``ws-4-0.75-g0`` (``ws-4-0.75-g0-t1`` for repeat 1): generator slug and instance, as used in stage names and
    metric keys."""
    return f"{generator_slug(name)}-g{instance}" + (f"-t{repeat}" if repeat else "")


NODE_FIELDS = ("stage", "node", "in_degree", "out_degree", "damage")
EDGE_FIELDS = ("stage", "source", "target", "target_in_degree", "damage")


def removal_columns(rows: list[dict[str, float]], fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Removal rows as one array per field (empty arrays when there are no rows)."""
    return {field: np.asarray([row[field] for row in rows], dtype=float) for field in fields}


def removal_study(model: RandWireNet, data: ImageData, *, limit: int = 0, autocast: bool = False) -> dict[str, Any]:
    """Test-accuracy drop (points) when each node, then each edge, of each stage is removed from the trained net.

    Node rows have the keys of ``NODE_FIELDS``, edge rows those of ``EDGE_FIELDS`` (the edge runs source → target).
    """
    base = evaluate_accuracy(model, data, limit=limit, autocast=autocast)
    nodes, edges = [], []
    for index, stage in enumerate(model.stages):
        dag: DAG = stage.dag
        for node in range(dag.num_nodes):
            with removed(stage, node=node):
                damage = base - evaluate_accuracy(model, data, limit=limit, autocast=autocast)
            nodes.append(dict(zip(NODE_FIELDS, (index, node, dag.in_degree(node), dag.out_degree(node), damage))))
        for u, v in dag.edges:
            with removed(stage, edge=(u, v)):
                damage = base - evaluate_accuracy(model, data, limit=limit, autocast=autocast)
            edges.append(dict(zip(EDGE_FIELDS, (index, u, v, dag.in_degree(v), damage))))
    return {"accuracy": base, "nodes": nodes, "edges": edges}


def train_one(config: Config, data: ImageData, name: str, instance: int,
              checkpoint: Path | None = None, *, repeat: int = 0) -> dict[str, Any]:
    """Build, train and evaluate one network (and run its removal study when asked); JSON-ready results.

    ``repeat`` > 0 trains the same graphs from another seed (``training_seed``) and skips the removal study.
    """
    seed = training_seed(config, instance, repeat)
    seed_everything(seed)
    model = build_network(config, name, instance, data.shape)
    flops, params = count_flops(model, data.shape), sum(p.numel() for p in model.parameters())
    result = train_network(model, data, config, seed, checkpoint_path=checkpoint,
                           desc=network_key(name, instance, repeat))
    payload: dict[str, Any] = {"name": name, "instance": instance, "accuracy": result.accuracy, "flops": flops,
                               "params": params, "train_seconds": result.train_seconds, "history": result.history}
    random = name not in BASELINE_KINDS and name not in config.baselines
    if random and not repeat and instance < config.removal_instances and isinstance(model, RandWireNet):
        device_data = data.to(next(model.parameters()).device)
        payload["removal"] = removal_study(model, device_data, limit=config.removal_eval_images,
                                           autocast=config.mixed_precision)
    return payload


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y``; NaN (undefined) when either is constant, as the in-degree
    of every edge target of a BA(M) graph is (M)."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def defined_mean(values: list[float]) -> tuple[float, int]:
    """The mean of the values that are not NaN, and how many there are (NaN, 0 when none is)."""
    defined = [value for value in values if not math.isnan(value)]
    return (statistics.fmean(defined) if defined else float("nan")), len(defined)


def pooled_std(groups: list[list[float]]) -> float:
    """Pooled standard deviation of groups with possibly different means: $\\sqrt{\\frac{1}{G}\\sum_g s_g^2}$,
    the root of the mean sample variance over the G groups of at least two values (NaN when there is none)."""
    variances = [statistics.variance(group) for group in groups if len(group) > 1]
    return math.sqrt(statistics.fmean(variances)) if variances else float("nan")


@dataclass
class Study:
    """Every trained network's results, with the summaries the chapter's figures and claims use."""

    config: Config
    runs: dict[tuple[str, int], dict[str, Any]]
    repeats: dict[tuple[str, int], dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.config.dataset

    def accuracies(self, name: str) -> list[float]:
        """Test accuracy (%) of each instance of generator or baseline ``name``."""
        return [self.runs[name, index]["accuracy"] for index in range(instances(self.config, name))]

    def training_spread(self, name: str) -> list[float]:
        """Test accuracy (%) of graph 0 of ``name`` trained from each seed: the run itself, then its repeats."""
        repeats = sorted(repeat for generator, repeat in self.repeats if generator == name)
        return [self.runs[name, 0]["accuracy"], *(self.repeats[name, repeat]["accuracy"] for repeat in repeats)]

    def removal_rows(self, kind: str) -> dict[str, np.ndarray]:
        """All ``"nodes"`` or ``"edges"`` removal rows of every probed network, one array per field."""
        rows = [row for run in self.runs.values() for row in run.get("removal", {}).get(kind, [])]
        return removal_columns(rows, NODE_FIELDS if kind == "nodes" else EDGE_FIELDS)

    @property
    def metrics(self) -> dict[str, float]:
        """Flat metrics: per network, per generator (mean/std/min/max), the weakest instance, the removal study."""
        prefix, flat = self.prefix, {}
        for (name, index), run in self.runs.items():
            key = f"{prefix}_{network_key(name, index)}"
            for field in ("accuracy", "flops", "params", "train_seconds"):
                flat[f"{key}_{field}"] = float(run[field])
        random_accuracies, spreads = [], []
        for name in dict.fromkeys(name for name, _ in self.runs):
            values = self.accuracies(name)
            slug = generator_slug(name)
            flat[f"{prefix}_{slug}_accuracy_mean"] = statistics.fmean(values)
            flat[f"{prefix}_{slug}_accuracy_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            flat[f"{prefix}_{slug}_accuracy_min"] = min(values)
            flat[f"{prefix}_{slug}_accuracy_max"] = max(values)
            if name in self.config.generators:
                random_accuracies += values
                spreads.append(max(values) - min(values))
        if random_accuracies:
            flat[f"{prefix}_generators_accuracy_min"] = min(random_accuracies)
            flat[f"{prefix}_generators_accuracy_mean"] = statistics.fmean(random_accuracies)
            flat[f"{prefix}_generators_range_max"] = max(spreads)
            baselines = [flat[f"{prefix}_{generator_slug(name)}_accuracy_mean"] for name in self.config.baselines]
            if baselines:
                gap = flat[f"{prefix}_generators_accuracy_mean"] - min(baselines)
                flat[f"{prefix}_gap_to_weakest_baseline"] = gap
                flat[f"{prefix}_range_over_gap"] = max(spreads) / gap if gap > 0 else float("inf")
        repeated = list(dict.fromkeys(name for name, _ in self.repeats))
        if repeated:
            graph_std = pooled_std([self.accuracies(name) for name in repeated])
            training_std = pooled_std([self.training_spread(name) for name in repeated])
            flat[f"{prefix}_graph_spread_std"] = graph_std
            flat[f"{prefix}_training_spread_std"] = training_std
            flat[f"{prefix}_graph_over_training_spread"] = (graph_std / training_std if training_std > 0
                                                            else float("inf"))
            for (name, repeat), run in self.repeats.items():
                flat[f"{prefix}_{network_key(name, 0, repeat)}_accuracy"] = float(run["accuracy"])
        probed = [(key, run["removal"]) for key, run in self.runs.items() if "removal" in run]
        correlations: dict[str, list[float]] = {"node_out": [], "node_in": [], "edge_in": []}
        for (name, index), removal in probed:
            nodes = removal_columns(removal["nodes"], NODE_FIELDS)
            edges = removal_columns(removal["edges"], EDGE_FIELDS)
            key = f"{prefix}_{network_key(name, index)}"
            values = {"node_out": spearman(list(nodes["out_degree"]), list(nodes["damage"])),
                      "node_in": spearman(list(nodes["in_degree"]), list(nodes["damage"])),
                      "edge_in": spearman(list(edges["target_in_degree"]), list(edges["damage"]))}
            flat[f"{key}_node_removal_damage_mean"] = float(nodes["damage"].mean())
            flat[f"{key}_node_removal_spearman_out_degree"] = values["node_out"]
            flat[f"{key}_edge_removal_spearman_target_in_degree"] = values["edge_in"]
            for name_, value in values.items():
                correlations[name_].append(value)
        if probed:
            nodes, edges = self.removal_rows("nodes"), self.removal_rows("edges")
            flat[f"{prefix}_node_removal_damage_mean"] = float(nodes["damage"].mean())
            flat[f"{prefix}_edge_removal_damage_mean"] = float(edges["damage"].mean()) if len(edges["damage"]) else 0.0
            # A correlation is undefined (NaN) where a degree is constant: every edge of BA(M) enters a node of
            # in-degree M. The means are over the defined ones, and each says how many networks it averages.
            for name_, metric in (("node_out", "node_removal_spearman_out_degree"),
                                  ("node_in", "node_removal_spearman_in_degree"),
                                  ("edge_in", "edge_removal_spearman_target_in_degree")):
                mean, count = defined_mean(correlations[name_])
                flat[f"{prefix}_{metric}"] = mean
                flat[f"{prefix}_{metric}_networks"] = float(count)
        return flat


def training_threads(config: Config) -> contextlib.AbstractContextManager:
    """The CPU threads the study trains on: one in reduced mode, torch's default otherwise.

    Reduced mode's tensors are tiny: a second CPU thread only adds synchronisation (and, on a busy machine,
    spinning), and one fixed count makes a seed give the same numbers in the notebook, the CLI and the sweep.
    """
    return torch_threads(1) if config.mode == "reduced" else contextlib.nullcontext()


def run_study(config: Config, state: RunState, data: ImageData | None = None) -> Study:
    """Train every network of ``config`` as its own resumable stage and collect the results."""
    data = data if data is not None else load_data(config)

    def stage(name: str, index: int):
        return lambda checkpoint: train_one(config, data, name, index, checkpoint)

    def repeat_stage(name: str, repeat: int):
        return lambda checkpoint: train_one(config, data, name, 0, checkpoint, repeat=repeat)

    with training_threads(config):
        runs = {(name, index): state.stage(network_key(name, index), stage(name, index))
                for name, index in network_list(config)}
        repeats = {(name, repeat): state.stage(network_key(name, 0, repeat), repeat_stage(name, repeat))
                   for name, repeat in repeat_list(config)}
    return Study(config, runs, repeats)


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The chapter's experiment for ``python -m rfy run randwire``: the flat metrics of ``run_study``."""
    return run_study(config, state).metrics
