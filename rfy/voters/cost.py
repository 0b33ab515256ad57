"""What the chapter's preset costs (``rfy.cost``): every head's training, and in full mode the frozen trunk.

Reduced mode trains the four heads on simulated votes for every seed and condition (biased voters and
the control). Full mode first runs the frozen ImageNet trunk over SCUT-FBP5500's 5,500 faces once (the
``features`` stage), then trains every head on every fold of ``config.folds``, on the trunk's features:
``steps`` AdamW steps of ``batch_size`` photos or votes each. The probes build the same data structures the run
builds (``simulate`` in reduced mode; ``fold_data`` of a synthetic archive with SCUT-FBP5500's 5,500
faces, 60 raters, 5 folds of 1,100 test faces, and random features of the trunk's width in full mode)
and call the run's own ``train_step``, ``score_test_photos`` and ``batch_features``.

Not counted: decoding the JPEGs (on the host, once) and the raw-vote curve of each fold (on the host,
a fraction of a second).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rfy.cost import CostPart, Probe
from rfy.runtime import torch_threads
from rfy.voters.config import SIMULATION, Config
from rfy.voters.scut import FEATURE_BATCH, RATERS, ScutArchive, batch_features, fold_data, torchvision_trunk
from rfy.voters.simulate import VoteData, simulate
from rfy.voters.train import make_model, make_optimiser, score_test_photos, train_step, training_units

SCUT_IMAGES = 5500
SCUT_FOLDS = 5  # the published folds: each tests on a fifth of the faces and trains on the rest
#: Width of the features of each ``Config.trunk`` (torchvision's ResNets without their classifier).
TRUNK_FEATURES = {"resnet18": 512, "resnet50": 2048}


def cost_parts(config: Config) -> list[CostPart]:
    """One part per head (its steps over every seed and condition, or every fold), and in full mode the
    trunk's pass over the faces (one step = one batch of ``FEATURE_BATCH`` images)."""
    if config.dataset == SIMULATION:
        runs = config.repeats * (2 if config.control else 1)
        data_for = functools.cache(lambda: simulate(config, config.seed)[0])  # built once, for every head
        parts = []
    else:
        runs = len(config.folds)
        data_for = functools.cache(lambda: synthetic_fold(config))
        parts = [CostPart(f"features (frozen {config.trunk})", math.ceil(SCUT_IMAGES / FEATURE_BATCH),
                          functools.partial(features_probe, config), unit=f"batch of {FEATURE_BATCH} images")]
    return parts + [CostPart(f"{head} head", config.steps * runs, functools.partial(head_probe, head, config, data_for),
                             evaluations=runs, unit="step") for head in config.heads]


def synthetic_archive(config: Config) -> ScutArchive:
    """SCUT-FBP5500's shape with random content: 5,500 faces, every one rated 0 … levels-1 by 60 raters,
    and 5 folds of 4,400 training and 1,100 test faces."""
    generator = torch.Generator().manual_seed(config.seed)
    names = [f"face{index}.jpg" for index in range(SCUT_IMAGES)]
    ratings = torch.randint(0, config.levels, (SCUT_IMAGES, RATERS), generator=generator).float()
    test_size = SCUT_IMAGES // SCUT_FOLDS
    order = [names[index] for index in torch.randperm(SCUT_IMAGES, generator=generator)]
    folds = {fold: (order[:(fold - 1) * test_size] + order[fold * test_size:],
                    order[(fold - 1) * test_size:fold * test_size]) for fold in range(1, SCUT_FOLDS + 1)}
    return ScutArchive(Path("synthetic-scut-fbp5500.zip"), names, ratings, folds, members={})


def synthetic_fold(config: Config) -> VoteData:
    """The first fold of ``config`` as the run builds it (``fold_data``), on a synthetic archive and random
    float32 features of the trunk's width."""
    features = torch.randn(SCUT_IMAGES, TRUNK_FEATURES[config.trunk],
                           generator=torch.Generator().manual_seed(config.seed))
    return fold_data(synthetic_archive(config), features, config.folds[0], config, config.seed)


def head_probe(kind: str, config: Config, data_for: Callable[[], VoteData], device: torch.device) -> Probe:
    """The head ``kind`` as ``train_head`` sets it up; a step is ``train_step``, an evaluation the scores of
    every test photo. On simulated votes both run on one CPU thread, as ``run_experiment`` runs them."""
    data = data_for().to(device)
    torch.manual_seed(config.seed)
    model = make_model(kind, data, config).to(device)
    optimiser = make_optimiser(model, config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    units = training_units(kind, data)

    def step() -> torch.Tensor:
        model.train()
        return train_step(model, optimiser, data, units, generator, config)

    threads = 1 if config.dataset == SIMULATION else None
    return Probe(step=pinned(step, threads), evaluate=pinned(lambda: score_test_photos(model, data, config), threads))


def features_probe(config: Config, device: torch.device) -> Probe:
    """The frozen trunk (torchvision's network with random weights: the cost of the pretrained one, no
    download) on one batch of random uint8 faces of ``image_size``; needs torchvision, as the run does."""
    trunk = torchvision_trunk(config.trunk, weights=None).to(device).eval()
    generator = torch.Generator().manual_seed(config.seed)
    shape = (FEATURE_BATCH, 3, config.image_size, config.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(device)
    return Probe(step=lambda: batch_features(trunk, images, config).cpu(), evaluate=lambda: None)


def pinned(call: Callable[[], Any], threads: int | None) -> Callable[[], Any]:
    """``call`` run with ``threads`` torch CPU threads (as it is when ``threads`` is None)."""
    if threads is None:
        return call

    def run() -> Any:
        with torch_threads(threads):
            return call()
    return run
