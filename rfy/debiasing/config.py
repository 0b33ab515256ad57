"""Settings of the DB-VAE chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_fraction, check_positive
from rfy.errors import ConfigError

DATASETS = ("digits", "celeba")
WEIGHTINGS = ("product", "max")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: digits with a 1% dark-ink subgroup, CPU, under a minute.

    ``rare_fraction`` and ``negative_dark_fraction`` shape the digits data only. ``weighting`` is the
    resampling rule: the paper's ``"product"`` over latent dimensions, or the teaching version's
    ``"max"`` (an ablation). The full preset keeps the paper's product and α values with ``k = 8``
    latents: with the teaching version's ``k = 100`` the product gives almost all the probability to
    a handful of faces (see ``effective_sample_size`` and the chapter).
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": "celeba", "latent_dim": 8, "epochs": 50, "batch_size": 64, "lr": 5e-4,
        "alphas": (0.1, 0.05, 0.01, 0.001), "repeats": 1, "train_per_class": 100_000,
    }

    dataset: str = "digits"
    rare_fraction: float = 0.01
    negative_dark_fraction: float = 0.5
    latent_dim: int = 8
    hidden: int = 128
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    c1: float = 1.0
    c2: float = 1.0
    c3: float = 0.01
    bins: int = 10
    weighting: str = "product"
    alphas: tuple[float, ...] = (1.0, 0.1, 0.01, 0.001)
    repeats: int = 3
    train_per_class: int = 0
    test_per_group: int = 300

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_fraction("rare_fraction", self.rare_fraction)
        if isinstance(self.negative_dark_fraction, bool) or not isinstance(self.negative_dark_fraction, (int, float)) \
                or not 0 <= self.negative_dark_fraction <= 1:
            raise ConfigError("negative_dark_fraction must be a number between 0 and 1 (inclusive), "
                              f"got {self.negative_dark_fraction!r}")
        check_choice("weighting", self.weighting, WEIGHTINGS)
        for field in ("latent_dim", "hidden", "epochs", "batch_size", "bins", "repeats", "test_per_group"):
            check_positive(field, getattr(self, field), integer=True)
        check_positive("train_per_class", self.train_per_class, integer=True, allow_zero=True)
        for field in ("lr", "c1"):
            check_positive(field, getattr(self, field))
        for field in ("c2", "c3"):
            check_positive(field, getattr(self, field), allow_zero=True)
        if not self.alphas or not all(isinstance(a, (int, float)) and a > 0 and math.isfinite(a) for a in self.alphas):
            raise ConfigError(f"alphas must be a non-empty tuple of finite numbers > 0, got {self.alphas!r}")
