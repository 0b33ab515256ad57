"""The embedding split into learners, the margin loss and its two negative samplers, as pure tensor functions.

Notation of the paper and of Wu et al. (2017): $f(x) \\in \\mathbb R^d$ is the embedding, split into
$K$ slices $f_k(x) \\in \\mathbb R^{d/K}$, each normalised to the unit sphere;
$D_{ij} = \\lVert f(x_i) - f(x_j)\\rVert_2$.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def split_embedding(embedding: torch.Tensor, learners: int) -> torch.Tensor:
    """The $K$ slices $f_k(x) / \\lVert f_k(x) \\rVert$ of an embedding ``[B, d]``, as ``[K, B, d/K]``.

    Each slice is L2-normalised on its own; slice $k$ is what learner $k$ is trained on.
    """
    batch, dim = embedding.shape
    if dim % learners:
        raise ValueError(f"learners={learners} must divide the embedding dimension {dim}")
    slices = embedding.view(batch, learners, dim // learners).transpose(0, 1)
    return F.normalize(slices, dim=-1)


def full_embedding(embedding: torch.Tensor, learners: int) -> torch.Tensor:
    """The concatenated normalised slices, scaled to unit length: $\\frac{1}{\\sqrt K}[f_1(x), \\dots, f_K(x)]$.

    Squared distances then average the learners' squared distances, $D^2 = \\frac1K \\sum_k D_k^2$.
    """
    slices = split_embedding(embedding, learners)
    return slices.transpose(0, 1).reshape(embedding.shape) / math.sqrt(learners)


def pairwise_distances(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """$D_{ij} = \\lVert x_i - x_j \\rVert_2$ for the rows of ``x`` (``[..., B, n]`` → ``[..., B, B]``), 0 on the
    diagonal."""
    squared = (x.unsqueeze(-2) - x.unsqueeze(-3)).pow(2).sum(-1)
    return squared.clamp_min(eps).sqrt() * (1 - torch.eye(x.shape[-2], device=x.device, dtype=x.dtype))


def margin_loss(d_ap: torch.Tensor, d_an: torch.Tensor, beta: float = 1.2, alpha: float = 0.2) -> torch.Tensor:
    """$\\ell = [D_{ap} - \\beta + \\alpha]_+ + [\\beta - D_{an} + \\alpha]_+$, averaged over the non-zero terms.

    Positive pairs closer than $\\beta - \\alpha$ and negatives farther than $\\beta + \\alpha$ contribute
    nothing, and do not dilute the mean (as in the official code).
    """
    positive = F.relu(d_ap - beta + alpha)
    negative = F.relu(beta - d_an + alpha)
    active = (positive > 0).sum() + (negative > 0).sum()
    return (positive.sum() + negative.sum()) / active.clamp_min(1)


def distance_weights(distances: torch.Tensor, negatives: torch.Tensor, dim: int, cutoff: float = 0.5,
                     nonzero_loss_cutoff: float = 1.4) -> torch.Tensor:
    """Sampling weights $w(D_{an}) \\propto 1 / q(D_{an})$ of distance-weighted sampling (Wu et al. 2017), 0 off
    the ``negatives`` mask (``[..., B, B]``, True where $n$ is another class than $a$).

    On the unit sphere in $\\mathbb R^n$ pairwise distances have density
    $q(D) \\propto D^{n-2} \\left[1 - \\tfrac14 D^2\\right]^{(n-3)/2}$; weighting by $1/q$ draws negatives
    uniformly over distance. Distances are clamped below at ``cutoff`` (very close pairs give noisy
    gradients) and weights beyond ``nonzero_loss_cutoff`` (= β + α, where the loss is zero) are 0.
    Computed in log space and divided by the row's largest negative weight,
    $w_{an} = \\exp(\\log w(D_{an}) - \\max_{n'} \\log w(D_{an'}))$, so the largest is 1 whatever $n$ is.
    The maximum runs over negatives only: the anchor itself ($D = 0$, clamped to the cutoff) and its close
    positives have the largest $1/q$, and dividing by theirs pushes the negatives' weights below float32's
    range: under $10^{-38}$ beyond $D = 1.2$ for $n = 128$, exactly 0 beyond $D = 0.8$ for $n = 256$.
    """
    clamped = distances.clamp_min(cutoff)
    log_q = (dim - 2.0) * clamped.log() + (dim - 3.0) / 2.0 * (1.0 - 0.25 * clamped.pow(2)).clamp_min(1e-8).log()
    log_w = (-log_q).masked_fill((distances >= nonzero_loss_cutoff) | ~negatives, float("-inf"))
    row_max = log_w.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    return (log_w - row_max).exp()


def sample_negatives(distances: torch.Tensor, labels: torch.Tensor, per_anchor: int, *, sampler: str, dim: int,
                     cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``per_anchor`` negative indices for each anchor (``[B, per_anchor]``), drawn among other-class points.

    ``"distance-weighted"``: $P(n \\mid a) \\propto w(D_{an})$ (``distance_weights``), with replacement; an
    anchor whose negatives are all beyond the cutoff falls back to uniform over its negatives.
    ``"official"``: the simpler rule of the official repository, the closest other-class points at
    distance at least ``cutoff`` (``per_anchor`` of them, cycling when there are fewer).
    """
    negative = labels.unsqueeze(0) != labels.unsqueeze(1)
    if sampler == "distance-weighted":
        weights = distance_weights(distances.detach(), negative, dim, cutoff, nonzero_loss_cutoff)
        empty = weights.sum(dim=-1, keepdim=True) <= 0
        weights = torch.where(empty, negative.to(weights.dtype), weights)
        return torch.multinomial(weights, per_anchor, replacement=True, generator=generator)
    if sampler == "official":
        far_enough = negative & (distances.detach() >= cutoff)
        usable = torch.where(far_enough.any(dim=-1, keepdim=True), far_enough, negative)
        ranked = distances.detach().masked_fill(~usable, float("inf")).argsort(dim=-1)
        count = usable.sum(dim=-1, keepdim=True)
        position = torch.arange(per_anchor, device=distances.device).unsqueeze(0) % count
        return ranked.gather(1, position)
    raise ValueError(f"sampler must be 'distance-weighted' or 'official', got {sampler!r}")


def batch_margin_loss(embedding: torch.Tensor, labels: torch.Tensor, *, sampler: str, beta: float, alpha: float,
                      cutoff: float, nonzero_loss_cutoff: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """The margin loss of one class-balanced batch of unit-norm embeddings ``[B, n]``.

    Every ordered positive pair $(a, p)$, $p \\ne a$, gets one negative $n$ drawn for anchor $a$, and
    contributes $[D_{ap} - \\beta + \\alpha]_+ + [\\beta - D_{an} + \\alpha]_+$.
    """
    distances = pairwise_distances(embedding)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    same.fill_diagonal_(False)
    anchors, positives = same.nonzero(as_tuple=True)
    per_anchor = int(same.sum(dim=1).max())
    negatives = sample_negatives(distances, labels, per_anchor, sampler=sampler, dim=embedding.shape[-1],
                                 cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff, generator=generator)
    rank = same.cumsum(dim=1)[anchors, positives] - 1  # the r-th positive of an anchor uses its r-th negative
    d_ap = distances[anchors, positives]
    d_an = distances[anchors, negatives[anchors, rank]]
    return margin_loss(d_ap, d_an, beta, alpha)
