"""The learned reward as the RL algorithm sees it: a vectorised-environment wrapper.

Only the reward changes. Observations, episode ends and infos pass through untouched, and the
environments below keep their ``Monitor`` wrappers, so the true returns are still logged (the
agent never sees them).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rfy.preferences.clips import EpisodeBuffer


def step_features(observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The reward model's input $(o_t, a_t)$ of every environment: ``[n_envs, obs_dim + act_dim]``."""
    n = len(observations)
    return np.concatenate([observations.reshape(n, -1), actions.reshape(n, -1)], axis=1).astype(np.float32)


class LearnedRewardVecEnv(VecEnvWrapper):
    r"""Replace $r_t$ by $\hat r(o_t, a_t)$, computed for all environments in one call of ``reward_fn``.

    ``reward_fn`` maps features ``[n_envs, d]`` to rewards ``[n_envs]``. When a ``buffer`` is given,
    every step (features and true reward) is recorded in it, to cut clips from later.
    """

    def __init__(self, venv: VecEnv, reward_fn: Callable[[np.ndarray], np.ndarray],
                 buffer: EpisodeBuffer | None = None) -> None:
        super().__init__(venv)
        self.reward_fn, self.buffer = reward_fn, buffer
        self._observations: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self._observations = self.venv.reset()
        if self.buffer is not None:
            self.buffer.reset()
        return self._observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        features = step_features(self._observations, self._actions)  # o_t is the observation before a_t
        if self.buffer is not None:
            self.buffer.add(features, rewards, dones)
        self._observations = observations  # after an episode ends, the first observation of the next one
        return observations, self.reward_fn(features).astype(np.float32), dones, infos


class AffineRewardVecEnv(VecEnvWrapper):
    r"""Hand the agent $(r_t - m) / s$ instead of $r_t$: the true reward on the learned reward's scale.

    ``RewardEnsemble.normalise`` gives the learned reward zero mean and unit standard deviation on
    the untrained policy's states. The ceiling agent gets the same treatment of the true reward, with
    ``shift`` $m$ and ``scale`` $s$ measured on the random policy's steps. With a fixed horizon, a positive affine
    map of every step's reward leaves the best policy unchanged; it only spares PPO's value function
    returns in the hundreds (whose gradients, clipped together with the policy's, would slow both).
    """

    def __init__(self, venv: VecEnv, shift: float, scale: float) -> None:
        super().__init__(venv)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.shift, self.scale = float(shift), float(scale)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        return observations, ((rewards - self.shift) / self.scale).astype(np.float32), dones, infos
