r"""M2 and GM-DGM: the same inference networks, different generative models.

Both infer $q(y \mid x)$ (a classifier) and $q(z \mid x, y) = \mathcal N(\mu_\phi(x, y), \sigma^2_\phi(x, y))$.

* **M2** (Kingma et al., 2014): $p(y)\,\mathcal N(z; 0, I)\,p(x \mid y, z)$; the class enters the decoder.
* **GM-DGM** (Willetts et al., 2019): $p(y)\,\mathcal N(z; \mu_y, \sigma_y^2)\,p(x \mid z)$; the class
  only chooses a Gaussian component in latent space, so every class, labelled or not, is a cluster.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rfy.semi_unsupervised.objectives import bernoulli_log_likelihood, gaussian_kl, labelled_bound

MODELS = ("m2", "gmdgm")
INITS = ("pytorch", "authors")
#: Standard deviation of the authors' small normal initialisation (output layers, biases, class means).
AUTHORS_INIT_STD = 1e-3


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DeepGenerativeModel(nn.Module):
    """Shared parts: the classifier $q(y\\mid x)$, the encoder $q(z\\mid x,y)$ and the fixed prior $p(y)$."""

    def __init__(self, x_dim: int, n_clusters: int, latent_dim: int, hidden: tuple[int, ...],
                 log_prior_y: torch.Tensor) -> None:
        super().__init__()
        if log_prior_y.shape != (n_clusters,):
            raise ValueError(f"log_prior_y must have shape [{n_clusters}], got {tuple(log_prior_y.shape)}")
        self.x_dim, self.n_clusters, self.latent_dim = x_dim, n_clusters, latent_dim
        self.classifier = mlp([x_dim, *hidden, n_clusters])
        self.encoder = mlp([x_dim + n_clusters, *hidden, 2 * latent_dim])
        self.register_buffer("log_prior_y", log_prior_y.float())

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of $q(y\\mid x)$, ``[B, K]``."""
        return self.classifier(x)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of $q(z\\mid x,y)$ for one-hot ``y``."""
        mean, logvar = self.encoder(torch.cat([x, y], dim=-1)).chunk(2, dim=-1)
        return mean, logvar

    def prior_z(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of $p(z\\mid y)$ for one-hot ``y``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of $p(x\\mid\\cdot)$."""
        raise NotImplementedError

    def bound(self, x: torch.Tensor, y: torch.Tensor, *, sample: bool = True, kl_weight: float = 1.0) -> torch.Tensor:
        r"""$\mathcal L(x, y)$ per row for one-hot ``y``, one reparameterised sample of $z$ (its mean if not ``sample``).

        ``kl_weight`` < 1 scales the KL term (warm-up); at 1 it is the ELBO.
        """
        mean, logvar = self.encode(x, y)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean) if sample else mean
        prior_mean, prior_logvar = self.prior_z(y)
        kl = gaussian_kl(mean, logvar, prior_mean, prior_logvar)
        log_px = bernoulli_log_likelihood(self.decode(z, y), x)
        return labelled_bound(log_px, kl_weight * kl, y @ self.log_prior_y)

    def bounds_all_classes(self, x: torch.Tensor, **kwargs: float | bool) -> torch.Tensor:
        r"""$\mathcal L(x, y)$ for every $y$ in one batched pass: ``[B, K]``."""
        batch, k = len(x), self.n_clusters
        x_rep = x.unsqueeze(1).expand(batch, k, self.x_dim).reshape(batch * k, self.x_dim)
        y_rep = torch.eye(k, device=x.device).expand(batch, k, k).reshape(batch * k, k)
        return self.bound(x_rep, y_rep, **kwargs).reshape(batch, k)


