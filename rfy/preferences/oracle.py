"""The synthetic "human": it compares two clips by a score and sometimes answers at random.

In the paper's synthetic experiments the score is the environment's reward summed over the clip;
for behaviours without a reward (the Hopper backflip) a script plays the human with a score of
its own.
"""
from __future__ import annotations

import torch

HOPPER_DT = 0.008  # seconds per Hopper step (frame_skip 4 × timestep 0.002)
HOPPER_ANGULAR_VELOCITY = 7  # index of the torso's angular velocity about y in Hopper's observation


def true_return_score(features: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    r"""The paper's synthetic labeller scores a clip by its true return $\sum_t r(o_t, a_t)$."""
    return rewards.sum(-1)


def backflip_score(features: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    r"""Backward rotation of the Hopper's torso over the clip, in turns: $-\sum_t \omega_y(t)\,\Delta t / 2\pi$.

    MuJoCo's y axis points to the hopper's left, so a positive $\omega_y$ pitches it forward; a
    backflip is a large negative total. The environment's own reward (running forward) is ignored.
    """
    angular_velocity = features[..., HOPPER_ANGULAR_VELOCITY]
    return -angular_velocity.sum(-1) * HOPPER_DT / (2 * torch.pi)


SCORERS = {"true_return": true_return_score, "backflip": backflip_score}


def synthetic_preferences(scores: torch.Tensor, *, error_rate: float = 0.1, tie_margin: float = 0.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Labels $\mu$ for pairs with ``scores[..., 0]`` and ``scores[..., 1]``.

    $\mu = (1, 0)$ when the first clip scores higher, $(0, 1)$ when the second does, and
    $(\tfrac12, \tfrac12)$ when they differ by at most ``tie_margin``. With probability
    ``error_rate`` the answer is instead a fair coin between $(1, 0)$ and $(0, 1)$.
    """
    difference = scores[..., 0] - scores[..., 1]
    first = (difference > 0).float()
    first = torch.where(difference.abs() <= tie_margin, torch.full_like(first, 0.5), first)
    shape = difference.shape
    guessing = torch.rand(shape, generator=generator) < error_rate
    coin = (torch.rand(shape, generator=generator) < 0.5).float()
    first = torch.where(guessing, coin, first)
    return torch.stack([first, 1 - first], dim=-1)

