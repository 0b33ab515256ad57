"""How good is a score? Pearson r against the truth, and how many raw votes it is worth."""
from __future__ import annotations

import torch


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:math:`r = \\frac{\\sum (a - \\bar a)(b - \\bar b)}{\\sqrt{\\sum (a - \\bar a)^2 \\sum (b - \\bar b)^2}}` along
    axis 0 (one r per column; the ``dim=-2`` axis is the photos for batched inputs)."""
    a, b = a.double() - a.double().mean(-2, keepdim=True), b.double() - b.double().mean(-2, keepdim=True)
    return ((a * b).sum(-2) / (a.square().sum(-2) * b.square().sum(-2)).sqrt().clamp_min(1e-12)).float()


def raw_vote_curve(heldout: torch.Tensor, truth: torch.Tensor, *, permutations: int,
                   generator: torch.Generator) -> torch.Tensor:
    """The vote-equivalence curve :math:`r(n) = \\operatorname{corr}\\big(\\frac1n \\sum_{j \\le n} v_{ij}, g_i\\big)`,
    n = 1 … H, for held-out votes ``heldout`` (N, H, K); averaged over traits and over ``permutations``
    random orders of each photo's votes. Returns (H,)."""
    count, votes, traits = heldout.shape
    order = torch.rand(permutations, count, votes, generator=generator).argsort(-1).to(heldout.device)
    shuffled = torch.gather(heldout.float().unsqueeze(0).expand(permutations, -1, -1, -1), 2,
                            order.unsqueeze(-1).expand(-1, -1, -1, traits))
    n = torch.arange(1, votes + 1, device=heldout.device, dtype=torch.float32).view(1, 1, -1, 1)
    means = shuffled.cumsum(2) / n                      # (P, N, H, K): mean of the first n votes
    r = pearson(means.transpose(1, 2), truth.unsqueeze(0).unsqueeze(0).expand(permutations, votes, -1, -1))
    return r.mean(-1).mean(0)                           # (P, H, K) → (H,)


def votes_equivalent(curve: torch.Tensor, r: float) -> float:
    """k*: the n at which the raw-vote curve reaches correlation ``r`` (linear between integer n).

    Below one vote it interpolates from (0, 0); above the last point it returns H, the number of
    held-out votes (a lower bound: the model is worth at least that many).
    """
    points = [0.0] + [float(value) for value in curve]
    for n in range(1, len(points)):
        if points[n] >= r:
            low, high = points[n - 1], points[n]
            return n - 1 + (r - low) / (high - low) if high > low else float(n)
    return float(len(curve))
