"""Embedding networks: a trunk giving features $\\phi(x)$ (clustered), and a linear head $f(x) = W\\phi(x) + b$."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rfy.errors import ConfigError
from rfy.pretrained import torchvision_trunk

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_FEATURES = 2048


class Embedder(nn.Module):
    """``features(x)`` is the trunk's output $\\phi(x)$ (what k-means clusters); ``forward(x)`` the embedding $f(x)$."""

    def __init__(self, trunk: nn.Module, feature_dim: int, embedding_dim: int, *, frozen_batch_norm: bool = False,
                 normalise_input: bool = False) -> None:
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(feature_dim, embedding_dim)
        self.frozen_batch_norm, self.normalise_input = frozen_batch_norm, normalise_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if frozen_batch_norm:
            for module in self.trunk.modules():
                if isinstance(module, _BatchNorm):
                    module.requires_grad_(False)

    def train(self, mode: bool = True) -> Embedder:
        """As ``nn.Module.train``, but frozen batch norm stays in eval mode (its running statistics never move)."""
        super().train(mode)
        if self.frozen_batch_norm:
            for module in self.trunk.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise_input:
            x = (x - self.mean) / self.std
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def mlp_embedder(in_dim: int = 144, hidden_dim: int = 128, embedding_dim: int = 32) -> Embedder:
    """The reduced-mode network: $\\phi(x) = \\mathrm{ReLU}(W_2\\,\\mathrm{ReLU}(W_1 x))$, then the linear head."""
    trunk = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU())
    return Embedder(trunk, hidden_dim, embedding_dim)


class SmallConvTrunk(nn.Module):
    """Three 3×3 convolutions and global average pooling of flattened square grey images: $\\phi(x) \\in \\mathbb R^w$.

    No batch norm, so batches of one cluster and of all data are treated alike.
    """

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = int(round(x.shape[-1] ** 0.5))
        return self.layers(x.view(-1, 1, side, side))


def cnn_embedder(hidden_dim: int = 128, embedding_dim: int = 32) -> Embedder:
    """The reduced-mode network: a small CNN trunk (shift-tolerant features), then the linear head."""
    return Embedder(SmallConvTrunk(hidden_dim), hidden_dim, embedding_dim)


def resnet50_trunk(pretrained: bool = True) -> nn.Module:
    """ImageNet-pretrained ResNet-50 without its classifier (2048-d pooled features); needs torchvision.
    ``pretrained=False`` gives the same network with random weights (no download)."""
    return torchvision_trunk("resnet50", pretrained=pretrained,
                             needed_for="full mode of the divide-and-conquer chapter")


#: Trunk factories by ``Config.model`` (tests swap in a random-weights trunk with the same interface).
TRUNKS: dict[str, Callable[[], nn.Module]] = {"resnet-50": resnet50_trunk}


def make_embedder(model: str, in_dim: int, hidden_dim: int, embedding_dim: int, *,
                  trunk: nn.Module | None = None) -> Embedder:
    """The network of ``Config.model``: the MLP, the small CNN, or a pretrained ResNet-50 with frozen batch norm
    (``trunk``, if given, in place of ``TRUNKS[model]()``: a network with the same 2048-d output)."""
    if model == "mlp":
        return mlp_embedder(in_dim, hidden_dim, embedding_dim)
    if model == "cnn":
        return cnn_embedder(hidden_dim, embedding_dim)
    if model in TRUNKS:
        return Embedder(trunk if trunk is not None else TRUNKS[model](), RESNET_FEATURES, embedding_dim,
                        frozen_batch_norm=True, normalise_input=True)
    raise ConfigError(f"model must be one of ('mlp', {', '.join(repr(m) for m in TRUNKS)}), got {model!r}")
