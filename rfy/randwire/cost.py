"""What the chapter's preset costs (``rfy.cost``): every network kind it trains, at its true size.

Each generator (its ``graph_seeds`` instances and ``training_repeats`` multiply the steps) and each baseline is
one part. A
step is ``train_step`` on a batch of random uint8 images of the dataset's shape (CIFAR-10 is never
downloaded here), through the same model preparation (device, memory format, optimiser) and
precision setting as ``train_network``. The evaluation batch is ``evaluate_accuracy`` on 1000 test
images; the removal study's evaluations (one per removed node and edge of the probed instances,
plus the intact network) are counted in the same batches.
"""
from __future__ import annotations

import functools
import math

import torch

from rfy.cost import CostPart, Probe
from rfy.data import load_digits
from rfy.randwire.config import BASELINE_KINDS, Config
from rfy.randwire.experiments import NUM_CLASSES, build_network, graph_seed, instances, repeat_list, training_threads
from rfy.randwire.graphs import parse_generator, stage_graphs
from rfy.randwire.train import DATASET_SETTINGS, ImageData, evaluate_accuracy, prepare_training, train_step
from rfy.runtime import seed_everything

#: CIFAR-10's training and test images.
CIFAR10_SIZES = (50_000, 10_000)
IMAGE_SHAPES = {"digits": (1, 8, 8), "cifar-10": (3, 32, 32)}
#: ``evaluate_accuracy`` evaluates 1000 images at a time.
EVAL_BATCH = 1000


def set_sizes(config: Config) -> tuple[int, int]:
    """Training and test images of ``config.dataset`` (the digits split is computed, CIFAR-10's is fixed)."""
    if config.dataset == "digits":
        return len(load_digits("train")[1]), len(load_digits("test")[1])
    return CIFAR10_SIZES


def random_data(config: Config, train: int, test: int, device: torch.device) -> ImageData:
    """Random images and labels as ``load_data`` holds them (uint8 CIFAR-10, float digits in [0, 1])."""
    shape = IMAGE_SHAPES[config.dataset]

    def images(count: int) -> torch.Tensor:
        if config.dataset == "digits":
            return torch.rand(count, *shape)
        return torch.randint(0, 256, (count, *shape), dtype=torch.uint8)

    labels = lambda count: torch.randint(0, NUM_CLASSES, (count,))
    return ImageData(images(train), labels(train), images(test), labels(test),
                     **DATASET_SETTINGS[config.dataset]).to(device)


def test_evaluations(config: Config, n_test: int) -> int:
    """Evaluation batches of one network's training: the test set after every ``eval_every`` epochs and at the end."""
    evaluated = [done for done in range(1, config.epochs + 1)
                 if done == config.epochs or (config.eval_every and done % config.eval_every == 0)]
    return len(evaluated) * math.ceil(n_test / EVAL_BATCH)


def removal_evaluations(config: Config, name: str, n_test: int) -> int:
    """Evaluation batches of the removal studies of ``name``'s first ``removal_instances`` instances: the
    intact network, then one evaluation per node and per edge of every stage."""
    if name in BASELINE_KINDS or name in config.baselines:
        return 0
    spec = parse_generator(name, config.nodes)
    limit = min(config.removal_eval_images or n_test, n_test)
    total = 0
    for instance in range(min(config.removal_instances, instances(config, name))):
        dags = stage_graphs(spec, config.nodes, config.stages, graph_seed(config, instance))
        total += 1 + sum(dag.num_nodes + len(dag.edges) for dag in dags)
    return total * math.ceil(limit / EVAL_BATCH)


def network_probe(config: Config, name: str, device: torch.device, *, eval_images: int = EVAL_BATCH) -> Probe:
    """The first instance of ``name`` as ``train_network`` trains it (on ``run_study``'s CPU threads): one step
    on a batch of ``batch_size`` random images, and an evaluation batch of ``eval_images`` test images (at most
    the test set)."""
    seed_everything(graph_seed(config, 0))
    data = random_data(config, config.batch_size, min(eval_images, set_sizes(config)[1]), device)
    model = build_network(config, name, 0, data.shape)
    model, optimizer, memory_format = prepare_training(model, config, device)
    autocast = config.mixed_precision and device.type == "cuda"
    index = torch.arange(config.batch_size, device=device)

    def step() -> torch.Tensor:
        with training_threads(config):
            model.train()
            return train_step(model, optimizer, data, index, config, memory_format=memory_format, lr=config.lr,
                              autocast=autocast)

    def evaluate_batch() -> float:
        with training_threads(config):
            return evaluate_accuracy(model, data, autocast=autocast)

    return Probe(step, evaluate_batch)


def network_part(config: Config, name: str) -> CostPart:
    """One generator or baseline: (``instances`` + its training repeats) × ``epochs`` × ⌊N / batch⌋ steps
    (``train_network`` drops the last partial batch), with its test and removal-study evaluations."""
    n_train, n_test = set_sizes(config)
    count = instances(config, name) + sum(1 for generator, _ in repeat_list(config) if generator == name)
    steps = count * config.epochs * max(n_train // config.batch_size, 1)
    evaluations = count * test_evaluations(config, n_test) + removal_evaluations(config, name, n_test)
    return CostPart(name, steps, functools.partial(network_probe, config, name), evaluations)


def cost_parts(config: Config) -> list[CostPart]:
    """Every generator and baseline, in the order ``run_study`` trains them (see ``rfy.cost``)."""
    return [network_part(config, name) for name in (*config.generators, *config.baselines)]
