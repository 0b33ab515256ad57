"""What the chapter's presets cost: each model's real training step on data of the real shape (``rfy.cost``)."""
from __future__ import annotations

import math

import torch

from rfy.cost import CostPart, Probe
from rfy.semi_unsupervised.config import N_CLASSES, Config
from rfy.semi_unsupervised.data import SemiUnsupervisedData, load_images, make_semi_unsupervised
from rfy.semi_unsupervised.experiments import (NAMES, TrainingStep, build_model, classifier_weight, make_optimizer,
                                               predict_clusters, steps_per_epoch)

#: Train and test images of each dataset: (count, channels, side, dtype), to draw random stand-ins.
SHAPES = {"fashion-mnist": ((60_000, 10_000), 1, 28, torch.uint8)}
EVALUATION_BATCH = 2048


def synthetic_images(dataset: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images and balanced labels of ``dataset``'s real sizes and dtype (no download); the small
    datasets that ship with the package are simply loaded."""
    if dataset not in SHAPES:
        return load_images(dataset)
    (n_train, n_test), channels, side, dtype = SHAPES[dataset]
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train + n_test, channels, side, side), generator=generator, dtype=dtype)
    labels = torch.arange(n_train + n_test) % N_CLASSES
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def synthetic_data(config: Config) -> SemiUnsupervisedData:
    """``config``'s split (masked classes, kept labels, validation) of ``synthetic_images``."""
    X, y, X_test, y_test = synthetic_images(config.dataset)
    return make_semi_unsupervised(X, y, X_test, y_test, masked_classes=config.masked_classes,
                                  label_fraction=config.label_fraction,
                                  validation_fraction=config.validation_fraction, seed=config.seed)


def model_probe(kind: str, config: Config, device: torch.device) -> Probe:
    """Model ``kind`` of ``config`` on its synthetic split: ``TrainingStep`` as training calls it, and one
    evaluation batch of ``predict_clusters``."""
    data = synthetic_data(config).to(device)
    model = build_model(kind, data, config)
    step = TrainingStep(model, make_optimizer(model, config), data, config, classifier_weight(data, config))
    batch = torch.randperm(len(data.X_unlabelled), device=device)[:config.batch_size]
    return Probe(step=lambda: step(batch),
                 evaluate=lambda: predict_clusters(model, data.X_test[:EVALUATION_BATCH], EVALUATION_BATCH))


def _parts_of(config: Config, label: str) -> list[CostPart]:
    data = synthetic_data(config)
    steps = config.epochs * steps_per_epoch(data, config) * config.repeats
    evaluations = config.repeats * (math.ceil(len(data.X_val) / EVALUATION_BATCH)
                                    + math.ceil(len(data.X_test) / EVALUATION_BATCH))
    return [CostPart(f"{NAMES[kind]} on {label}", steps,
                     lambda device, kind=kind: model_probe(kind, config, device), evaluations,
                     warmup=TrainingStep.GRAPH_WARMUP + 1)  # ordinary steps, then the capture
            for kind in config.models]


def cost_parts(config: Config) -> list[CostPart]:
    """Every model on ``config.dataset`` (and on the prototypes stand-in when the preset runs it), each
    ``epochs`` × batches per epoch × ``repeats`` steps."""
    parts = _parts_of(config, config.dataset)
    if config.runs_stand_in:
        parts += _parts_of(config.stand_in_config(), "the prototypes stand-in")
    return parts