class M2(DeepGenerativeModel):
    """$p(z) = \\mathcal N(0, I)$ and a decoder $p(x\\mid y, z)$ that sees the class."""

    def __init__(self, x_dim: int, n_clusters: int, latent_dim: int, hidden: tuple[int, ...],
                 log_prior_y: torch.Tensor) -> None:
        super().__init__(x_dim, n_clusters, latent_dim, hidden, log_prior_y)
        self.decoder = mlp([latent_dim + n_clusters, *reversed(hidden), x_dim])

    def prior_z(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = y.new_zeros(len(y), self.latent_dim)
        return zeros, zeros

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, y], dim=-1))


class GMDGM(DeepGenerativeModel):
    """$p(z\\mid y) = \\mathcal N(\\mu_y, \\operatorname{diag}\\sigma_y^2)$ with learned $\\mu_y, \\sigma_y$; decoder $p(x\\mid z)$."""

    def __init__(self, x_dim: int, n_clusters: int, latent_dim: int, hidden: tuple[int, ...],
                 log_prior_y: torch.Tensor, mean_scale: float = 1.0) -> None:
        super().__init__(x_dim, n_clusters, latent_dim, hidden, log_prior_y)
        self.decoder = mlp([latent_dim, *reversed(hidden), x_dim])
        self.prior_means = nn.Parameter(mean_scale * torch.randn(n_clusters, latent_dim))
        self.prior_logvars = nn.Parameter(torch.zeros(n_clusters, latent_dim))

    def prior_z(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y @ self.prior_means, y @ self.prior_logvars

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


@torch.no_grad()
def authors_init(model: DeepGenerativeModel, std: float = AUTHORS_INIT_STD) -> None:
    r"""Re-draw the networks' parameters as the authors' code does, in place.

    In the classifier, the encoder and the decoder, hidden layers get Glorot-normal weights,
    $W \sim \mathcal N\big(0, 2 / (n_\text{in} + n_\text{out})\big)$, and each network's output layer gets
    $W \sim \mathcal N(0, \text{std}^2)$; every bias is $\mathcal N(0, \text{std}^2)$. The logits of
    $q(y \mid x)$ then start within about $10^{-3}$ of each other: the classifier starts uniform. GM-DGM's
    prior log-variances get Glorot-normal values, as the authors' $p(z \mid y)$ layer does; its class
    means are left to ``make_model``'s ``mean_scale``.
    """
    for network in (model.classifier, model.encoder, model.decoder):
        layers = [layer for layer in network if isinstance(layer, nn.Linear)]
        for layer in layers[:-1]:
            nn.init.xavier_normal_(layer.weight)
        nn.init.normal_(layers[-1].weight, std=std)
        for layer in layers:
            nn.init.normal_(layer.bias, std=std)
    if isinstance(model, GMDGM):
        nn.init.xavier_normal_(model.prior_logvars)


def make_model(kind: str, x_dim: int, n_clusters: int, latent_dim: int, hidden: tuple[int, ...],
               prior_y: torch.Tensor, mean_scale: float = 1.0, init: str = "pytorch") -> DeepGenerativeModel:
    """``"m2"`` or ``"gmdgm"`` with the class prior ``prior_y`` (probabilities, ``[n_clusters]``).

    GM-DGM's class means start as ``mean_scale`` · N(0, I); ``init`` is ``"pytorch"`` (PyTorch's default
    layers) or ``"authors"`` (``authors_init``).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    log_prior = prior_y.clamp_min(1e-12).log()
    if kind == "m2":
        model: DeepGenerativeModel = M2(x_dim, n_clusters, latent_dim, hidden, log_prior)
    elif kind == "gmdgm":
        model = GMDGM(x_dim, n_clusters, latent_dim, hidden, log_prior, mean_scale)
    else:
        raise ValueError(f"kind must be one of {MODELS}, got {kind!r}")
    if init == "authors":
        authors_init(model)
    return model


def labelled_log_q(model: DeepGenerativeModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """$\\log q(y\\mid x)$ for integer labels ``y``."""
    return -F.cross_entropy(model.class_logits(x), y, reduction="none")
