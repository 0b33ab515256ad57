"""Settings of the voter-modelling chapter: the reduced preset (field defaults) and the ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_fraction, check_positive
from rfy.errors import ConfigError

REGRESSION, CLASSIFICATION, DISTRIBUTION, VOTER = "regression", "classification", "distribution", "voter"
HEADS = (REGRESSION, CLASSIFICATION, DISTRIBUTION, VOTER)
SIMULATION, SCUT = "simulation", "scut-fbp5500"
DATASETS = (SIMULATION, SCUT)
TRUNKS = ("resnet18", "resnet50")
TRAIT_NAMES = ("smart", "trustworthy", "attractive")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: a simulated vote log, four heads, three seeds, CPU, under a minute.

    Simulation: ``n_items`` photos, each a point ``t`` of three correlated traits (``trait_correlation``)
    rendered into ``feature_dim`` features together with ``nuisance_dim`` nuisance factors and pixel
    noise ``feature_noise``; ``n_voters`` voters with leniency (std ``leniency_std`` per trait), a
    log-normal scale (std ``scale_std``), a noise level drawn from [``noise_low``, ``noise_high``],
    Zipf activity (``zipf_exponent``) and a share ``noise_voter_share`` of voters who vote at random;
    every training photo gets between ``votes_min`` and ``votes_max`` votes on the ``levels``-point
    scale (0-3), every test photo ``heldout_votes`` held-out raw votes for the vote-equivalence curve.
    ``control=True`` repeats everything with identical, unbiased voters.

    ``full()`` is SCUT-FBP5500 (5,500 faces, 60 raters, ratings 1-5, the published 5 folds): frozen
    ImageNet features of ``trunk`` (torchvision, an optional dependency), the same four heads, the rater
    ids as voters and all 60 raters as the standard voters; ``votes_min``/``votes_max`` subsample the
    raters of each training face (60 = all of them, the benchmark's protocol).
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": SCUT, "folds": (1, 2, 3, 4, 5), "votes_min": 60, "votes_max": 60, "levels": 5,
        "n_standard": 60, "width": 256, "steps": 3000, "batch_size": 512, "repeats": 1, "control": False,
        "mixed_precision": True,
    }

    dataset: str = SIMULATION
    n_items: int = 2500
    test_items: int = 500
    n_voters: int = 400
    n_standard: int = 200
    trait_correlation: float = 0.4
    feature_dim: int = 32
    nuisance_dim: int = 4
    feature_noise: float = 0.3
    leniency_std: float = 1.0
    scale_std: float = 0.5
    noise_low: float = 0.4
    noise_high: float = 1.0
    noise_voter_share: float = 0.1
    zipf_exponent: float = 1.0
    votes_min: int = 3
    votes_max: int = 5
    heldout_votes: int = 30
    levels: int = 4
    bins: int = 10
    heads: tuple[str, ...] = HEADS
    width: int = 64
    voter_dim: int = 8
    steps: int = 500
    batch_size: int = 256
    lr: float = 0.003
    weight_decay: float = 0.0001
    permutations: int = 20
    repeats: int = 3
    control: bool = True
    trunk: str = "resnet18"
    image_size: int = 224
    folds: tuple[int, ...] = (1,)
    mixed_precision: bool = False

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("trunk", self.trunk, TRUNKS)
        for field in ("n_items", "test_items", "n_voters", "n_standard", "feature_dim", "votes_min", "votes_max",
                      "heldout_votes", "levels", "bins", "width", "voter_dim", "steps", "batch_size", "permutations",
                      "repeats", "image_size"):
            check_positive(field, getattr(self, field), integer=True)
        check_positive("nuisance_dim", self.nuisance_dim, integer=True, allow_zero=True)
        for field in ("feature_noise", "leniency_std", "scale_std", "noise_low", "weight_decay"):
            check_positive(field, getattr(self, field), allow_zero=True)
        for field in ("noise_high", "zipf_exponent", "lr"):
            check_positive(field, getattr(self, field))
        check_fraction("trait_correlation", self.trait_correlation)
        if not isinstance(self.noise_voter_share, (int, float)) or not 0 <= self.noise_voter_share < 1:
            raise ConfigError(f"noise_voter_share must be a number in [0, 1), got {self.noise_voter_share!r}")
        if self.noise_low > self.noise_high:
            raise ConfigError(f"noise_low must be <= noise_high, got {self.noise_low!r} > {self.noise_high!r}")
        if self.votes_min > self.votes_max:
            raise ConfigError(f"votes_min must be <= votes_max, got {self.votes_min!r} > {self.votes_max!r}")
        if self.levels < 2:
            raise ConfigError(f"levels must be an integer >= 2 (the vote scale 0 … levels-1), got {self.levels!r}")
        if self.test_items >= self.n_items:
            raise ConfigError(f"test_items must be smaller than n_items={self.n_items}, got {self.test_items!r}")
        if self.dataset == SIMULATION:
            if self.votes_max > self.n_voters or self.heldout_votes > self.n_voters:
                raise ConfigError(f"votes_max and heldout_votes must be <= n_voters={self.n_voters}, got "
                                  f"{self.votes_max!r} and {self.heldout_votes!r}")
            if self.n_standard > self.n_voters:
                raise ConfigError(f"n_standard must be <= n_voters={self.n_voters}, got {self.n_standard!r}")
        if not self.heads or any(head not in HEADS for head in self.heads) or len(set(self.heads)) != len(self.heads):
            raise ConfigError(f"heads must be a non-empty tuple of distinct values from {HEADS}, got {self.heads!r}")
        if not self.folds or any(fold not in (1, 2, 3, 4, 5) for fold in self.folds):
            raise ConfigError(f"folds must be a non-empty tuple drawn from (1, 2, 3, 4, 5), got {self.folds!r}")
        for field in ("control", "mixed_precision"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"{field} must be True or False, got {getattr(self, field)!r}")

    @property
    def num_traits(self) -> int:
        """Three traits in the simulation (smart, trustworthy, attractive); one (beauty) on SCUT-FBP5500."""
        return len(TRAIT_NAMES) if self.dataset == SIMULATION else 1
