"""A face-detection stand-in with a hidden, under-represented subgroup, built from sklearn digits.

Positives ("faces") are handwritten digits. Each is drawn with two attributes, like skin tone and
gender in the paper's benchmark: the **ink** is normally light-on-dark, but dark-on-light for a
rare fraction of the training positives (an exact count, so every seed is equally biased); the
**pose** is upright or mirrored, half and half.
Negatives are digits whose pixels were shuffled: the same intensities without any shape, in
either ink (half and half by default). Non-faces have no skin tone, so the ink is rare only among
the positives, and a classifier that learned "dark ink means non-face" from the common data is
wrong exactly on the rare faces. The test set is balanced: every test digit appears once in each
of the four ink × pose groups, and once more, shuffled, as a negative. Nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rfy.data import load_digits
from rfy.runtime import DeviceData

GROUP_NAMES = ("light ink, upright", "light ink, mirrored", "dark ink, upright", "dark ink, mirrored")
RARE_GROUPS = (2, 3)


@dataclass(frozen=True)
class BiasedData(DeviceData):
    """Images [N, C, H, W] (float in [0, 1], or uint8), labels ``y`` (1 = positive), ``group`` (−1: negative)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    group_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    group_test: torch.Tensor
    group_names: tuple[str, ...] = GROUP_NAMES
    rare_groups: tuple[int, ...] = RARE_GROUPS


def render(digits: torch.Tensor, dark_ink: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """Apply the attributes: dark ink is ``1 − x``, a mirrored pose flips left-right."""
    images = torch.where(dark_ink[:, None, None, None], 1 - digits, digits)
    return torch.where(mirrored[:, None, None, None], images.flip(-1), images)


def shuffle_pixels(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Negatives: each image's pixels in an independent random order (intensities kept, shape lost)."""
    flat = images.flatten(1)
    order = torch.rand(flat.shape, generator=generator).argsort(dim=1)
    return torch.gather(flat, 1, order).reshape(images.shape)


def make_biased_digits(*, rare_fraction: float = 0.02, negative_dark_fraction: float = 0.5,
                       seed: int = 0) -> BiasedData:
    """Training positives with exactly ``round(rare_fraction · n)`` dark-ink images, negatives with
    ``negative_dark_fraction`` dark-ink ones; a balanced four-group test set."""
    if not 0 < rare_fraction < 1:
        raise ValueError(f"rare_fraction must be strictly between 0 and 1, got {rare_fraction!r}")
    if not 0 <= negative_dark_fraction <= 1:
        raise ValueError(f"negative_dark_fraction must be between 0 and 1, got {negative_dark_fraction!r}")
    gen = torch.Generator().manual_seed(seed)
    train_digits, _ = load_digits("train", seed=seed)
    test_digits, _ = load_digits("test", seed=seed)

    n = len(train_digits)
    dark = torch.zeros(n, dtype=torch.bool)
    dark[torch.randperm(n, generator=gen)[:max(1, round(rare_fraction * n))]] = True
    mirrored = torch.rand(n, generator=gen) < 0.5
    positives = render(train_digits, dark, mirrored)
    no_mirror = torch.zeros(n, dtype=torch.bool)
    negatives = render(shuffle_pixels(train_digits, gen), torch.rand(n, generator=gen) < negative_dark_fraction,
                       no_mirror)
    X_train = torch.cat([positives, negatives])
    y_train = torch.cat([torch.ones(n), torch.zeros(n)]).long()
    group_train = torch.cat([2 * dark.long() + mirrored.long(), torch.full((n,), -1)])

    m = len(test_digits)
    test_positives, test_groups = [], []
    for group in range(len(GROUP_NAMES)):
        test_positives.append(render(test_digits, torch.full((m,), group >= 2), torch.full((m,), group % 2 == 1)))
        test_groups.append(torch.full((m,), group))
    test_negatives = render(shuffle_pixels(test_digits, gen), torch.rand(m, generator=gen) < negative_dark_fraction,
                            torch.zeros(m, dtype=torch.bool))
    X_test = torch.cat([*test_positives, test_negatives])
    y_test = torch.cat([torch.ones(4 * m), torch.zeros(m)]).long()
    group_test = torch.cat([*test_groups, torch.full((m,), -1)])
    return BiasedData(X_train, y_train, group_train, X_test, y_test, group_test)
