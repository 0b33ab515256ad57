r"""An ensemble of reward predictors $\hat r_e(o, a)$, trained on bootstrap samples of the comparisons.

The members are evaluated together with batched matrix products, so a whole minibatch of clip
pairs, ``[members, pairs, 2, clip_length, features]``, is one forward pass. Each member is
normalised on its own (zero mean, unit standard deviation over a set of states: by default those
of the untrained policy, see ``Config.normalise_on``) before the members are averaged: the
Bradley–Terry loss sees only differences of returns, so a member's offset and scale are arbitrary.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rfy.preferences.bradley_terry import preference_loss


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers: $y_e = x_e W_e + b_e$ for ``x`` of shape ``[members, n, in]``."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default initialisation, member by member
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class RewardEnsemble(nn.Module):
    """``members`` MLPs (two hidden layers, leaky ReLU, as in the paper's MuJoCo predictor)."""

    def __init__(self, feature_dim: int, members: int = 3, hidden: int = 64) -> None:
        super().__init__()
        self.members = members
        self.net = nn.Sequential(EnsembleLinear(members, feature_dim, hidden), nn.LeakyReLU(0.01),
                                 EnsembleLinear(members, hidden, hidden), nn.LeakyReLU(0.01),
                                 EnsembleLinear(members, hidden, 1))
        self.register_buffer("shift", torch.zeros(members))
        self.register_buffer("scale", torch.ones(members))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised $\\hat r_e$ of per-member inputs ``x`` of shape ``[members, ..., d]`` → ``[members, ...]``."""
        flat = x.reshape(self.members, -1, x.shape[-1])
        return self.net(flat).reshape(x.shape[:-1])

    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised $(\\hat r_e(x) - m_e) / s_e$ of shared inputs ``[..., d]`` → ``[members, ...]``."""
        raw = self.raw(x.expand(self.members, *x.shape))
        view = (self.members,) + (1,) * (raw.dim() - 1)
        return (raw - self.shift.view(view)) / self.scale.view(view)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reward given to the RL agent: the mean of the normalised members, ``[..., d]`` → ``[...]``."""
        return self.member_rewards(x).mean(0)

    @torch.no_grad()
    def normalise(self, states: torch.Tensor) -> None:
        """Set each member's shift and scale so that its rewards on ``states`` ``[n, d]`` have mean 0, std 1."""
        raw = self.raw(states.expand(self.members, *states.shape))
        self.shift.copy_(raw.mean(1))
        self.scale.copy_(raw.std(1).clamp_min(1e-6))

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """NumPy in, NumPy out, for the environment wrapper: one batched call per vectorised step."""
        return self(torch.as_tensor(features, dtype=torch.float32)).numpy()


def bootstrap_indices(n: int, members: int, generator: torch.Generator) -> torch.Tensor:
    """For each member, ``n`` indices drawn with replacement from ``range(n)``: shape ``[members, n]``."""
    return torch.randint(n, (members, n), generator=generator)


def train_reward_model(ensemble: RewardEnsemble, optimizer: torch.optim.Optimizer, clips: torch.Tensor,
                       labels: torch.Tensor, *, steps: int, batch_size: int, error_rate: float,
                       generator: torch.Generator) -> float:
    """``steps`` Adam steps on the Bradley–Terry loss; member $e$ sees only its bootstrap sample.

    ``clips`` is ``[pairs, 2, clip_length, d]``, ``labels`` ``[pairs, 2]``. Returns the last loss
    (summed over members, each member's loss a mean over its minibatch).
    """
    ensemble.train()
    sample = bootstrap_indices(len(clips), ensemble.members, generator)
    loss = torch.zeros(())
    for _ in range(steps):
        pick = torch.randint(len(clips), (ensemble.members, min(batch_size, len(clips))), generator=generator)
        batch = sample.gather(1, pick)  # [members, batch]: member e's pairs
        returns = ensemble.raw(clips[batch]).sum(-1)  # [members, batch, 2]
        loss = preference_loss(returns, labels[batch], error_rate) * ensemble.members
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    ensemble.eval()
    return loss.item()


@torch.no_grad()
def pair_accuracy(ensemble: RewardEnsemble, clips: torch.Tensor, true_returns: torch.Tensor) -> float:
    """Fraction of pairs (ties in the true return left out) that the ensemble's returns order correctly."""
    predicted = ensemble(clips).sum(-1)  # [pairs, 2]
    true_difference = true_returns[:, 0] - true_returns[:, 1]
    decided = true_difference != 0
    agree = (predicted[:, 0] - predicted[:, 1]).sign() == true_difference.sign()
    return float(agree[decided].float().mean())
