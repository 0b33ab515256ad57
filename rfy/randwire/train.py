"""Data on the device, and one training loop for every network of the chapter (RandWire or ResNet).

The loop is plain supervised training as in the paper: SGD with momentum, a cosine learning-rate
schedule, weight decay, label smoothing; batches are drawn by a shuffled pass over the training set
held on the device (uint8 for CIFAR-10), augmented there, in bfloat16 autocast on CUDA. Under
``torchrun`` each process takes its share of every batch and DistributedDataParallel averages the
gradients; a checkpoint after every epoch lets a cut-off run resume.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rfy.augment import random_crop, random_flip
from rfy.checkpoint import ResumableLoop
from rfy.data import load_cifar10, load_digits, to_unit_interval
from rfy.distributed import ProcessGroup, join_process_group
from rfy.errors import ConfigError
from rfy.progress import progress
from rfy.randwire.config import Config
from rfy.runtime import DeviceData, select_device, synchronize

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass
class ImageData(DeviceData):
    """Train and test images with their labels, and how to augment and normalise them."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    flip: bool
    crop_padding: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10

    @property
    def shape(self) -> tuple[int, int, int]:
        """[C, H, W] of one image."""
        return tuple(self.train_images.shape[1:])

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Floats in [0, 1], then $(x - \\mu_c)/\\sigma_c$ per channel."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (to_unit_interval(images) - mean) / std

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """A random crop of the zero-padded image (and a random mirror where it keeps the class), normalised."""
        images = random_crop(self.normalise(images), self.crop_padding, mode="zeros")
        return random_flip(images) if self.flip else images


#: How each dataset is augmented and normalised (``ImageData``'s fields besides the tensors).
DATASET_SETTINGS: dict[str, dict[str, Any]] = {
    "digits": {"flip": False, "crop_padding": 1, "mean": (0.3,), "std": (0.4,)},
    "cifar-10": {"flip": True, "crop_padding": 4, "mean": CIFAR_MEAN, "std": CIFAR_STD},
}


def _digits() -> ImageData:
    train_images, train_labels = load_digits("train")
    test_images, test_labels = load_digits("test")
    return ImageData(train_images, train_labels, test_images, test_labels, **DATASET_SETTINGS["digits"])


def _cifar10() -> ImageData:
    train_images, train_labels = load_cifar10("train")
    test_images, test_labels = load_cifar10("test")
    return ImageData(train_images, train_labels, test_images, test_labels, **DATASET_SETTINGS["cifar-10"])


DATASET_LOADERS: dict[str, Callable[[], ImageData]] = {"digits": _digits, "cifar-10": _cifar10}


def load_data(config: Config) -> ImageData:
    """The train and test split of ``config.dataset`` (digits: no download; CIFAR-10: the checksummed registry)."""
    return DATASET_LOADERS[config.dataset]()


