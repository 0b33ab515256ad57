"""The semi-unsupervised split (some classes fully masked, a few labels kept for the others) and a stand-in dataset.

From the training images we hold out a validation split (its labels are used only to name the
clusters after training, never to train), then keep ``label_fraction`` of the labels of every
class that is not masked. Everything else is unlabelled, the masked classes included.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rfy.data import load_digits, load_fashion_mnist
from rfy.runtime import DeviceData

PROTOTYPE_FLIP = 0.25
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass
class SemiUnsupervisedData(DeviceData):
    """Images ``[N, 1, H, W]`` (float in [0, 1] or uint8) and int64 labels of each part.

    ``y_unlabelled`` holds the true labels of the unlabelled images for figures and analysis only;
    training never reads it.
    """

    X_labelled: torch.Tensor
    y_labelled: torch.Tensor
    X_unlabelled: torch.Tensor
    y_unlabelled: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    masked_classes: tuple[int, ...]
    n_classes: int

    @property
    def labelled_classes(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.n_classes) if c not in self.masked_classes)

    @property
    def x_dim(self) -> int:
        return int(np.prod(self.X_unlabelled.shape[1:]))


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of ``round(fraction · n_c)`` random points of every class ``c`` (the held-out part)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        held[rng.choice(members, size=int(round(fraction * len(members))), replace=False)] = True
    return held


def labelled_mask(labels: np.ndarray, masked_classes: Sequence[int], label_fraction: float, seed: int) -> np.ndarray:
    """Which training points keep their label: ``label_fraction`` of each unmasked class (at least one), none of the masked."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        if c in masked_classes:
            continue
        members = np.flatnonzero(labels == c)
        keep[rng.choice(members, size=max(1, int(round(label_fraction * len(members)))), replace=False)] = True
    return keep


def make_semi_unsupervised(X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor, *,
                           masked_classes: Sequence[int], label_fraction: float, validation_fraction: float,
                           seed: int, n_classes: int = 10) -> SemiUnsupervisedData:
    """Validation hold-out, then the labelled/unlabelled split of the rest, both drawn from ``seed``."""
    labels = y.numpy()
    val = stratified_holdout(labels, validation_fraction, seed)
    train = np.flatnonzero(~val)
    keep = labelled_mask(labels[train], masked_classes, label_fraction, seed + 1)
    lab, unlab = torch.from_numpy(train[keep]), torch.from_numpy(train[~keep])
    val_index = torch.from_numpy(np.flatnonzero(val))
    return SemiUnsupervisedData(X[lab], y[lab], X[unlab], y[unlab], X[val_index], y[val_index], X_test, y_test,
                                tuple(sorted(masked_classes)), n_classes)


def noisy_copies(prototypes: torch.Tensor, labels: torch.Tensor, flip: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Rows ``prototypes[labels]`` with every pixel flipped with probability ``flip``, as grey values 0.05 / 0.95."""
    pixels = prototypes[labels]
    flips = torch.bernoulli(torch.full_like(pixels, flip), generator=generator)
    return 0.05 + 0.9 * ((pixels + flips) % 2)


def prototype_images(n_train: int = 1350, n_test: int = 450, side: int = 8, flip: float = PROTOTYPE_FLIP, seed: int = 0,
                     n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""A mixture of Bernoulli prototypes: every class is one random binary ``side``×``side`` image, every
    image a copy of its class's prototype with each pixel flipped with probability ``flip``.

    Two prototypes differ in about half of their pixels, so every class, masked or not, is a separate
    mode in pixel space. Balanced classes; train and test images ``[N, 1, side, side]`` in [0, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.bernoulli(torch.full((n_classes, side * side), 0.5), generator=generator)
    y_train, y_test = torch.arange(n_train) % n_classes, torch.arange(n_test) % n_classes
    X_train = noisy_copies(prototypes, y_train, flip, generator).reshape(n_train, 1, side, side)
    X_test = noisy_copies(prototypes, y_test, flip, generator).reshape(n_test, 1, side, side)
    return X_train, y_train, X_test, y_test


def load_images(dataset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test images and labels: scikit-learn's digits (fixed split), the prototypes (fixed draw), Fashion-MNIST."""
    if dataset == "digits":
        return (*load_digits("train", seed=0), *load_digits("test", seed=0))
    if dataset == "prototypes":
        return prototype_images()
    if dataset == "fashion-mnist":
        return (*load_fashion_mnist("train"), *load_fashion_mnist("test"))
    raise ValueError(f"dataset must be 'digits', 'prototypes' or 'fashion-mnist', got {dataset!r}")
