"""One trunk, four heads: what a photo network can be trained to predict from votes.

All four share the trunk :math:`h = f_\\theta(x)` and a head of the same shape (one hidden layer of
``width`` units); they differ in their target and loss, and in how a score is read out:

* **regression** on the photo's mean vote :math:`\\bar v_i` (squared error), score :math:`\\hat g = \\hat{\\bar v}`;
* **classification** of the mean vote into ``bins`` equal bins (cross-entropy), score the expected bin centre;
* **vote distribution**: :math:`p(v \\mid x)` over the ``L`` vote values, cross-entropy on every single vote,
  score :math:`\\sum_l l\\, p(l \\mid x)`;
* **voter model**: :math:`p(v \\mid x, e_u)` for voter ``u`` with a learned embedding :math:`e_u`,
  cross-entropy on every vote with its voter, score the mean expected vote over a fixed set ``S`` of
  standard voters, :math:`\\hat g = \\frac{1}{|S|}\\sum_{u \\in S} \\sum_l l\\, p(l \\mid x, e_u)`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rfy.voters.config import CLASSIFICATION, DISTRIBUTION, HEADS, REGRESSION, VOTER
from rfy.errors import ConfigError


def bin_index(mean_vote: torch.Tensor, bins: int, levels: int) -> torch.Tensor:
    """The class of a mean vote: :math:`\\lfloor \\bar v \\cdot B / (L - 1) \\rfloor`, clipped to ``0 … B-1``."""
    return (mean_vote * bins / (levels - 1)).floor().long().clamp(0, bins - 1)


def bin_centres(bins: int, levels: int) -> torch.Tensor:
    """Centre of bin ``c`` on the vote scale: :math:`(c + \\tfrac12)(L - 1)/B`."""
    return (torch.arange(bins, dtype=torch.float32) + 0.5) * (levels - 1) / bins


def expected_value(logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_l \\text{values}_l\\, \\operatorname{softmax}(\\text{logits})_l` over the last axis."""
    return (torch.softmax(logits.float(), -1) * values.to(logits.device)).sum(-1)


class VoteModel(nn.Module):
    """Trunk and one head of kind ``kind`` (one of ``HEADS``) for ``traits`` traits on an ``levels``-point scale."""

    def __init__(self, kind: str, in_features: int, *, width: int, traits: int, levels: int, bins: int,
                 num_voters: int = 1, voter_dim: int = 8) -> None:
        super().__init__()
        if kind not in HEADS:
            raise ConfigError(f"kind must be one of {HEADS}, got {kind!r}")
        self.kind, self.traits, self.levels, self.bins = kind, traits, levels, bins
        self.trunk = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        outputs = {REGRESSION: traits, CLASSIFICATION: traits * bins, DISTRIBUTION: traits * levels,
                   VOTER: traits * levels}[kind]
        extra = voter_dim if kind == VOTER else 0
        self.head = nn.Sequential(nn.Linear(width + extra, width), nn.ReLU(), nn.Linear(width, outputs))
        self.voters = None
        if kind == VOTER:
            self.voters = nn.Embedding(num_voters, voter_dim)
            nn.init.normal_(self.voters.weight, std=0.01)

    def forward(self, x: torch.Tensor, voters: torch.Tensor | None = None) -> torch.Tensor:
        """Raw head output: (n, K) for regression, (n, K, B) or (n, K, L) logits otherwise."""
        h = self.trunk(x)
        if self.voters is not None:
            if voters is None:
                raise ValueError("the voter model needs the voter of every row (voters=...)")
            h = torch.cat([h, self.voters(voters)], -1)
        out = self.head(h)
        return out if self.kind == REGRESSION else out.view(len(x), self.traits, -1)

    def loss(self, x: torch.Tensor, target: torch.Tensor, voters: torch.Tensor | None = None) -> torch.Tensor:
        """Squared error on mean votes (regression); cross-entropy on bins or on single votes otherwise."""
        out = self(x, voters)
        if self.kind == REGRESSION:
            return F.mse_loss(out.float(), target)
        if self.kind == CLASSIFICATION:
            target = bin_index(target, self.bins, self.levels)
        return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), target.reshape(-1))

    @torch.no_grad()
    def score(self, x: torch.Tensor, standard_voters: torch.Tensor | None = None, chunk: int = 256) -> torch.Tensor:
        """The predicted score :math:`\\hat g` of every photo (n, K), read out as in the module docstring."""
        values = torch.arange(self.levels, dtype=torch.float32, device=x.device)
        if self.kind == REGRESSION:
            return self(x).float()
        if self.kind == CLASSIFICATION:
            return expected_value(self(x), bin_centres(self.bins, self.levels).to(x.device))
        if self.kind == DISTRIBUTION:
            return expected_value(self(x), values)
        if standard_voters is None:
            raise ValueError("the voter model's score needs the standard voters")
        scores = []
        for part in x.split(chunk):
            n, s = len(part), len(standard_voters)
            h = self.trunk(part)
            pairs = torch.cat([h.repeat_interleave(s, 0), self.voters(standard_voters).repeat(n, 1)], -1)
            logits = self.head(pairs).view(n, s, self.traits, self.levels)
            scores.append(expected_value(logits, values).mean(1))
        return torch.cat(scores)
