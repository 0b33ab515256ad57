"""The chapter's experiment: K learners against one embedding (K = 1) trained by the same pipeline, over seeds."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from rfy.checkpoint import RunState
from rfy.divide_conquer.config import Config
from rfy.divide_conquer.data import RetrievalData, load_data
from rfy.divide_conquer.evaluation import recall_at_k
from rfy.divide_conquer.losses import split_embedding
from rfy.divide_conquer.train import TrainResult, train


@torch.no_grad()
def learner_domain_recall(result: TrainResult, data: RetrievalData, batch_size: int = 1024) -> torch.Tensor:
    """R@1 (%) of each learner's slice alone, retrieving among the test images of each domain: ``[K, domains]``."""
    model = result.model.eval()
    device = next(model.parameters()).device
    images = data.test_images.to(device)
    outputs = torch.cat([model(images[start:start + batch_size]).float()
                         for start in range(0, len(images), batch_size)])
    slices = split_embedding(outputs, result.learners)
    table = torch.zeros(result.learners, len(data.domain_names))
    for domain in range(len(data.domain_names)):
        chosen = (data.test_domains == domain).to(device)
        for learner in range(result.learners):
            table[learner, domain] = recall_at_k(slices[learner][chosen], data.test_labels.to(device)[chosen], (1,))[1]
    return table


def cluster_domains(result: TrainResult, data: RetrievalData) -> torch.Tensor:
    """The share of each domain in each learner's last training cluster: ``[K, domains]``, rows summing to 1."""
    assignment, domains = result.assignments[-1], data.train_domains.cpu()
    counts = torch.zeros(result.learners, len(data.domain_names))
    counts.index_put_((assignment, domains), torch.ones(len(domains)), accumulate=True)
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1)


def specialisation(recall: torch.Tensor, shares: torch.Tensor) -> float:
    """How much better each learner retrieves in its own domain than in the others (R@1 points, mean over learners).

    A learner's own domain is the most common one in its cluster.
    """
    own = shares.argmax(dim=1)
    gains = [float(recall[k, own[k]] - torch.cat([recall[k, :own[k]], recall[k, own[k] + 1:]]).mean())
             for k in range(len(own))]
    return statistics.fmean(gains)


def run_metrics(result: TrainResult, data: RetrievalData) -> dict[str, float]:
    """Final test metrics, R@1 before training and after every evaluated epoch, and (K > 1) how the learners
    split the domains."""
    metrics = {name: value for name, value in result.final.items() if name not in ("epoch", "seconds", "loss")}
    metrics["initial_recall@1"] = result.initial["recall@1"]
    metrics["train_seconds"] = result.train_seconds
    metrics["mean_recall@1_over_epochs"] = statistics.fmean(entry["recall@1"] for entry in result.history)
    for entry in result.history:
        metrics[f"epoch{entry['epoch']}_recall@1"] = entry["recall@1"]
    if result.learners > 1 and result.assignments and len(data.domain_names) > 1:
        recall, shares = learner_domain_recall(result, data), cluster_domains(result, data)
        metrics["specialisation"] = specialisation(recall, shares)
        metrics["clusters_covering_domains"] = float(len(set(shares.argmax(dim=1).tolist())))
    return metrics


@dataclass
class Comparison:
    """One experiment: per-run metrics of every (K, seed) pair, the runs trained in this session, the data.

    ``metrics`` is what the run record holds (``comparison_metrics``); ``results`` keeps each trained
    run for the figures (a stage finished in an earlier session has its metrics only).
    """

    config: Config
    runs: dict[tuple[int, int], dict[str, float]]
    results: dict[tuple[int, int], TrainResult]
    data: dict[int, RetrievalData]

    @property
    def metrics(self) -> dict[str, float]:
        """The flat metrics of the run record."""
        return comparison_metrics(self.config, self.runs)

    @property
    def arms(self) -> tuple[int, int]:
        return self.config.learners, self.config.baseline_learners

    def values(self, learners: int, name: str) -> list[float]:
        return [self.runs[learners, seed][name] for seed in self.config.seeds]


def arms(config: Config) -> tuple[int, ...]:
    """The K of the method and of the baseline (once when they coincide)."""
    return tuple(dict.fromkeys((config.learners, config.baseline_learners)))


def train_run(config: Config, learners: int, seed: int, checkpoint: Path | None = None,
              data: RetrievalData | None = None) -> TrainResult:
    """Train the embedding with K = ``learners`` on the split drawn by ``seed``."""
    return train(data if data is not None else load_data(config.dataset, seed), config, learners, seed,
                 checkpoint_path=checkpoint)


def compare(config: Config, state: RunState) -> Comparison:
    """K = ``learners`` against K = ``baseline_learners`` on every seed, each (K, seed) run its own resumable
    stage: the experiment the command line and the notebook run."""
    data = {seed: load_data(config.dataset, seed) for seed in config.seeds}
    results: dict[tuple[int, int], TrainResult] = {}

    def stage(learners: int, seed: int):
        def fit(checkpoint: Path) -> dict[str, float]:
            results[learners, seed] = train_run(config, learners, seed, checkpoint, data[seed])
            return run_metrics(results[learners, seed], data[seed])
        return fit

    runs = {(k, seed): state.stage(f"k{k}-seed{seed}", stage(k, seed)) for seed in config.seeds for k in arms(config)}
    return Comparison(config, runs, results, data)


def comparison_metrics(config: Config, metrics: dict[tuple[int, int], dict[str, float]]) -> dict[str, float]:
    """Flat metrics for a run record: ``k<K>_<name>`` means (and ``_std``) over seeds, gains, per-seed values.

    ``gain_<name>`` is the gain of the means, $\\bar m_K - \\bar m_1$; ``min_paired_gain_recall@1`` the smallest
    gain of a run over the baseline run of the same seed (same data), $\\min_s (R@1_{K,s} - R@1_{1,s})$.
    """
    flat: dict[str, float] = {}
    for k in arms(config):
        names = metrics[k, config.seeds[0]].keys()
        for name in names:
            values = [metrics[k, seed][name] for seed in config.seeds]
            flat[f"k{k}_{name}"] = statistics.fmean(values)
            if not name.startswith("epoch"):
                flat[f"k{k}_{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
                for seed, value in zip(config.seeds, values):
                    flat[f"k{k}_seed{seed}_{name}"] = value
    method, baseline = config.learners, config.baseline_learners
    for name in (*(f"recall@{k}" for k in config.recall_ks), "nmi", "mean_recall@1_over_epochs"):
        flat[f"gain_{name}"] = flat[f"k{method}_{name}"] - flat[f"k{baseline}_{name}"]
    flat["min_paired_gain_recall@1"] = min(metrics[method, seed]["recall@1"] - metrics[baseline, seed]["recall@1"]
                                           for seed in config.seeds)
    return flat


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The record's metrics of ``compare``: means, stds, gains and per-run metrics."""
    return compare(config, state).metrics
