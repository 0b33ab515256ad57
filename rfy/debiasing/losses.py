"""The DB-VAE objective, with every term kept per example so nothing broadcasts by accident.

For an image ``x`` with label ``y`` (1 = the class whose hidden structure we learn, "face"):

    L(x, y) = c1·CE(y, ŷ) + 1[y = 1]·(c2·‖x − x̂‖₁ + c3·KL(q(z|x) ‖ N(0, I)))

(Amini et al., 2019, eq. 3): the classifier learns from every example, the VAE only from positives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_batch(name: str, tensor: torch.Tensor, batch: int) -> None:
    if tensor.dim() != 1 or tensor.shape[0] != batch:
        raise ValueError(f"{name} must have shape [{batch}], got {tuple(tensor.shape)}")


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)`` for each row: shape [B]."""
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(dim=1)


def reconstruction_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``‖x − x̂‖₁ / D`` of each image: shape [B]."""
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    return (x - x_hat).abs().flatten(1).mean(dim=1)


def debiasing_loss(logit: torch.Tensor, y: torch.Tensor, x: torch.Tensor, x_hat: torch.Tensor,
                   mean: torch.Tensor, logvar: torch.Tensor, *, c1: float = 1.0, c2: float = 1.0,
                   c3: float = 0.01) -> torch.Tensor:
    """Mean over the batch of ``c1·CE + 1[y=1]·(c2·recon + c3·KL)``; ``logit`` and ``y`` are [B]."""
    batch = x.shape[0]
    _check_batch("logit", logit, batch)
    _check_batch("y", y, batch)
    classification = F.binary_cross_entropy_with_logits(logit, y.float(), reduction="none")
    vae = c2 * reconstruction_error(x, x_hat) + c3 * kl_to_standard_normal(mean, logvar)
    return (c1 * classification + (y == 1).float() * vae).mean()


def classifier_loss(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The baseline's loss: binary cross-entropy alone."""
    _check_batch("logit", logit, logit.shape[0])
    _check_batch("y", y, logit.shape[0])
    return F.binary_cross_entropy_with_logits(logit, y.float())
