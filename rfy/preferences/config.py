"""Settings of the preference chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_fraction, check_positive
from rfy.errors import ConfigError
from rfy.preferences.envs import ENVIRONMENTS

QUERY_SELECTIONS = ("random", "disagreement")
#: Where the ensemble is standardised after each refit: on the untrained policy's states, or on recent ones.
NORMALISATIONS = ("initial", "recent")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: Pendulum, 40k PPO steps, 300 synthetic comparisons, CPU.

    ``agents`` independently seeded agents of each kind are trained (seeds from ``agent_seeds``). At
    40k steps about half of the preference agents find the swing-up, so the claims are on the best
    of eight (all eight miss with a chance of about 0.5⁸, under 1%); the metrics report the medians
    too.
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "env_id": "HalfCheetah-v5", "total_timesteps": 1_000_000, "n_envs": 8, "comparisons": (350, 700, 1400),
        "clip_length": 30, "rounds": 20, "label_timescale": 250_000, "query_selection": "disagreement",
        "buffer_episodes": 400, "n_steps": 512, "batch_size": 256, "gamma": 0.99, "lr": 3e-4, "use_sde": False,
        "initial_reward_steps": 1000, "reward_steps": 300, "backflip_timesteps": 1_000_000, "backflip_comparisons": 900,
    }

    env_id: str = "Pendulum-v1"
    total_timesteps: int = 40_960
    n_envs: int = 8
    agents: int = 8
    comparisons: tuple[int, ...] = (300,)
    clip_length: int = 25
    rounds: int = 10
    initial_label_fraction: float = 0.25
    label_timescale: int = 10_000
    query_selection: str = "random"
    candidate_factor: int = 10
    oracle_error_rate: float = 0.1
    tie_margin: float = 0.0
    assumed_error_rate: float = 0.1
    normalise_on: str = "initial"
    ensemble_size: int = 3
    hidden: int = 64
    reward_lr: float = 1e-3
    initial_reward_steps: int = 200
    reward_steps: int = 50
    reward_batch_size: int = 64
    buffer_episodes: int = 256
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 10
    gamma: float = 0.95
    gae_lambda: float = 0.95
    lr: float = 2e-3
    use_sde: bool = True
    eval_episodes: int = 10
    heldout_pairs: int = 1000
    backflip_timesteps: int = 0
    backflip_comparisons: int = 0

    def validate(self) -> None:
        check_choice("env_id", self.env_id, tuple(ENVIRONMENTS))
        check_choice("query_selection", self.query_selection, QUERY_SELECTIONS)
        check_choice("normalise_on", self.normalise_on, NORMALISATIONS)
        for field in ("total_timesteps", "n_envs", "agents", "clip_length", "rounds", "label_timescale",
                      "candidate_factor", "ensemble_size", "hidden", "initial_reward_steps", "reward_steps", "reward_batch_size",
                      "buffer_episodes", "n_steps", "batch_size", "n_epochs", "eval_episodes", "heldout_pairs"):
            check_positive(field, getattr(self, field), integer=True)
        for field in ("backflip_timesteps", "backflip_comparisons"):
            check_positive(field, getattr(self, field), integer=True, allow_zero=True)
        for field in ("reward_lr", "lr"):
            check_positive(field, getattr(self, field))
        check_positive("tie_margin", self.tie_margin, allow_zero=True)
        check_fraction("initial_label_fraction", self.initial_label_fraction)
        check_fraction("gamma", self.gamma)
        check_fraction("gae_lambda", self.gae_lambda)
        for field in ("oracle_error_rate", "assumed_error_rate"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{field} must be a number in [0, 1), got {value!r}")
        if not self.comparisons or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 * self.rounds
                                           for n in self.comparisons):
            raise ConfigError(f"comparisons must be a non-empty tuple of integers >= 2 * rounds "
                              f"({2 * self.rounds}), got {self.comparisons!r}")
        rollout = self.n_steps * self.n_envs  # each round runs PPO for a whole number of rollouts, at least one
        for field in ("total_timesteps", "backflip_timesteps"):
            steps = getattr(self, field)
            if steps and steps < self.rounds * rollout:
                raise ConfigError(f"{field} must be at least rounds · n_steps · n_envs = {self.rounds * rollout} "
                                  f"(one PPO rollout per round), got {steps}")
        horizon = ENVIRONMENTS[self.env_id].horizon
        if self.clip_length > horizon:
            raise ConfigError(f"clip_length must be <= the horizon of {self.env_id} ({horizon}), "
                              f"got {self.clip_length}")
        if self.backflip_timesteps and self.backflip_comparisons < 2 * self.rounds:
            raise ConfigError(f"backflip_comparisons must be >= 2 * rounds ({2 * self.rounds}) when "
                              f"backflip_timesteps > 0, got {self.backflip_comparisons!r}")
