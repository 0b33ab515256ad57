"""Chapter 1's full preset at its true size (MNIST-shaped random images), and the step count of ``cost_parts``."""
import math

import pytest
import torch

from rfy.neural_ode import Config, cost_parts
from rfy.neural_ode.experiments import (compare_classifiers, load_image_data, train_cnf, train_latent_models,
                                        train_table2)
from rfy.runtime import torch_threads
from tests.full_size import take_real_steps
from probe_checks import checked, optimizer_step_counts


def check_evaluation(name: str, result: object) -> None:
    """Classifiers give an accuracy, the flow a finite NLL, sequence models a path [100 spirals, 75 times, 2];
    the Table 2 models one [100, 200, 2], finite after the observation window."""
    if name == "CNF":
        assert math.isfinite(result)
    elif isinstance(result, torch.Tensor) and "points" in name:
        assert result.shape == (100, 200, 2) and bool(torch.isfinite(result[:, 100:]).all())
    elif isinstance(result, torch.Tensor):
        assert result.shape == (100, 75, 2) and bool(torch.isfinite(result).all())
    else:
        assert 0.0 <= result <= 1.0


@pytest.mark.full_size
def test_the_full_preset_takes_a_real_step_of_every_training_at_its_true_size():
    """All thirteen trainings (about 30 s on two idle cores, most of it the ODE-Net's dopri5 adjoint step and
    its evaluation batch of 1000 images), the last six those of the paper's Table 2."""
    parts = cost_parts(Config.full())
    table2 = [f"{name}, {n} points" for n in (30, 50, 100) for name in ("latent ODE", "RNN")]
    assert [part.name for part in parts] == ["ODE-Net", "ResNet-6", "ResNet-1", "CNF", "latent ODE", "RNN",
                                             "RNN on a grid", *table2]
    assert [part.name for part in cost_parts(Config.full(table2_only=True))] == table2
    assert parts[0].steps == 160 * math.ceil(60_000 / 128)
    take_real_steps([checked(part, check_evaluation) for part in parts])


@torch_threads(1)
def test_cost_parts_counts_the_steps_the_reduced_run_takes():
    """Every optimiser step of the reduced preset's trainings (with one epoch and a few flow and sequence
    iterations, to keep the test short; on one thread, as small models train fastest), counted as they
    happen, per training, in order."""
    config = Config.reduced(epochs=1, cnf_iters=3, latent_iters=2)
    with optimizer_step_counts() as counts:
        compare_classifiers(config, load_image_data(config))
        train_cnf(config)
        train_latent_models(config)
    assert [steps for _, steps in counts] == [part.steps for part in cost_parts(config)]
    assert [part.steps for part in cost_parts(Config.reduced())][:3] == [Config().epochs * counts[0][1]] * 3


@torch_threads(1)
def test_cost_parts_counts_the_steps_of_the_table2_part():
    """The Table 2 part alone, tiny: ``table2_iters`` steps per model and observation count, in order."""
    config = Config.full(table2_only=True, table2_spirals=4, table2_iters=2, table2_observed=(3, 5),
                         latent_solver="rk4", device="cpu")
    with optimizer_step_counts() as counts:
        train_table2(config)
    assert [steps for _, steps in counts] == [part.steps for part in cost_parts(config)] == [2] * 4
