"""Which pairs to ask about, and how many labels to ask for when: the tricks that save labels."""
from __future__ import annotations

import math

import numpy as np
import torch

from rfy.preferences.bradley_terry import preference_probability
from rfy.preferences.reward_model import RewardEnsemble


def disagreement(member_returns: torch.Tensor) -> torch.Tensor:
    r"""Variance across members of $\hat P_e[\sigma^1 \succ \sigma^2]$; ``[members, pairs, 2]`` → ``[pairs]``."""
    return preference_probability(member_returns).var(0)


def select_by_disagreement(member_returns: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` candidate pairs on which the members disagree most (highest variance first)."""
    return disagreement(member_returns).topk(k).indices


def select_queries(ensemble: RewardEnsemble, candidates: torch.Tensor, k: int, method: str,
                   generator: torch.Generator) -> torch.Tensor:
    """``k`` of the candidate pairs ``[n, 2, L, d]``: the most disputed ones, or a uniform random subset."""
    if method == "random":
        return torch.randperm(len(candidates), generator=generator)[:k]
    if method == "disagreement":
        with torch.no_grad():
            return select_by_disagreement(ensemble.member_rewards(candidates).sum(-1), k)
    raise ValueError(f"method must be 'random' or 'disagreement', got {method!r}")


def label_schedule(total: int, boundaries: np.ndarray, *, initial_fraction: float, timescale: float) -> np.ndarray:
    r"""Labels to request at each of the timesteps ``boundaries`` (the first is 0), summing to ``total``.

    A fraction ``initial_fraction`` is asked before RL starts, about clips of the untrained policy, so
    that the first reward is not arbitrary; afterwards the rate decays like the paper's
    $\propto \tau / (T + \tau)$, so the cumulative count grows like $\tau \log(1 + T / \tau)$.
    """
    if boundaries[0] != 0 or np.any(np.diff(boundaries) <= 0):
        raise ValueError("boundaries must start at 0 and increase")
    if len(boundaries) == 1:
        return np.array([total])
    initial = round(initial_fraction * total)
    grown = np.log1p(np.asarray(boundaries, dtype=float) / timescale)
    cumulative = initial + (total - initial) * grown / grown[-1]
    return np.diff(np.round(cumulative).astype(int), prepend=0)


def round_boundaries(total_timesteps: int, rounds: int, rollout: int) -> np.ndarray:
    """Start of each round in timesteps: ``rounds`` nearly equal chunks, each a whole number of rollouts."""
    rollouts = math.ceil(total_timesteps / rollout)
    return np.floor(np.arange(rounds) * rollouts / rounds).astype(int) * rollout