@dataclass
class TrainResult:
    """The trained network and its test accuracy over training."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.history[-1]["accuracy"]


def cosine_lr(step: int, total_steps: int, base_lr: float) -> float:
    """$\\eta_t = \\frac{\\eta_0}{2}\\,(1 + \\cos(\\pi t / T))$, the cosine schedule without restarts."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageData, *, limit: int = 0, batch_size: int = 1000,
                  autocast: bool = False) -> float:
    """Test accuracy (%) of ``model`` in eval mode, on the first ``limit`` test images (0: all of them)."""
    model.eval()
    count = len(data.test_labels) if not limit else min(limit, len(data.test_labels))
    device = data.test_labels.device
    correct = torch.zeros((), device=device)
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and device.type == "cuda"):
            logits = model(data.normalise(data.test_images[start:stop]))
        correct += (logits.argmax(dim=-1) == data.test_labels[start:stop]).sum()
    return 100.0 * correct.item() / count


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on convolution and linear kernels only (not on norms, biases or aggregation weights)."""
    decay = [p for name, p in model.named_parameters() if p.dim() > 1 and "weight_logits" not in name]
    rest = [p for name, p in model.named_parameters() if not (p.dim() > 1 and "weight_logits" not in name)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def prepare_training(model: nn.Module, config: Config,
                     device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, torch.memory_format]:
    """``model`` on ``device`` (channels-last on CUDA), its SGD optimiser (Nesterov momentum, weight decay on
    kernels only, see ``parameter_groups``), and the memory format its input batches take."""
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(parameter_groups(model, config.weight_decay), lr=config.lr,
                                momentum=config.momentum, nesterov=config.momentum > 0)
    return model, optimizer, memory_format


def train_step(forward: nn.Module, optimizer: torch.optim.Optimizer, data: ImageData, index: torch.Tensor,
               config: Config, *, memory_format: torch.memory_format, lr: float, autocast: bool) -> torch.Tensor:
    """One SGD step at learning rate ``lr`` on the training images ``index`` (augmented on the device):
    minimise the label-smoothed cross-entropy, the forward pass in bfloat16 when ``autocast``.
    Returns the loss, detached."""
    images = data.augment(data.train_images[index]).contiguous(memory_format=memory_format)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = forward(images)
    loss = F.cross_entropy(logits.float(), data.train_labels[index], label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_network(model: nn.Module, data: ImageData, config: Config, seed: int, *,
                  checkpoint_path: str | Path | None = None, group: ProcessGroup | None = None,
                  desc: str = "train") -> TrainResult:
    """Train ``model`` for ``config.epochs`` epochs on ``data``; return it with its test accuracy.

    Every process draws the same shuffled order (seeded by ``seed`` and the epoch) and takes its
    slice of each global batch of ``config.batch_size`` images.
    """
    group = group or join_process_group(select_device(config.device))
    if config.batch_size % group.world_size:
        raise ConfigError(f"batch_size={config.batch_size} must be divisible by the {group.world_size} processes")
    device, on_cuda = group.device, group.device.type == "cuda"
    per_rank = config.batch_size // group.world_size
    steps_per_epoch = max(len(data.train_labels) // config.batch_size, 1)
    total_steps = steps_per_epoch * config.epochs
    model, optimizer, memory_format = prepare_training(model, config, device)
    forward = DistributedDataParallel(model, device_ids=[device] if on_cuda else None) \
        if group.world_size > 1 else model
    data = data.to(device)
    autocast = config.mixed_precision and on_cuda
    result, first_epoch = TrainResult(model), 0
    loop = ResumableLoop(checkpoint_path, {"model": model, "optimizer": optimizer}, rng=True)
    saved = loop.resume()
    if saved is not None:
        result.history, result.train_seconds, first_epoch = saved["history"], saved["train_seconds"], saved["epoch"]
    bar = progress(total=total_steps, desc=desc, unit="step", initial=first_epoch * steps_per_epoch,
                   disable=not group.is_main)
    for epoch in range(first_epoch, config.epochs):
        tick = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        order = order.to(device)
        running = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            start = step * config.batch_size + group.rank * per_rank
            index = order[start:start + per_rank]
            running += train_step(forward, optimizer, data, index, config, memory_format=memory_format,
                                  lr=cosine_lr(epoch * steps_per_epoch + step, total_steps, config.lr),
                                  autocast=autocast)
            bar.update()
        synchronize(device)
        result.train_seconds += time.perf_counter() - tick
        done = epoch + 1
        if done == config.epochs or (config.eval_every and done % config.eval_every == 0):
            result.history.append({"epoch": done, "seconds": round(result.train_seconds, 2),
                                   "loss": running.item() / steps_per_epoch,
                                   "accuracy": evaluate_accuracy(model, data, autocast=autocast)})
        # every process keeps its own checkpoint (torchrun gives each its own work folder)
        loop.save(history=result.history, train_seconds=result.train_seconds, epoch=done)
    bar.close()
    model.eval()
    return result
