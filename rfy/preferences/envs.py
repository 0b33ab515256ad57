"""Fixed-horizon environments: Pendulum (no extra package) and gymnasium's MuJoCo tasks.

The paper removes early termination: an episode's end would otherwise leak information about the
reward (a learner could infer "falling over is bad" from episodes that stop). Every environment
here runs for exactly ``horizon`` steps.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

MUJOCO_HINT = 'MuJoCo tasks need the mujoco package: pip install "gymnasium[mujoco]"'


@dataclass(frozen=True)
class EnvSpec:
    """An environment with a fixed ``horizon``; ``kwargs`` switch its termination off. ``feature_dim`` is
    the size of the reward model's input, observation plus action (known without building the
    environment, so a reward model can be sized where MuJoCo is missing)."""

    horizon: int
    feature_dim: int
    mujoco: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


ENVIRONMENTS = {
    "Pendulum-v1": EnvSpec(200, feature_dim=3 + 1),
    "HalfCheetah-v5": EnvSpec(1000, feature_dim=17 + 6, mujoco=True),
    "Hopper-v5": EnvSpec(1000, feature_dim=11 + 3, mujoco=True, kwargs={"terminate_when_unhealthy": False}),
}


def require_mujoco(env_id: str) -> None:
    """Fail early, naming the package to install, when ``env_id`` needs MuJoCo and it is missing."""
    if ENVIRONMENTS[env_id].mujoco and importlib.util.find_spec("mujoco") is None:
        raise ImportError(f"{env_id}: {MUJOCO_HINT}")


def make_env(env_id: str) -> gym.Env:
    """One fixed-horizon environment."""
    require_mujoco(env_id)
    return gym.make(env_id, **ENVIRONMENTS[env_id].kwargs)


def make_vec(env_id: str, n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` copies in one process, each wrapped in SB3's ``Monitor`` (it logs the true returns)."""
    require_mujoco(env_id)
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=ENVIRONMENTS[env_id].kwargs)
