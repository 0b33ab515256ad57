"""Adaptive resampling: draw the positives whose latent code is rare more often.

Encode the positives, keep the means ``μ(x)`` of ``q(z|x)``, and histogram each latent
dimension separately. With ``Q̂_i`` the histogram of dimension ``i`` (probability mass per bin),
an example is drawn with probability (Amini et al., 2019, eq. 5)

    W(x) ∝ Π_i 1 / (Q̂_i(μ_i(x)) + α).

Small ``α`` debiases hard; ``α → ∞`` gives uniform sampling. The product is computed as a sum
of logarithms, which cannot overflow however many dimensions there are. It can still collapse:
the log-weight is a sum of ``k`` terms, so its spread grows with the number of latents, and with
``k = 100`` a few points take almost all the probability. ``effective_sample_size`` measures
this; the teaching version's maximum over dimensions (``rule="max"``) is the alternative.
"""
from __future__ import annotations

import torch

RULES = ("product", "max")


def histogram_mass(values: torch.Tensor, bins: int) -> torch.Tensor:
    """For each entry of ``values`` [N, k], the fraction ``Q̂_i(μ_i)`` of its column in the same bin.

    Bins are ``bins`` equal-width intervals spanning each column's range. The result has the
    dtype of ``values`` (float32 or float64).
    """
    low, high = values.min(dim=0).values, values.max(dim=0).values
    width = (high - low).clamp_min(1e-12) / bins
    index = ((values - low) / width).floor().long().clamp(0, bins - 1)
    counts = torch.zeros(bins, values.shape[1], dtype=values.dtype, device=values.device).scatter_add_(
        0, index, torch.ones_like(values))
    return torch.gather(counts, 0, index) / values.shape[0]


def sampling_weights(latent_means: torch.Tensor, *, alpha: float, bins: int = 10,
                     rule: str = "product") -> torch.Tensor:
    """``W(x) ∝ Π_i 1/(Q̂_i(μ_i(x)) + α)`` for every row of ``latent_means`` [N, k], summing to 1.

    ``rule="max"`` is the teaching version's ``W(x) ∝ max_i 1/(Q̂_i(μ_i(x)) + α)`` instead.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (use a large value for uniform sampling), got {alpha!r}")
    if latent_means.dim() != 2:
        raise ValueError(f"latent_means must have shape [N, k], got {tuple(latent_means.shape)}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    log_factors = -(histogram_mass(latent_means, bins) + alpha).log()
    log_weights = log_factors.sum(dim=1) if rule == "product" else log_factors.max(dim=1).values
    return torch.softmax(log_weights, dim=0)


def effective_sample_size(weights: torch.Tensor) -> float:
    """Kish's effective sample size ``1 / Σ_x W(x)²`` of normalised weights: ``N`` when uniform,
    1 when one example takes all the probability."""
    return float(1 / weights.square().sum())


def resampled_order(positives: torch.Tensor, negatives: torch.Tensor, weights: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """One epoch of example indices: positives drawn with replacement by ``weights``, every
    negative once, all shuffled together."""
    drawn = positives[torch.multinomial(weights, len(positives), replacement=True, generator=generator)]
    order = torch.cat([drawn, negatives])
    return order[torch.randperm(len(order), generator=generator)]
