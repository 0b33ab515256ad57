"""The pieces of MixMatch as pure functions on tensors (Berthelot et al. 2019, Algorithm 1).

For a labelled batch X with one-hot labels p and an unlabelled batch U:

1. augment every labelled image once and every unlabelled image K times;
2. guess a label for each unlabelled image, the mean prediction over its K views (no gradient);
3. sharpen the guess with temperature T;
4. MixUp the concatenation of both batches with a shuffled copy of itself, λ' = max(λ, 1 − λ);
5. cross-entropy on the mixed labelled part, squared error on the mixed unlabelled part.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sharpen(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen(p, T)_i = p_i^{1/T} / Σ_j p_j^{1/T}, over the last dimension.

    Computed as a softmax of log p / T, which stays finite for small T (T → 0 gives the one-hot argmax).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return torch.softmax(probabilities.clamp_min(1e-12).log() / temperature, dim=-1)


@torch.no_grad()
def guess_labels(classify: Callable[[torch.Tensor], torch.Tensor], views: torch.Tensor) -> torch.Tensor:
    """q̄_b = (1/K) Σ_k p_model(y | û_{b,k}): the mean softmax over the K views ``views`` [K, B, …].

    Each view goes through ``classify`` as its own batch of B, as in the official code, so a
    batch-norm layer in training mode normalises every view with that view's batch statistics.
    The result [B, classes] carries no gradient.
    """
    logits = torch.stack([classify(view) for view in views]).float()
    return torch.softmax(logits, dim=-1).mean(dim=0)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp with a shuffled copy of the batch, one λ per example.

    λ ~ Beta(α, α), λ' = max(λ, 1 − λ), x' = λ' x₁ + (1 − λ') x₂ and p' = λ' p₁ + (1 − λ') p₂, where
    (x₂, p₂) is a random permutation of the batch. λ' ≥ ½ keeps each mixed example closer to its
    own input, so the labelled part of the mixed batch stays mostly labelled.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    size = inputs.shape[0]
    concentration = torch.tensor(float(alpha), device=inputs.device)
    # validate_args=False: checking the parameters would read a device value back to the host every step
    beta = torch.distributions.Beta(concentration, concentration, validate_args=False)
    lam = beta.sample((size,))
    lam = torch.maximum(lam, 1 - lam)
    partner = torch.randperm(size, device=inputs.device)
    lam_inputs = lam.view(size, *([1] * (inputs.dim() - 1))).to(inputs.dtype)
    mixed_inputs = lam_inputs * inputs + (1 - lam_inputs) * inputs[partner]
    lam_targets = lam.view(size, 1).to(targets.dtype)
    mixed_targets = lam_targets * targets + (1 - lam_targets) * targets[partner]
    return mixed_inputs, mixed_targets


@dataclass
class MixedBatch:
    """The batch MixMatch trains on: the first ``num_labelled`` rows are X', the rest U'."""

    inputs: torch.Tensor
    targets: torch.Tensor
    num_labelled: int


def mixmatch_batch(classify: Callable[[torch.Tensor], torch.Tensor], labelled: torch.Tensor,
                   labels_onehot: torch.Tensor, unlabelled_views: torch.Tensor, *, temperature: float,
                   alpha: float, use_mixup: bool = True) -> MixedBatch:
    """X', U' = MixMatch(X̂, p, Û, T, α): guess, sharpen, concatenate and mix (Algorithm 1, lines 7-16).

    ``labelled`` [B, …] are augmented labelled images, ``unlabelled_views`` [K, B, …] the K
    augmentations of each unlabelled image. T = 1 turns sharpening off; ``use_mixup=False`` skips
    MixUp (the paper's two ablations).
    """
    num_views = unlabelled_views.shape[0]
    guess = sharpen(guess_labels(classify, unlabelled_views), temperature)
    inputs = torch.cat([labelled, unlabelled_views.flatten(0, 1)])
    targets = torch.cat([labels_onehot.float(), guess.repeat(num_views, 1)])
    if use_mixup:
        inputs, targets = mixup(inputs, targets, alpha)
    return MixedBatch(inputs, targets, labelled.shape[0])


def mixmatch_loss(logits: torch.Tensor, batch: MixedBatch,
                  unlabelled_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = L_X + λ_u L_U with L_X = H(p', p_model(x')) on X' and L_U = mean ‖q' − p_model(u')‖² / L on U'.

    The squared error is averaged over examples and over the L classes, as in the paper's equation (5).
    Returns (L, L_X, L_U).
    """
    logits = logits.float()
    split = batch.num_labelled
    labelled_loss = -(batch.targets[:split] * F.log_softmax(logits[:split], dim=-1)).sum(dim=-1).mean()
    unlabelled_loss = (torch.softmax(logits[split:], dim=-1) - batch.targets[split:]).square().mean()
    return labelled_loss + unlabelled_weight * unlabelled_loss, labelled_loss, unlabelled_loss


def linear_rampup(step: int, rampup_steps: int) -> float:
    """min(step / rampup_steps, 1): the factor that ramps λ_u up from 0 (1 at once if rampup_steps is 0)."""
    return 1.0 if rampup_steps == 0 else min(step / rampup_steps, 1.0)


def interleave_offsets(batch_size: int, num_batches: int) -> list[int]:
    """Where the slices of a chunk start and end: ``num_batches`` slices of ⌊B/n⌋ rows, the last ones one longer.

    The official code's ``interleave_offsets``: the B mod n rows left over go one each to the last
    slices, e.g. B = 32, n = 3 gives slices of 10, 11 and 11 rows, offsets [0, 10, 21, 32].
    """
    sizes = [batch_size // num_batches] * num_batches
    for extra in range(batch_size - sum(sizes)):
        sizes[-extra - 1] += 1
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    return offsets


def interleave_order(batch_size: int, num_batches: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The permutation of ``num_batches·batch_size`` rows that gives every chunk a share of chunk 0.

    MixMatch forwards the mixed batch in ``num_batches`` chunks of ``batch_size`` and lets only the
    first update the batch-norm running statistics. Chunk 0 holds the labelled examples; swapping
    its i-th slice (``interleave_offsets``) with the i-th slice of chunk i makes each chunk a
    cross-section of the whole batch, so its batch statistics are representative. The swap is its
    own inverse.
    """
    bounds = interleave_offsets(batch_size, num_batches)
    order = torch.arange(num_batches * batch_size, device=device).view(num_batches, batch_size)
    swapped = order.clone()
    for chunk in range(1, num_batches):
        piece = slice(bounds[chunk], bounds[chunk + 1])
        swapped[0, piece], swapped[chunk, piece] = order[chunk, piece], order[0, piece]
    return swapped.flatten()
