"""The chapter's experiment: the four heads on biased voters, the same on identical voters (the control),
over several seeds; and the full mode on SCUT-FBP5500's five folds."""
from __future__ import annotations

import functools

from rfy.checkpoint import RunState
from rfy.runtime import torch_threads
from rfy.voters.config import SIMULATION, Config
from rfy.voters.runs import condition_runs, summarise
from rfy.voters.simulate import simulate

BIASED, CONTROL = "biased", "control"


def run_simulation(config: Config, state: RunState) -> dict[str, float]:
    """Biased voters (and the control, identical unbiased voters) for every seed of ``config``."""
    metrics: dict[str, float] = {}
    conditions = (BIASED, CONTROL) if config.control else (BIASED,)
    for condition in conditions:
        control = condition == CONTROL
        runs = {seed: condition_runs(config, condition, seed, state,
                                     functools.cache(lambda seed=seed: simulate(config, seed, control=control)[0]))
                for seed in config.seeds}
        metrics.update(summarise(config, runs, "" if condition == BIASED else "control_"))
    return metrics


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The simulation (reduced mode), or SCUT-FBP5500's folds (full mode): flat ``str -> float`` metrics."""
    if config.dataset == SIMULATION:
        with torch_threads(1):  # tiny networks: one thread is fastest, and the same bits on every machine
            return run_simulation(config, state)
    from rfy.voters.scut import run_scut  # full mode only: reads images, needs the pretrained trunk

    return run_scut(config, state)
