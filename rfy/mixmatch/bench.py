"""Training speed of the paper's setting (WRN-28-2, batch 64, K = 2) on whatever device is present."""
from __future__ import annotations

import contextlib
import time

import torch

from rfy.distributed import ProcessGroup
from rfy.mixmatch.config import MIXMATCH, NUM_CLASSES, Config
from rfy.mixmatch.data import SemiSupervisedData
from rfy.mixmatch.experiments import CPU_THREADS
from rfy.mixmatch.train import Trainer
from rfy.runtime import select_device, synchronize, torch_threads


def random_cifar_like(num_labelled: int = 250, num_unlabelled: int = 5000, seed: int = 0) -> SemiSupervisedData:
    """Random uint8 32×32 colour images with CIFAR-10's shapes and dtypes: speed does not depend on the pixels."""
    generator = torch.Generator().manual_seed(seed)
    images = lambda count: torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = lambda count: torch.randint(0, NUM_CLASSES, (count,), generator=generator)
    return SemiSupervisedData(images(num_labelled), labels(num_labelled), images(num_unlabelled), images(1000),
                              labels(1000), NUM_CLASSES, flip=True, crop_padding=4)


def benchmark_trainer(*, device: str = "auto", steps: int = 55, batch_size: int = 64, model: str = "wrn-28-2",
                      mixed_precision: bool = True) -> Trainer:
    """The full preset's MixMatch trainer on random CIFAR-like data, alone on ``device`` (no process group)."""
    config = Config.full(device=device, batch_size=batch_size, model=model, mixed_precision=mixed_precision,
                         steps=steps)
    torch_device = select_device(device)
    return Trainer(random_cifar_like(), config, MIXMATCH, seed=0, group=ProcessGroup(0, 1, torch_device))


def benchmark(*, device: str = "auto", steps: int = 50, warmup: int = 5, batch_size: int = 64,
              model: str = "wrn-28-2", mixed_precision: bool = True) -> dict[str, float | str | int]:
    """Time ``steps`` MixMatch training steps after ``warmup`` untimed ones.

    On the CPU the steps run with the chapter's own thread count (``CPU_THREADS``, the count its runs and
    ``estimate`` use), which the result names. Returns the precision and memory format used, steps/s
    and images/s, where ``images_per_s`` counts every image forwarded: a step forwards K·B unlabelled
    views to guess labels and then the (K + 1)·B mixed images to train, (2K + 1)·B in all.
    ``mixed_precision`` asks for bf16 autocast, which is used only where the device multiplies bf16 in
    hardware (``bf16_is_fast``).
    """
    on_cpu = select_device(device).type == "cpu"
    with torch_threads(CPU_THREADS) if on_cpu else contextlib.nullcontext():
        trainer = benchmark_trainer(device=device, steps=steps + warmup, batch_size=batch_size, model=model,
                                    mixed_precision=mixed_precision)
        config, torch_device = trainer.config, trainer.group.device
        for step in range(warmup):
            trainer.step(config.rampup_steps + step)
        synchronize(torch_device)
        start = time.perf_counter()
        for step in range(steps):
            trainer.step(config.rampup_steps + step)
        synchronize(torch_device)
        seconds = time.perf_counter() - start
        name = _device_name(torch_device)
    images_per_step = batch_size * (2 * config.augmentations + 1)
    return {"device": name, "threads": CPU_THREADS if on_cpu else "n/a", "model": model,
            "batch_size": batch_size, "precision": trainer.precision, "memory_format": trainer.memory_format_name,
            "steps_per_s": steps / seconds, "images_per_s": steps * images_per_step / seconds}


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({torch.get_num_threads()} threads)"
