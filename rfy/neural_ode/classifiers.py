"""Image classifiers that differ only in their middle: an ODE block or a stack of residual blocks.

Both share a stem (convolutions that set the width and, for 28×28 images, downsample twice)
and a head (norm, ReLU, global average pooling, linear). The paper's MNIST ODE-Net has
0.22M parameters against the ResNet's 0.60M because the ODE's one set of weights replaces six
blocks (Chen et al., 2018, Table 1).
"""
from __future__ import annotations

import torch
from torch import nn

from rfy.neural_ode.odeblock import ODEBlock


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups: batch-independent, so it behaves the same at any solver step."""
    return nn.GroupNorm(min(32, channels), channels)


class TimeConv2d(nn.Module):
    """3×3 convolution that also sees the time ``t`` as an extra constant input channel."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        time_channel = torch.ones_like(h[:, :1]) * t
        return self.conv(torch.cat([time_channel, h], dim=1))


class ConvDynamics(nn.Module):
    """``f(h, t) = GN(conv_t(ReLU(GN(conv_t(ReLU(GN(h)))))))``: the residual branch made time-aware."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm_in, self.norm_mid, self.norm_out = (group_norm(channels) for _ in range(3))
        self.conv_in, self.conv_out = TimeConv2d(channels, channels), TimeConv2d(channels, channels)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(t, torch.relu(self.norm_in(h)))
        h = self.conv_out(t, torch.relu(self.norm_mid(h)))
        return self.norm_out(h)


class ResidualBlock(nn.Module):
    """``h + conv(ReLU(GN(conv(ReLU(GN(h))))))``: one Euler step of size 1 with its own weights.

    As in the reference implementation (torchdiffeq's ``examples/odenet_mnist.py``, whose ``conv3x3``
    has ``bias=False``) the two convolutions have no bias: each output goes on to a normalisation
    (the block's second GroupNorm, or the next block's first after the sum). The paper-sized ResNet
    then has the reference's 576,778 parameters.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            group_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            group_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.branch(h)


def stem(in_channels: int, channels: int, downsample: bool) -> nn.Sequential:
    """3×3 convolution to ``channels``; with ``downsample``, two stride-2 4×4 convolutions (28→7)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1)]
    if downsample:
        for _ in range(2):
            layers += [group_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


def head(channels: int, num_classes: int) -> nn.Sequential:
    """Norm, ReLU, global average pooling and a linear layer to the class logits."""
    return nn.Sequential(group_norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))


def make_odenet(in_channels: int, channels: int, num_classes: int, *, downsample: bool,
                solver: str = "dopri5", tol: float = 1e-3, steps: int = 10,
                adjoint: bool = False) -> nn.Sequential:
    """Stem → ``ODEBlock(ConvDynamics)`` → head."""
    block = ODEBlock(ConvDynamics(channels), solver=solver, tol=tol, steps=steps, adjoint=adjoint)
    return nn.Sequential(stem(in_channels, channels, downsample), block, head(channels, num_classes))


def make_resnet(in_channels: int, channels: int, num_classes: int, *, downsample: bool,
                blocks: int) -> nn.Sequential:
    """Stem → ``blocks`` residual blocks → head."""
    middle = [ResidualBlock(channels) for _ in range(blocks)]
    return nn.Sequential(stem(in_channels, channels, downsample), *middle, head(channels, num_classes))


def ode_block_of(model: nn.Module) -> ODEBlock:
    """The (single) ODE block inside ``model``."""
    blocks = [module for module in model.modules() if isinstance(module, ODEBlock)]
    if len(blocks) != 1:
        raise ValueError(f"expected exactly one ODEBlock in the model, found {len(blocks)}")
    return blocks[0]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
