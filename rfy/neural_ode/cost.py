"""What the chapter's preset costs (``rfy.cost``): every training it runs, at its true size.

The preset trains three classifiers (ODE-Net and two ResNets) for ``epochs`` passes over the training
images, a continuous normalizing flow for ``cnf_iters`` steps, and three sequence models for
``latent_iters`` full-batch steps each; with the paper's Table 2 part (``table2_observed``), a latent ODE
and an RNN for ``table2_iters`` full-batch steps at each observation count (``table2_only``: those alone).
The adjoint checks train nothing (a few forward and backward
passes of one small block) and are left out. Each probe steps through the same function as the
training loop (``classifier_step``, ``cnf_step``, ``sequence_step``), on random images of the
dataset's size (MNIST is never downloaded here); the two-circles points and spirals are generated,
as in the run.
"""
from __future__ import annotations

import math

import torch

from rfy.cost import CostPart, Probe
from rfy.data import load_digits, to_unit_interval
from rfy.neural_ode.config import SPIRAL_WINDOW, Config
from rfy.neural_ode.experiments import (NUM_CLASSES, SEQUENCE_MODELS, TABLE2_MODELS, accuracy, build_classifier,
                                        build_cnf, build_sequence_models, build_table2_model, classifier_on_device,
                                        classifier_plans, classifier_step, cnf_step, evaluate_nll,
                                        predict_after_window, predict_spirals, sequence_step, spiral_splits,
                                        table2_splits)
from rfy.runtime import seed_everything

#: MNIST's training and test images, [1, 28, 28] each.
MNIST_SIZES = (60_000, 10_000)
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28)}
#: ``accuracy`` and the NFE table evaluate 1000 images at a time; the flow's NLL uses 1000 test points.
EVAL_BATCH = 1000
CNF_TEST_POINTS = 1000


def image_set_sizes(config: Config) -> tuple[int, int]:
    """Training and test images of ``config.dataset`` (the digits split is computed, MNIST's is fixed)."""
    if config.dataset == "digits":
        return len(load_digits("train", seed=config.seed)[1]), len(load_digits("test", seed=config.seed)[1])
    return MNIST_SIZES


def random_images(count: int, config: Config, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random uint8 images of the dataset's shape, as ``load_image_data`` hands them to a model
    (float32 in [0, 1] on ``device``), and random labels."""
    images = torch.randint(0, 256, (count, *IMAGE_SHAPES[config.dataset]), dtype=torch.uint8)
    return to_unit_interval(images.to(device)), torch.randint(0, NUM_CLASSES, (count,), device=device)


def classifier_part(config: Config, name: str, kind: str, blocks: int | None) -> CostPart:
    """One classifier: ``epochs`` × ⌈N / batch⌉ steps; the test set's batches, plus the NFE table for the ODE-Net."""
    n_train, n_test = image_set_sizes(config)
    evaluations = math.ceil(n_test / EVAL_BATCH) + (len(config.nfe_tolerances) if kind == "odenet" else 0)

    def build(device: torch.device) -> Probe:
        seed_everything(config.seed)
        model = build_classifier(kind, config, IMAGE_SHAPES[config.dataset][0], blocks)
        model, optimizer, _ = classifier_on_device(model, config, device)
        X, y = random_images(min(config.batch_size, n_train), config, device)
        X_test, y_test = random_images(min(EVAL_BATCH, n_test), config, device)

        def step() -> torch.Tensor:
            model.train()
            return classifier_step(model, optimizer, X, y, augment=config.augment)

        return Probe(step, lambda: accuracy(model, X_test, y_test))

    return CostPart(name, config.epochs * math.ceil(n_train / config.batch_size), build, evaluations)


def cnf_part(config: Config) -> CostPart:
    """The flow: ``cnf_iters`` steps of ``cnf_batch`` points; held-out NLL before and after training."""

    def build(device: torch.device) -> Probe:
        seed_everything(config.seed)
        flow = build_cnf(config).to(device)
        optimizer = torch.optim.Adam(flow.parameters(), lr=config.cnf_lr)
        batch, test = torch.randn(config.cnf_batch, 2, device=device), torch.randn(CNF_TEST_POINTS, 2, device=device)
        return Probe(lambda: cnf_step(flow, optimizer, batch), lambda: evaluate_nll(flow, test))

    return CostPart("CNF", config.cnf_iters, build, evaluations=2)


def sequence_part(config: Config, name: str) -> CostPart:
    """One sequence model: ``latent_iters`` full-batch steps over the training spirals; one prediction of the
    held-out spirals."""

    def build(device: torch.device) -> Probe:
        train, test = spiral_splits(config, device)
        values, times = train.observations()
        seed_everything(config.seed)
        model = build_sequence_models(config, device)[name]
        optimizer = torch.optim.Adam(model.parameters(), lr=config.latent_lr)

        def step() -> torch.Tensor:
            model.train()
            return sequence_step(model, optimizer, values, times, train.observed, train.times[:SPIRAL_WINDOW])

        return Probe(step, lambda: predict_spirals(model, test))

    return CostPart(name, config.latent_iters, build, evaluations=1)


def table2_part(config: Config, name: str, n_observed: int) -> CostPart:
    """One model of the Table 2 part: ``table2_iters`` full-batch steps on the training spirals observed at
    ``n_observed`` times; one prediction of the held-out spirals."""

    def build(device: torch.device) -> Probe:
        train, test = table2_splits(config, n_observed, device)
        values, times = train.observations()
        seed_everything(config.seed)
        model = build_table2_model(name, config, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.latent_lr)

        def step() -> torch.Tensor:
            model.train()
            return sequence_step(model, optimizer, values, times, train.observed, train.times[: train.window])

        return Probe(step, lambda: predict_after_window(model, test))

    return CostPart(f"{name}, {n_observed} points", config.table2_iters, build, evaluations=1)


def cost_parts(config: Config) -> list[CostPart]:
    """Every training of the preset, in the order ``run_experiment`` runs them (see ``rfy.cost``)."""
    table2 = [table2_part(config, name, n) for n in config.table2_observed for name in TABLE2_MODELS]
    if config.table2_only:
        return table2
    return [*(classifier_part(config, *plan) for plan in classifier_plans(config)), cnf_part(config),
            *(sequence_part(config, name) for name in SEQUENCE_MODELS), *table2]
