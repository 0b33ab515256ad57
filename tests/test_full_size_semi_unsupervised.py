"""Chapter 2's presets at their true size, and the step counts `rfy estimate` projects from."""
from __future__ import annotations

import pytest
import torch

from full_size import take_real_steps
from rfy.semi_unsupervised import Config, cost_parts, load_data, train_model
from rfy.semi_unsupervised import experiments
from rfy.semi_unsupervised.cost import synthetic_images


@pytest.mark.full_size
def test_full_preset_takes_real_steps_at_fashion_mnist_size() -> None:
    config = Config.full()
    parts = cost_parts(config)
    assert [part.name for part in parts] == ["M2 on fashion-mnist", "GM-DGM on fashion-mnist"]
    take_real_steps(parts)


def test_synthetic_fashion_mnist_has_the_real_shape_and_dtype() -> None:
    X, y, X_test, y_test = synthetic_images("fashion-mnist")
    assert X.shape == (60_000, 1, 28, 28) and X_test.shape == (10_000, 1, 28, 28) and X.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [6000] * 10


def test_counted_steps_are_the_steps_training_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config.reduced(epochs=2, repeats=2, stand_in=False, models=("gmdgm",), hidden=(8,), latent_dim=2)
    calls = []
    original = experiments.TrainingStep.__call__
    monkeypatch.setattr(experiments.TrainingStep, "__call__", lambda self, batch: calls.append(len(batch)) or
                        original(self, batch))
    for seed in range(config.repeats):
        train_model("gmdgm", load_data(config, seed), config, seed=seed)
    (part,) = cost_parts(config)
    assert part.steps == len(calls)


def test_a_probe_step_trains_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    original = experiments.TrainingStep.__init__
    monkeypatch.setattr(experiments.TrainingStep, "__init__",
                        lambda self, *args: original(self, *args) or made.append(self))
    probe = cost_parts(Config.reduced(stand_in=False))[0].build(torch.device("cpu"))
    (training_step,) = made
    before = [p.detach().clone() for p in training_step.model.parameters()]
    probe.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, training_step.model.parameters()))
    test_images = len(experiments.load_data(Config.reduced(stand_in=False)).X_test)
    assert probe.evaluate().shape == (min(2048, test_images),)


@pytest.mark.cuda
def test_cuda_graph_steps_equal_ordinary_steps() -> None:
    """The captured and replayed step computes what ordinary steps compute, random draws included."""
    config = Config.full(dataset="digits", hidden=(64, 64), latent_dim=8, label_fraction=0.1, alpha_scale=0.05)
    data = load_data(config.replace(device="cuda"), 0)
    models = []
    for use_graph in (False, True):
        torch.manual_seed(0)
        model = experiments.build_model("gmdgm", data, config)
        step = experiments.TrainingStep(model, experiments.make_optimizer(model, config), data, config, 1.0)
        step.use_graph = use_graph
        batches = torch.randperm(len(data.X_unlabelled), device="cuda")[:config.batch_size * 8].split(config.batch_size)
        for batch in batches:
            step(batch)
        assert (step.graph is not None) == use_graph
        models.append(model)
    for eager, graphed in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-5)
