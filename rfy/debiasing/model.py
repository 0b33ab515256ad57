"""The DB-VAE: one encoder that is both a classifier and the recognition network of a VAE.

The encoder outputs ``1 + 2k`` numbers: the class logit, and the mean and log-variance of
``q(z|x) = N(μ, diag σ²)`` over ``k`` latent variables. The decoder maps ``z`` back to an image and
is trained on positives only. The baseline is the same encoder with only the logit used.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(size_in, size_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def conv_encoder(out_dim: int, width: int = 12) -> nn.Sequential:
    """The paper's encoder for 64×64 RGB: four 5×5 stride-2 convolutions, then a dense layer."""
    channels = [3, width, 2 * width, 4 * width, 6 * width]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(6 * width * 4 * 4, 512), nn.ReLU(),
                         nn.Linear(512, out_dim))


def conv_decoder(latent_dim: int, width: int = 12) -> nn.Sequential:
    """Mirror of ``conv_encoder``: a dense layer, then four stride-2 transposed convolutions to 64×64."""
    channels = [6 * width, 4 * width, 2 * width, width, 3]
    layers: list[nn.Module] = [nn.Linear(latent_dim, 6 * width * 4 * 4), nn.ReLU(),
                               nn.Unflatten(1, (6 * width, 4, 4))]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1), nn.ReLU()]
    return nn.Sequential(*layers[:-1], nn.Sigmoid())


class DBVAE(nn.Module):
    """``encoder(x) → [logit, μ, log σ²]``; ``decoder(z) → x̂`` with ``z = μ + σ·ε``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logit [B], latent mean [B, k] and log-variance [B, k]."""
        out = self.encoder(x)
        k = self.latent_dim
        return out[:, 0], out[:, 1 : 1 + k], out[:, 1 + k : 1 + 2 * k]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logit, reconstruction (same shape as ``x``), mean and log-variance."""
        logit, mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return logit, self.decoder(z).reshape(x.shape), mean, logvar


def make_dbvae(image_shape: tuple[int, ...], latent_dim: int, hidden: int = 128) -> DBVAE:
    """An MLP DB-VAE for small images, or the convolutional one for 3×64×64."""
    if tuple(image_shape) == (3, 64, 64):
        return DBVAE(conv_encoder(1 + 2 * latent_dim), conv_decoder(latent_dim), latent_dim)
    pixels = int(torch.tensor(image_shape).prod())
    encoder = nn.Sequential(nn.Flatten(), mlp([pixels, hidden, hidden // 2, 1 + 2 * latent_dim]))
    decoder = nn.Sequential(mlp([latent_dim, hidden // 2, hidden, pixels]), nn.Sigmoid())
    return DBVAE(encoder, decoder, latent_dim)
