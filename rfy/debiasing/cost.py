"""What the chapter's preset costs (``rfy.cost``): every method of the α sweep, at its true size.

Each method (the standard classifier, the DB-VAE with uniform sampling, one DB-VAE per α) is one
part; its ``repeats`` seeds multiply its steps. A step is ``train_step`` on a batch of random images
of the dataset's shape and dtype (CelebA and Imagenette are never downloaded here). The evaluation
batch is ``evaluate`` on 1024 images; the resampled methods also encode every training positive at
the start of every epoch (``epoch_order``), the same encoder pass in batches of 1024, so those
batches are counted as evaluations too.
"""
from __future__ import annotations

import math

import torch

from rfy.cost import CostPart, Probe
from rfy.data import load_digits
from rfy.debiasing.face_files import GROUP_NAMES as FACE_GROUPS
from rfy.debiasing.config import Config
from rfy.debiasing.data import GROUP_NAMES as DIGIT_GROUPS
from rfy.debiasing.data import BiasedData
from rfy.debiasing.experiments import evaluate, method_plans, model_and_optimizer, train_step, training_threads
from rfy.runtime import seed_everything

#: CelebA's official training split, and Imagenette's training photos (``rfy.data.registry``).
CELEBA_TRAIN_FACES = 162_770
IMAGENETTE_TRAIN = 9_469
IMAGE_SHAPES = {"digits": (1, 8, 8), "celeba": (3, 64, 64)}
#: ``evaluate`` and ``positive_latent_means`` encode 1024 images at a time.
EVAL_BATCH = 1024


def set_sizes(config: Config) -> tuple[int, int, int]:
    """Training images, training positives and test images of the preset's data.

    Digits: every training digit once as a positive and once, shuffled, as a negative; every test
    digit in each of the four groups and once as a negative. Faces: ``train_per_class`` of each
    (0 = all) and ``test_per_group`` faces per group plus as many non-faces (``load_face_detection_data``).
    """
    if config.dataset == "digits":
        n_train = len(load_digits("train", seed=config.seed)[1])
        n_test = len(load_digits("test", seed=config.seed)[1])
        return 2 * n_train, n_train, (len(DIGIT_GROUPS) + 1) * n_test
    faces = min(config.train_per_class or CELEBA_TRAIN_FACES, CELEBA_TRAIN_FACES)
    non_faces = min(config.train_per_class or IMAGENETTE_TRAIN, IMAGENETTE_TRAIN)
    return faces + non_faces, faces, (len(FACE_GROUPS) + 1) * config.test_per_group


def random_images(count: int, config: Config, device: torch.device) -> torch.Tensor:
    """``count`` random images as ``load_data`` holds them: uint8 faces, or float digits in [0, 1]."""
    shape = (count, *IMAGE_SHAPES[config.dataset])
    images = torch.rand(shape) if config.dataset == "digits" else torch.randint(0, 256, shape, dtype=torch.uint8)
    return images.to(device)


def random_test_set(count: int, config: Config, device: torch.device) -> BiasedData:
    """``count`` random test images cycling through every group and the negatives (group −1)."""
    names = DIGIT_GROUPS if config.dataset == "digits" else FACE_GROUPS
    groups = torch.arange(count) % (len(names) + 1) - 1
    images = random_images(count, config, device)
    return BiasedData(images, (groups >= 0).long(), groups, images, (groups >= 0).long(), groups,
                      group_names=names).to(device)


def method_part(config: Config, name: str, debias: bool, alpha: float | None) -> CostPart:
    """One method: ``repeats`` × ``epochs`` × ⌈N / batch⌉ steps; its test batches, and for a resampled
    DB-VAE the encoding of the positives every epoch."""
    n_train, n_positives, n_test = set_sizes(config)
    evaluations = math.ceil(n_test / EVAL_BATCH)
    if alpha is not None:
        evaluations += config.epochs * math.ceil(n_positives / EVAL_BATCH)

    def build(device: torch.device) -> Probe:
        seed_everything(config.seed)
        model, optimizer = model_and_optimizer(IMAGE_SHAPES[config.dataset], config, device)
        images = random_images(config.batch_size, config, device)
        labels = torch.randint(0, 2, (config.batch_size,), device=device)
        test = random_test_set(min(EVAL_BATCH, n_test), config, device)

        def step() -> torch.Tensor:
            with training_threads(config):
                model.train()
                return train_step(model, optimizer, images, labels, config, debias=debias)

        def evaluate_batch() -> dict[str, float]:
            with training_threads(config):
                return evaluate(model, test)

        return Probe(step, evaluate_batch)

    steps = config.repeats * config.epochs * math.ceil(n_train / config.batch_size)
    return CostPart(name, steps, build, config.repeats * evaluations)


def cost_parts(config: Config) -> list[CostPart]:
    """Every method of the sweep, in the order ``alpha_sweep`` trains them (see ``rfy.cost``)."""
    return [method_part(config, *plan) for plan in method_plans(config)]
