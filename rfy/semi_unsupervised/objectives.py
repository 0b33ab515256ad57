r"""The paper's objective, as pure functions of tensors.

For a labelled pair the bound is

$$\mathcal L(x, y) = \mathbb E_{q(z\mid x,y)}\big[\log p(x \mid \cdot)\big]
   - \mathrm{KL}\big(q(z \mid x, y)\,\Vert\, p(z \mid y)\big) + \log p(y),$$

for an unlabelled image it marginalises the class under $q(y \mid x)$,

$$\mathcal U(x) = \sum_y q(y \mid x)\, \mathcal L(x, y) + \mathcal H\big[q(y \mid x)\big],$$

and the labelled images also train the classifier directly with weight $\alpha$:

$$\mathcal J = \sum_{(x,y)} \mathcal L(x, y) + \sum_{x} \mathcal U(x) + \alpha \sum_{(x, y)} \log q(y \mid x).$$
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""$\log p(x \mid \cdot) = \sum_d x_d \log \pi_d + (1 - x_d) \log(1 - \pi_d)$, $\pi = \sigma(\text{logits})$; sums the last dim."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor,
                prior_logvar: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu, \sigma^2)\,\Vert\,\mathcal N(m, s^2))
    = \tfrac12 \sum_j \big[\log s_j^2 - \log\sigma_j^2 + (\sigma_j^2 + (\mu_j - m_j)^2)/s_j^2 - 1\big]$; sums the last dim."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mean - prior_mean) ** 2) / prior_logvar.exp() - 1).sum(-1)


def labelled_bound(log_px: torch.Tensor, kl: torch.Tensor, log_prior_y: torch.Tensor) -> torch.Tensor:
    r"""$\mathcal L(x, y) = \log p(x \mid z, \cdot) - \mathrm{KL}(q(z\mid x,y)\Vert p(z\mid y)) + \log p(y)$, elementwise."""
    return log_px - kl + log_prior_y


def unlabelled_bound(class_logits: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    r"""$\mathcal U(x) = \sum_y q(y\mid x)\,\mathcal L(x, y) + \mathcal H[q(y\mid x)]$ from logits and bounds, both ``[B, K]``."""
    if class_logits.shape != bounds.shape:
        raise ValueError(f"class_logits {tuple(class_logits.shape)} and bounds {tuple(bounds.shape)} must match")
    log_q = F.log_softmax(class_logits, dim=-1)
    return (log_q.exp() * (bounds - log_q)).sum(-1)


def class_prior(n_classes: int, masked_classes: Sequence[int], labelled_counts: torch.Tensor,
                n_extra: int = 0, unlabelled_mass: float = 0.5) -> torch.Tensor:
    r"""$p(y)$ over ``n_classes + n_extra`` outputs, as in the authors' code.

    Labelled classes share $1 - m$ in proportion to their label counts; each masked class and each
    extra cluster gets $m / (n_\text{masked} + n_\text{extra})$, with $m$ = ``unlabelled_mass``.
    Without masked classes or extra clusters the labelled classes get everything.
    """
    n_free = len(masked_classes) + n_extra
    labelled = torch.ones(n_classes, dtype=torch.bool)
    labelled[list(masked_classes)] = False
    counts = labelled_counts.double() * labelled
    if n_free == 0:
        return (counts / counts.sum()).float()
    prior = torch.zeros(n_classes + n_extra, dtype=torch.float64)
    prior[:n_classes] = (1 - unlabelled_mass) * counts / counts.sum()
    prior[:n_classes][~labelled] = unlabelled_mass / n_free
    prior[n_classes:] = unlabelled_mass / n_free
    return prior.float()


def semi_unsupervised_loss(labelled_bounds: torch.Tensor, labelled_log_q: torch.Tensor,
                           unlabelled_bounds: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""$-\big(\overline{\mathcal L} + \overline{\mathcal U} + \alpha\,\overline{\log q(y\mid x)}\big)$, means over each batch."""
    return -(labelled_bounds.mean() + unlabelled_bounds.mean() + alpha * labelled_log_q.mean())
