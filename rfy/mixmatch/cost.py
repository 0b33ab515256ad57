"""What the chapter's preset costs (``rfy.cost``): one part per method, every seed's steps together.

A step is ``Trainer.step`` (one update of the method on a fresh labelled batch and, for MixMatch, K
augmentations of an unlabelled batch), through the run's own ``Trainer``; an evaluation is one batch of
``Trainer.test_error`` (the run evaluates the EMA model on the whole test set every ``eval_every``
steps, ``EVALUATION_BATCH`` images at a time). CIFAR-10 and SVHN are built with their real shapes and
random pixels (uint8 3×32×32, every training image also unlabelled, as ``make_split`` does); the digits
of the reduced preset are scikit-learn's own (bundled, no download).
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch

from rfy.cost import CostPart, Probe
from rfy.data import load_digits
from rfy.distributed import ProcessGroup
from rfy.mixmatch.config import NUM_CLASSES, Config
from rfy.mixmatch.data import DATASET_SETUPS, SemiSupervisedData, load_split, make_split
from rfy.mixmatch.experiments import CPU_THREADS
from rfy.mixmatch.train import Trainer
from rfy.runtime import torch_threads

#: (training images, test images) of the datasets that need a download.
DOWNLOADED_SIZES = {"cifar-10": (50_000, 10_000), "svhn": (73_257, 26_032)}
EVALUATION_BATCH = 1000  # the batch of ``Trainer.test_error``


def num_test_images(config: Config) -> int:
    """How many test images ``config.dataset`` has."""
    if config.dataset in DOWNLOADED_SIZES:
        return DOWNLOADED_SIZES[config.dataset][1]
    return len(load_digits("test")[1])


def evaluations_per_run(config: Config) -> int:
    """Evaluation batches of one run: the test set at every ``eval_every`` steps and after the last step."""
    points = config.steps // config.eval_every + (1 if config.steps % config.eval_every else 0)
    return points * math.ceil(num_test_images(config) / EVALUATION_BATCH)


def cost_parts(config: Config) -> list[CostPart]:
    """One part per method: ``steps`` steps and ``evaluations_per_run`` evaluation batches for every seed."""
    return [CostPart(method, config.steps * config.repeats, functools.partial(trainer_probe, config, method),
                     evaluations=evaluations_per_run(config) * config.repeats, unit="step")
            for method in config.methods]


def synthetic_split(config: Config) -> SemiSupervisedData:
    """``make_split`` of random uint8 images with the dataset's shapes: all its training images, balanced
    labels, and one evaluation batch of test images."""
    train_size, test_count_all = DOWNLOADED_SIZES[config.dataset]
    _, flip, crop_padding = DATASET_SETUPS[config.dataset]
    generator = torch.Generator().manual_seed(config.seed)
    images = lambda count: torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = lambda count: torch.arange(count) % NUM_CLASSES
    test_count = min(test_count_all, EVALUATION_BATCH)
    return make_split(images(train_size), labels(train_size), images(test_count), labels(test_count),
                      per_class=config.labels_per_class, seed=config.seed, flip=flip, crop_padding=crop_padding)


def trainer_probe(config: Config, method: str, device: torch.device) -> Probe:
    """The run's ``Trainer`` for ``method`` on ``device`` (on the CPU with the run's ``CPU_THREADS``); a step is
    ``Trainer.step`` after the λ_u ramp, an evaluation ``Trainer.test_error`` on one batch of test images."""
    if config.dataset in DOWNLOADED_SIZES:
        data = synthetic_split(config)
    else:
        data = load_split(config, config.seed)
        data.test_images, data.test_labels = data.test_images[:EVALUATION_BATCH], data.test_labels[:EVALUATION_BATCH]
    trainer = Trainer(data, config, method, config.seed, group=ProcessGroup(0, 1, device))
    threads = lambda: torch_threads(CPU_THREADS) if device.type == "cpu" else contextlib.nullcontext()

    def step() -> torch.Tensor:
        with threads():
            return trainer.step(config.rampup_steps)

    def evaluate() -> float:
        with threads():
            return trainer.test_error(EVALUATION_BATCH)

    return Probe(step=step, evaluate=evaluate)
