"""What the chapter's preset costs (``rfy.cost``): each arm's training (K learners and the baseline), and
the k-means re-clusterings of the arms with K > 1.

A step is ``Learner.step``, one Adam step on the margin loss of one class-balanced batch, through the
run's own ``Learner``; an evaluation is one batch of ``Learner.encode`` (the run encodes the test images
at every evaluation and the training images before every re-clustering). Full mode builds CUB-200-2011's
shape with random pixels: 5,864 training and 5,924 test images of classes 1-100 and 101-200, uint8
256×256, cropped to 224 on the device as the run does; the ResNet-50 has random weights (the cost of the
pretrained one, no download) and, as in the run, needs torchvision. The k-means part clusters random
features of the trunk's width, which rarely converge early: an upper bound of that host-side cost.

Not counted: the NMI of the test embeddings at the end of an arm and (digits only) the per-domain
recall of each learner, one pass each.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from rfy.cost import CostPart, Probe
from rfy.divide_conquer.clustering import cluster_features, match_clusters
from rfy.divide_conquer.config import Config
from rfy.divide_conquer.data import CUB_STORED_SIZE, CUB_TRAIN_CLASSES, RetrievalData, load_data
from rfy.divide_conquer.experiments import arms
from rfy.divide_conquer.models import RESNET_FEATURES, TRUNKS, resnet50_trunk
from rfy.divide_conquer.train import Learner
from rfy.runtime import torch_threads

CUB = "cub-200-2011"
CUB_SIZES = (5864, 5924)  # images of classes 1-100 (training) and 101-200 (test)
DISTINCT_IMAGES = 256  # the synthetic photographs repeat this many random ones: same shape, memory and cost


def split_sizes(config: Config) -> tuple[int, int]:
    """(training images, test images) of ``config.dataset``."""
    if config.dataset == CUB:
        return CUB_SIZES
    data = load_data(config.dataset, config.seed)
    return len(data.train_labels), len(data.test_labels)


def schedule(config: Config, learners: int) -> tuple[int, int]:
    """(evaluations, re-clusterings) of one run with K = ``learners``, as ``train`` schedules them (the
    evaluations include the one before the first step)."""
    evaluations = 1 + sum(1 for done in range(1, config.epochs + 1)
                          if done % config.eval_every == 0 or done == config.epochs)
    reclusterings = sum(1 for epoch in range(config.epochs) if learners > 1 and config.phase(epoch) != "finetune"
                        and epoch % config.recluster_every == 0)
    return evaluations, reclusterings


def cost_parts(config: Config) -> list[CostPart]:
    """Per arm K: $E \\cdot \\lceil N / (P M) \\rceil$ steps per seed (epochs times batches of P classes × M
    images per epoch), and its encoding batches; per arm with K > 1, its k-means re-clusterings."""
    train_size, test_size = split_sizes(config)
    data_for = shared_data(config)
    steps_per_epoch = math.ceil(train_size / (config.classes_per_batch * config.images_per_class))
    batches = lambda count: math.ceil(count / config.batch_size_eval)
    parts = []
    for learners in arms(config):
        evaluations, reclusterings = schedule(config, learners)
        encodings = evaluations * batches(test_size) + reclusterings * batches(train_size)
        parts.append(CostPart(f"K = {learners}", config.epochs * steps_per_epoch * config.repeats,
                              functools.partial(learner_probe, config, learners, data_for),
                              evaluations=encodings * config.repeats, unit="step"))
        if reclusterings:
            parts.append(CostPart(f"K = {learners}: k-means", reclusterings * config.repeats,
                                  functools.partial(kmeans_probe, config, learners, train_size), unit="re-clustering"))
    return parts


def synthetic_cub(seed: int, device: torch.device) -> RetrievalData:
    """CUB-200-2011's split with random pixels: uint8 256×256 photographs, classes 0-99 to train, 100-199 to test."""
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (DISTINCT_IMAGES, 3, CUB_STORED_SIZE, CUB_STORED_SIZE)
    distinct = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator, device=device)
    images = lambda count: distinct[torch.arange(count, device=device) % DISTINCT_IMAGES]
    labels = lambda count, first: first + torch.arange(count, device=device) % CUB_TRAIN_CLASSES
    domains = lambda count: torch.zeros(count, dtype=torch.long, device=device)
    (train, test) = CUB_SIZES
    return RetrievalData(images(train), labels(train, 0), domains(train), images(test),
                         labels(test, CUB_TRAIN_CLASSES), domains(test), ("all",), augment=True)


def shared_data(config: Config) -> Callable[[torch.device], RetrievalData]:
    """``config``'s split on a device, built once for every arm (as the run holds one copy at a time): CUB's
    shape with random pixels (``synthetic_cub``), or the digits themselves."""
    def build(device: torch.device) -> RetrievalData:
        if config.dataset == CUB:
            return synthetic_cub(config.seed, device)
        return load_data(config.dataset, config.seed).to(device)
    return functools.lru_cache(maxsize=1)(build)


def learner_probe(config: Config, learners: int, data_for: Callable[[torch.device], RetrievalData],
                  device: torch.device, *, trunk: nn.Module | None = None) -> Probe:
    """The run's ``Learner`` with K = ``learners`` on ``device`` and ``data_for(device)``; a step is
    ``Learner.step`` on a batch of the first cluster in the first epoch's phase, an evaluation
    ``Learner.encode`` of one batch of test images. ``trunk`` replaces the random-weights ResNet-50 (the
    full-size tests use one without torchvision)."""
    config = config.replace(device=str(device))
    if trunk is None and config.model in TRUNKS:
        trunk = resnet50_trunk(pretrained=False)
    learner = Learner(data_for(device), config, learners, config.seed, trunk=trunk)
    small = device.type == "cpu" and config.model in ("mlp", "cnn")  # as ``train`` runs them: one thread

    def step() -> torch.Tensor:
        with torch_threads(1) if small else contextlib.nullcontext():
            return learner.step(0, config.phase(0))

    def evaluate() -> torch.Tensor:
        with torch_threads(1) if small else contextlib.nullcontext():
            return learner.encode(learner.data.test_images[:config.batch_size_eval])

    return Probe(step=step, evaluate=evaluate)


def kmeans_probe(config: Config, learners: int, train_size: int, device: torch.device) -> Probe:
    """One re-clustering's host-side work: ``cluster_features`` on random features of the trunk's width for
    every training image, then ``match_clusters`` to the previous clustering."""
    generator = torch.Generator().manual_seed(config.seed)
    width = RESNET_FEATURES if config.model in TRUNKS else config.hidden_dim
    features = torch.randn(train_size, width, generator=generator).to(device)
    previous = torch.randint(0, learners, (train_size,), generator=generator)

    def step() -> torch.Tensor:
        current = cluster_features(features, learners, seed=config.seed, restarts=config.kmeans_restarts,
                                   iterations=config.kmeans_iterations)
        return match_clusters(previous, current, learners)

    return Probe(step=step, evaluate=lambda: None)
