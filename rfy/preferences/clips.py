"""Trajectory segments ("clips"): a buffer of recent fixed-horizon episodes and pairs cut from it.

A step is stored as its features $(o_t, a_t)$, the input of the reward model, and the true reward
$r_t$, which only the synthetic labeller and our evaluation ever read.
"""
from __future__ import annotations

import numpy as np
import torch


class EpisodeBuffer:
    """The last ``capacity`` complete episodes of ``n_envs`` parallel environments, as arrays.

    ``add`` takes one step of every environment at once; an environment's episode is kept when it
    ends after exactly ``horizon`` steps (the paper's fixed horizon).
    """

    def __init__(self, n_envs: int, feature_dim: int, horizon: int, capacity: int) -> None:
        self.horizon, self.capacity = horizon, capacity
        self._features = np.zeros((n_envs, horizon, feature_dim), dtype=np.float32)
        self._rewards = np.zeros((n_envs, horizon), dtype=np.float32)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self.features = np.zeros((capacity, horizon, feature_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, horizon), dtype=np.float32)
        self.episodes_seen = 0

    def __len__(self) -> int:
        return min(self.episodes_seen, self.capacity)

    def reset(self) -> None:
        """Drop the episodes in progress (the environments were reset)."""
        self._t[:] = 0

    def add(self, features: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Append step $t$ of every environment; store the episodes that ended."""
        envs = np.arange(len(self._t))
        writable = self._t < self.horizon
        self._features[envs[writable], self._t[writable]] = features[writable]
        self._rewards[envs[writable], self._t[writable]] = rewards[writable]
        self._t += 1
        for env in np.flatnonzero(dones):  # at most one episode per environment ends per step
            if self._t[env] == self.horizon:
                slot = self.episodes_seen % self.capacity
                self.features[slot], self.rewards[slot] = self._features[env], self._rewards[env]
                self.episodes_seen += 1
            self._t[env] = 0

    def sample_clips(self, n: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` clips of ``length`` steps from uniformly drawn episodes and start times.

        Returns features ``[n, length, feature_dim]`` and true rewards ``[n, length]``.
        """
        if len(self) == 0:
            raise RuntimeError("the buffer holds no complete episode yet")
        episode = rng.integers(len(self), size=n)[:, None]
        steps = rng.integers(self.horizon - length + 1, size=n)[:, None] + np.arange(length)
        return torch.from_numpy(self.features[episode, steps]), torch.from_numpy(self.rewards[episode, steps])

    def sample_pairs(self, n: int, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs of clips: features ``[n, 2, length, d]`` and true rewards ``[n, 2, length]``."""
        features, rewards = self.sample_clips(2 * n, length, rng)
        return features.reshape(n, 2, length, -1), rewards.reshape(n, 2, length)
