"""Classifiers for MixMatch: the paper's Wide ResNet-28-2 and a small CNN for 8×8 digits.

Both use leaky ReLU (slope 0.1) and batch norm, as in the official code. Batch-norm momentum is
the torch one (weight of the new batch): 0.001 for WRN-28-2, whose runs last 2²⁰ steps, and 0.1
for the small CNN, whose runs last a few hundred (a slower average would still remember the first
steps' statistics when the run ends).
"""
from __future__ import annotations

import torch
from torch import nn

from rfy.config import check_choice

LEAK = 0.1


def conv_bn_act(in_channels: int, out_channels: int, momentum: float, stride: int = 1) -> list[nn.Module]:
    """3×3 convolution, batch norm, leaky ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=momentum), nn.LeakyReLU(LEAK)]


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """conv(w) → conv(2w, stride 2) → conv(2w) → global average → linear: ~56k parameters at w = 32."""
    momentum = 0.1
    return nn.Sequential(
        *conv_bn_act(in_channels, width, momentum), *conv_bn_act(width, 2 * width, momentum, stride=2),
        *conv_bn_act(2 * width, 2 * width, momentum), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


class WideBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(bn(conv(act(bn(x)))))), 1×1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, momentum: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=momentum)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=momentum)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.act = nn.LeakyReLU(LEAK)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if changes_shape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.act(self.bn1(x))
        residual = self.conv2(self.act(self.bn2(self.conv1(activated))))
        return residual + (x if self.shortcut is None else self.shortcut(activated))


def wide_resnet(depth: int = 28, widen: int = 2, in_channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    """WRN-depth-widen (Zagoruyko & Komodakis 2016): three groups of (depth − 4)/6 blocks, widths 16k, 32k, 64k.

    WRN-28-2 has 1.47M parameters, the "1.5M" of the MixMatch paper.
    """
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 (e.g. 28), got {depth}")
    blocks_per_group, momentum = (depth - 4) // 6, 0.001
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)]
    for group in range(3):
        for block in range(blocks_per_group):
            layers.append(WideBlock(widths[group] if block == 0 else widths[group + 1], widths[group + 1],
                                    stride=2 if group > 0 and block == 0 else 1, momentum=momentum))
    layers += [nn.BatchNorm2d(widths[3], momentum=momentum), nn.LeakyReLU(LEAK), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(widths[3], num_classes)]
    return nn.Sequential(*layers)


MODELS = {"small-cnn": small_cnn, "wrn-28-2": wide_resnet}


def make_classifier(name: str, in_channels: int, num_classes: int) -> nn.Module:
    """The classifier called ``name`` (``"small-cnn"`` or ``"wrn-28-2"``)."""
    check_choice("model", name, MODELS)
    return MODELS[name](in_channels=in_channels, num_classes=num_classes)
