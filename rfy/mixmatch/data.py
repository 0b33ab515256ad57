"""Labelled / unlabelled splits for semi-supervised learning, kept on the training device.

Images stay in their stored dtype (uint8 for CIFAR-10 and SVHN, a quarter of float32's memory)
and are converted to floats in [0, 1] batch by batch, after augmentation.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rfy.augment import random_crop, random_flip
from rfy.data import load_cifar10, load_digits, load_svhn, to_unit_interval
from rfy.errors import ConfigError
from rfy.mixmatch.config import Config
from rfy.runtime import DeviceData

# dataset → (loader of (images, labels) per split, mirror augmentation?, crop padding in pixels)
DATASET_SETUPS: dict[str, tuple[Callable[[str], tuple[torch.Tensor, torch.Tensor]], bool, int]] = {
    "digits": (lambda split: load_digits(split), False, 1),
    "cifar-10": (lambda split: load_cifar10(split), True, 4),
    "svhn": (lambda split: load_svhn(split), False, 4),
}


@dataclass
class SemiSupervisedData(DeviceData):
    """A few labelled images, many unlabelled ones (the labels are dropped) and a labelled test set."""

    labelled_images: torch.Tensor
    labels: torch.Tensor
    unlabelled_images: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    flip: bool
    crop_padding: int

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Floats in [0, 1] after a random reflect-padded crop (and a random mirror where the data allows it)."""
        images = random_crop(to_unit_interval(images), self.crop_padding, mode="reflect")
        return random_flip(images) if self.flip else images


def labelled_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` examples of every class, drawn without replacement by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).flatten()
        if len(members) < per_class:
            raise ConfigError(f"labels_per_class={per_class} but class {label} has only {len(members)} "
                              "training examples")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def make_split(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
               test_labels: torch.Tensor, *, per_class: int, seed: int, flip: bool,
               crop_padding: int) -> SemiSupervisedData:
    """Keep ``per_class`` labels per class (drawn by ``seed``); every training image is also unlabelled data."""
    index = labelled_indices(train_labels, per_class, seed)
    return SemiSupervisedData(train_images[index], train_labels[index], train_images, test_images, test_labels,
                              int(train_labels.max()) + 1, flip, crop_padding)


def load_split(config: Config, seed: int) -> SemiSupervisedData:
    """The labelled/unlabelled/test split of ``config.dataset`` for the run with ``seed``."""
    loader, flip, crop_padding = DATASET_SETUPS[config.dataset]
    train_images, train_labels = loader("train")
    test_images, test_labels = loader("test")
    return make_split(train_images, train_labels, test_images, test_labels, per_class=config.labels_per_class,
                      seed=seed, flip=flip, crop_padding=crop_padding)
