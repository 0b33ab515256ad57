"""Settings of the semi-unsupervised chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_fraction, check_positive
from rfy.errors import ConfigError
from rfy.semi_unsupervised.model import MODELS

DATASETS = ("digits", "prototypes", "fashion-mnist")
N_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: scikit-learn's digits, half the classes masked, CPU, seconds per model.

    The classifier weight is $\alpha$ = ``alpha_scale`` · N / N_labelled (the authors: 1.1). At the
    reduced scale that weight makes both models put every masked image into a labelled class, so the
    reduced preset uses 0.05 and a KL warm-up (see the chapter).
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": "fashion-mnist", "label_fraction": 0.02, "validation_fraction": 0.1, "latent_dim": 100,
        "hidden": (500, 500), "epochs": 300, "batch_size": 100, "lr": 3e-4, "alpha_scale": 1.1,
        "warmup_epochs": 0, "repeats": 1, "stand_in": False,
    }

    dataset: str = "digits"
    masked_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    label_fraction: float = 0.1
    validation_fraction: float = 0.2
    extra_clusters: int = 0
    latent_dim: int = 10
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 60
    batch_size: int = 100
    lr: float = 1e-3
    alpha_scale: float = 0.05
    grad_clip: float = 1.0
    warmup_epochs: int = 20
    prior_mean_scale: float = 1.0
    repeats: int = 3
    models: tuple[str, ...] = MODELS
    #: Also run the prototypes stand-in (every class a separate mode) with the same recipe.
    stand_in: bool = True

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        if not self.masked_classes or not all(isinstance(c, int) and 0 <= c < N_CLASSES for c in self.masked_classes) \
                or len(set(self.masked_classes)) != len(self.masked_classes) or len(self.masked_classes) >= N_CLASSES:
            raise ConfigError(f"masked_classes must be distinct class indices in 0..{N_CLASSES - 1}, at least one "
                              f"and not all of them, got {self.masked_classes!r}")
        for field in ("label_fraction", "validation_fraction"):
            check_fraction(field, getattr(self, field))
        for field in ("latent_dim", "epochs", "batch_size", "repeats"):
            check_positive(field, getattr(self, field), integer=True)
        for field in ("extra_clusters", "warmup_epochs"):
            check_positive(field, getattr(self, field), integer=True, allow_zero=True)
        for field in ("lr", "alpha_scale", "grad_clip"):
            check_positive(field, getattr(self, field))
        check_positive("prior_mean_scale", self.prior_mean_scale, allow_zero=True)
        check_choice("stand_in", self.stand_in, (True, False))
        if not self.hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ConfigError(f"hidden must be a non-empty tuple of integers > 0, got {self.hidden!r}")
        if not self.models or any(m not in MODELS for m in self.models):
            raise ConfigError(f"models must be a non-empty tuple of values from {MODELS}, got {self.models!r}")

    @property
    def runs_stand_in(self) -> bool:
        """Whether ``run_experiment`` adds the prototypes stand-in (not when it is the dataset already)."""
        return self.stand_in and self.dataset != "prototypes"

    def stand_in_config(self) -> Config:
        """The same recipe on the prototypes stand-in."""
        return dataclasses.replace(self, dataset="prototypes", stand_in=False)

    @property
    def n_clusters(self) -> int:
        """Outputs of $q(y\\mid x)$: one per class plus the extra clusters."""
        return N_CLASSES + self.extra_clusters
