"""Batched image augmentations on tensors (no torchvision, no per-image Python loop).

They run wherever the batch lives, so on a GPU the data never goes back to the host.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MODES = ("reflect", "zeros")


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``images`` [B, C, H, W] left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_crop(images: torch.Tensor, padding: int, mode: str = "reflect",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad ``images`` [B, C, H, W] by ``padding`` and cut a random H×W window from each one.

    The windows are gathered with one advanced-indexing call: row r of image b is padded row
    ``r + dy_b`` with ``dy_b`` uniform in ``[0, 2·padding]`` (likewise for columns).
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {tuple(images.shape)}")
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    if padding == 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect" if mode == "reflect" else "constant")
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), device=images.device, generator=generator)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)
    index = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()
