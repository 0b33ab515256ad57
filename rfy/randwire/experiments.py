"""The chapter's experiment: networks from each generator over several graph seeds, baselines, removal study.

Each network is one resumable stage: it is built from its graphs, trained, evaluated, and (for the
first ``removal_instances`` instances of each random generator) probed by removing every node and
every edge in turn without retraining. The stage keeps only JSON (accuracy, size, the removal
damages with the degrees involved); ``Study`` turns the stages into the flat metrics and the claims.
"""
from __future__ import annotations

import contextlib
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


def graph_seed(config: Config, instance: int) -> int:
    """The seed of instance ``instance`` of a generator: the run's seed picks a fresh set of graphs."""
    return 1000 * config.seed + instance


def instances(config: Config, generator: str) -> int:
    """How many graphs a generator contributes: ``graph_seeds`` if it is random, one if it is fixed."""
    if generator in BASELINE_KINDS or generator in config.baselines:
        return 1
    return config.graph_seeds if parse_generator(generator, config.nodes).is_random else 1


def network_list(config: Config) -> list[tuple[str, int]]:
    """Every (generator or baseline, instance) pair the experiment trains, in order."""
    return [(name, index) for name in (*config.generators, *config.baselines) for index in range(instances(config, name))]


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


def network_key(name: str, instance: int) -> str:
    """``ws-4-0.75-g0``: generator slug and instance, as used in stage names and metric keys."""
    return f"{generator_slug(name)}-g{instance}"


def removal_study(model: RandWireNet, data: ImageData, *, limit: int = 0, autocast: bool = False) -> dict[str, Any]:
    """Test-accuracy drop (points) when each node, then each edge, of each stage is removed from the trained net.

    Rows are ``[stage, node, in_degree, out_degree, damage]`` and ``[stage, u, v, in_degree(v), damage]``.
    """
    base = evaluate_accuracy(model, data, limit=limit, autocast=autocast)
    nodes, edges = [], []
    for index, stage in enumerate(model.stages):
        dag: DAG = stage.dag
        for node in range(dag.num_nodes):
            with removed(stage, node=node):
                damage = base - evaluate_accuracy(model, data, limit=limit, autocast=autocast)
            nodes.append([index, node, dag.in_degree(node), dag.out_degree(node), damage])
        for u, v in dag.edges:
            with removed(stage, edge=(u, v)):
                damage = base - evaluate_accuracy(model, data, limit=limit, autocast=autocast)
            edges.append([index, u, v, dag.in_degree(v), damage])
    return {"accuracy": base, "nodes": nodes, "edges": edges}


def train_one(config: Config, data: ImageData, name: str, instance: int,
              checkpoint: Path | None = None) -> dict[str, Any]:
    """Build, train and evaluate one network (and run its removal study when asked); JSON-ready results."""
    seed = graph_seed(config, instance)
    seed_everything(seed)
    model = build_network(config, name, instance, data.shape)
    flops, params = count_flops(model, data.shape), sum(p.numel() for p in model.parameters())
    result = train_network(model, data, config, seed, checkpoint_path=checkpoint, desc=network_key(name, instance))
    payload: dict[str, Any] = {"name": name, "instance": instance, "accuracy": result.accuracy, "flops": flops,
                               "params": params, "train_seconds": result.train_seconds, "history": result.history}
    random = name not in BASELINE_KINDS and name not in config.baselines
    if random and instance < config.removal_instances and isinstance(model, RandWireNet):
        device_data = data.to(next(model.parameters()).device)
        payload["removal"] = removal_study(model, device_data, limit=config.removal_eval_images,
                                           autocast=config.mixed_precision)
    return payload


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (0 when either is constant)."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0
    return float(spearmanr(x, y).statistic)


@dataclass
class Study:
    """Every trained network's results, with the summaries the chapter's figures and claims use."""

    config: Config
    runs: dict[tuple[str, int], dict[str, Any]]

    @property
    def prefix(self) -> str:
        return self.config.dataset

    def accuracies(self, name: str) -> list[float]:
        """Test accuracy (%) of each instance of generator or baseline ``name``."""
        return [self.runs[name, index]["accuracy"] for index in range(instances(self.config, name))]

    def removal_rows(self, kind: str) -> np.ndarray:
        """All ``"nodes"`` or ``"edges"`` removal rows of every probed network, as one array."""
        rows = [row for run in self.runs.values() for row in run.get("removal", {}).get(kind, [])]
        return np.asarray(rows, dtype=float).reshape(-1, 5)

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
        probed = [(key, run["removal"]) for key, run in self.runs.items() if "removal" in run]
        correlations: dict[str, list[float]] = {"node_out": [], "node_in": [], "edge_in": []}
        for (name, index), removal in probed:
            nodes = np.asarray(removal["nodes"], dtype=float).reshape(-1, 5)
            edges = np.asarray(removal["edges"], dtype=float).reshape(-1, 5)
            key = f"{prefix}_{network_key(name, index)}"
            values = {"node_out": spearman(list(nodes[:, 3]), list(nodes[:, 4])),
                      "node_in": spearman(list(nodes[:, 2]), list(nodes[:, 4])),
                      "edge_in": spearman(list(edges[:, 3]), list(edges[:, 4])) if len(edges) else 0.0}
            flat[f"{key}_node_removal_damage_mean"] = float(nodes[:, 4].mean())
            flat[f"{key}_node_removal_spearman_out_degree"] = values["node_out"]
            flat[f"{key}_edge_removal_spearman_target_in_degree"] = values["edge_in"]
            for name_, value in values.items():
                correlations[name_].append(value)
        if probed:
            nodes, edges = self.removal_rows("nodes"), self.removal_rows("edges")
            flat[f"{prefix}_node_removal_damage_mean"] = float(nodes[:, 4].mean())
            flat[f"{prefix}_edge_removal_damage_mean"] = float(edges[:, 4].mean()) if len(edges) else 0.0
            flat[f"{prefix}_node_removal_spearman_out_degree"] = statistics.fmean(correlations["node_out"])
            flat[f"{prefix}_node_removal_spearman_in_degree"] = statistics.fmean(correlations["node_in"])
            flat[f"{prefix}_edge_removal_spearman_target_in_degree"] = statistics.fmean(correlations["edge_in"])
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

    with training_threads(config):
        runs = {(name, index): state.stage(network_key(name, index), stage(name, index))
                for name, index in network_list(config)}
    return Study(config, runs)


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The chapter's experiment for ``python -m rfy run randwire``: the flat metrics of ``run_study``."""
    return run_study(config, state).metrics
