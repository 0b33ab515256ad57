"""Chapter 3's full preset at its true size (CelebA-shaped random faces), and the step count of ``cost_parts``."""
import math

import pytest

from rfy.debiasing.face_files import GROUP_NAMES
from rfy.debiasing import Config, alpha_sweep, cost_parts
from rfy.debiasing.cost import set_sizes
from rfy.runtime import torch_threads
from tests.full_size import take_real_steps
from probe_checks import checked, optimizer_step_counts


def check_evaluation(name: str, result: dict[str, float]) -> None:
    """An accuracy (%) for each of CelebA's four groups and for the negatives, their mean and variance."""
    assert set(result) == {*GROUP_NAMES, "negatives", "mean", "variance"}, name
    assert all(0.0 <= result[key] <= 100.0 for key in (*GROUP_NAMES, "negatives", "mean")), name


@pytest.mark.full_size
def test_the_full_preset_takes_a_real_step_of_every_method_at_its_true_size():
    """The six methods, 3×64×64 uint8 faces, batch 64 (a few seconds)."""
    config = Config.full()
    parts = cost_parts(config)
    assert len(parts) == 2 + len(config.alphas)
    assert set_sizes(config) == (100_000 + 9_469, 100_000, 5 * 300)
    take_real_steps([checked(part, check_evaluation) for part in parts])


@torch_threads(1)
def test_cost_parts_counts_the_steps_the_reduced_run_takes():
    """Every optimiser step of the reduced sweep (two seeds, one epoch, one α, to keep the test short),
    counted as it happens and summed per method over the seeds."""
    config = Config.reduced(epochs=1, repeats=2, alphas=(0.01,))
    parts = cost_parts(config)
    with optimizer_step_counts() as counts:
        alpha_sweep(config)
    assert len(counts) == config.repeats * len(parts)  # one optimiser per method and seed
    per_method = [sum(steps for _, steps in counts[i :: len(parts)]) for i in range(len(parts))]
    assert per_method == [part.steps for part in parts]
    positives = set_sizes(config)[1]
    assert parts[-1].evaluations - parts[0].evaluations == config.repeats * math.ceil(positives / 1024)
