"""The chapter's experiment: the supervised baseline, MixMatch and its ablations over several seeds."""
from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass
from pathlib import Path

from rfy.checkpoint import RunState
from rfy.mixmatch.config import NUM_CLASSES, Config
from rfy.mixmatch.data import load_split
from rfy.mixmatch.train import TrainResult, train
from rfy.runtime import select_device, torch_threads

LAST_EVALUATIONS = 20  # the paper reports the median error of the last 20 checkpoints
FINAL, PAPER_STATISTIC = "error", "error_median_last"  # the two per-run errors: last evaluation, paper's median


def median_of_last(errors: list[float], count: int = LAST_EVALUATIONS) -> float:
    """The paper's reported statistic: the median test error of the last ``count`` evaluations of a run."""
    if not errors:
        raise ValueError("a run needs at least one evaluation")
    return statistics.median(errors[-count:])


def run_metrics(result: TrainResult, target_errors: tuple[float, ...]) -> dict[str, float]:
    """Final and median-of-last-20 test error, training time and speed, and the time to reach each target error."""
    errors = [entry["error"] for entry in result.history]
    metrics = {FINAL: errors[-1], PAPER_STATISTIC: median_of_last(errors),
               "train_seconds": result.train_seconds, "steps_per_s": result.steps_per_s}
    for target in target_errors:
        reached = [entry["seconds"] for entry in result.history if entry["error"] <= target]
        if reached:
            metrics[f"seconds_to_error_{target:g}"] = reached[0]
    return metrics


def metric_prefix(config: Config) -> str:
    """``<dataset>_<total labels>``, e.g. ``cifar-10_250``: metric names say which setting they measure."""
    return f"{config.dataset}_{config.labels_per_class * NUM_CLASSES}"


@dataclass
class Comparison:
    """One experiment: per-run metrics of every (method, seed) pair, and the runs trained in this session.

    ``metrics`` is what the run record holds (``comparison_metrics``); ``results`` keeps each trained
    run's history for the figures (a stage finished in an earlier session has its metrics only).
    """

    config: Config
    runs: dict[tuple[str, int], dict[str, float]]
    results: dict[tuple[str, int], TrainResult]

    @property
    def metrics(self) -> dict[str, float]:
        """The flat metrics of the run record."""
        return comparison_metrics(self.config, self.runs)

    def errors(self, method: str, statistic: str = PAPER_STATISTIC) -> list[float]:
        """Test errors (%) of ``method``, one per seed: the median of the last 20 evaluations, or the final one."""
        return [self.runs[method, seed][statistic] for seed in self.config.seeds]

    def mean(self, method: str, statistic: str = PAPER_STATISTIC) -> float:
        return statistics.fmean(self.errors(method, statistic))

    def std(self, method: str, statistic: str = PAPER_STATISTIC) -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        errors = self.errors(method, statistic)
        return statistics.stdev(errors) if len(errors) > 1 else 0.0


CPU_THREADS = 1  # tiny networks: one thread is nearly as fast, and a seed gives the same bits on any machine


def train_run(config: Config, method: str, seed: int, checkpoint: Path | None = None) -> TrainResult:
    """Train ``method`` on the split drawn by ``seed`` (on the CPU with ``CPU_THREADS`` torch threads)."""
    on_cpu = select_device(config.device).type == "cpu"
    with torch_threads(CPU_THREADS) if on_cpu else contextlib.nullcontext():
        return train(load_split(config, seed), config, method, seed, checkpoint_path=checkpoint)


def compare_methods(config: Config, state: RunState) -> Comparison:
    """Every (method, seed) run as its own resumable stage: the experiment the command line and the notebook run."""
    results: dict[tuple[str, int], TrainResult] = {}

    def stage(method: str, seed: int):
        def fit(checkpoint: Path) -> dict[str, float]:
            results[method, seed] = train_run(config, method, seed, checkpoint)
            return run_metrics(results[method, seed], config.target_errors)
        return fit

    runs = {(method, seed): state.stage(f"{method}-seed{seed}", stage(method, seed))
            for seed in config.seeds for method in config.methods}
    return Comparison(config, runs, results)


def comparison_metrics(config: Config, metrics: dict[tuple[str, int], dict[str, float]]) -> dict[str, float]:
    """Flat metrics for a run record: per method the mean and std over seeds of the final error (``…_error``)
    and of the paper's statistic (``…_error_median_last``), and per run its metrics."""
    comparison = Comparison(config, metrics, {})
    prefix, flat = metric_prefix(config), {}
    for method in config.methods:
        for statistic in (FINAL, PAPER_STATISTIC):
            flat[f"{prefix}_{method}_{statistic}"] = comparison.mean(method, statistic)
            flat[f"{prefix}_{method}_{statistic}_std"] = comparison.std(method, statistic)
        for seed in config.seeds:
            for name, value in metrics[method, seed].items():
                flat[f"{prefix}_{method}_seed{seed}_{name}"] = value
    return flat


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The record's metrics of ``compare_methods``: means, stds and per-run metrics."""
    return compare_methods(config, state).metrics
