"""Settings of the MixMatch chapter: the reduced preset (field defaults) and the paper's ``full`` one."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rfy.config import RunConfig, check_choice, check_fraction, check_positive
from rfy.errors import ConfigError

DATASETS = ("digits", "cifar-10", "svhn")
MODELS = ("small-cnn", "wrn-28-2")
SUPERVISED, MIXMATCH, NO_SHARPENING, NO_MIXUP = "supervised", "mixmatch", "mixmatch-no-sharpening", "mixmatch-no-mixup"
METHODS = (SUPERVISED, MIXMATCH, NO_SHARPENING, NO_MIXUP)
STEPS_PER_EPOCH = 1024
NUM_CLASSES = 10  # digits, CIFAR-10 and SVHN alike


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """Every knob of the chapter. Defaults: sklearn digits, 5 labels per class, a small CNN, CPU, about a minute.

    Both modes report the paper's statistic, the median test error of the last 20 evaluations. Full
    mode evaluates every epoch of 1024 steps (the last 20 of 1024 epochs); reduced mode evaluates every
    10 steps, so its last 20 evaluations (steps 310-500) all come after the λ_u ramp of 200 steps.
    Reduced mode runs the supervised baseline, MixMatch and MixMatch with T = 1 (``methods``); the
    no-MixUp ablation is available as ``NO_MIXUP`` and left out of the default for time.

    ``full()`` is the paper's CIFAR-10 protocol (Berthelot et al. 2019, section 4 and the official code):
    WRN-28-2, batch 64, K = 2, T = 0.5, α = 0.75, λ_u = 75 ramped over 16 epochs of 1024 steps, Adam
    0.002, decoupled weight decay 0.02·lr, EMA 0.999, 2²⁰ steps, 250 labels (25 per class); the
    test error of the EMA model is measured every epoch. ``--set steps=…`` shortens the schedule and
    ``--set labels_per_class=400`` gives the 4000-label setting. ``target_errors`` are the test errors
    (%) whose time-to-accuracy the run record keeps.

    ``mixed_precision`` runs the forward passes in bfloat16 autocast wherever the device multiplies
    bf16 in hardware (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX); elsewhere it is ignored and
    the run stays in fp32. Losses, the optimiser and the EMA weights stay fp32 either way. It is on in
    full mode and off in reduced mode. Images and convolution weights are channels-last under bf16, on
    a GPU, and for WRN-28-2 in fp32 on the CPU too (faster there); the small CNN keeps them contiguous.
    """

    full_preset: ClassVar[dict[str, Any]] = {
        "dataset": "cifar-10", "labels_per_class": 25, "model": "wrn-28-2", "batch_size": 64,
        "steps": 1024 * STEPS_PER_EPOCH,
        "rampup_steps": 16 * STEPS_PER_EPOCH, "lambda_u": 75.0, "ema_decay": 0.999, "weight_decay": 0.02,
        "eval_every": STEPS_PER_EPOCH, "target_errors": (20.0, 15.0, 12.0), "methods": (MIXMATCH,), "repeats": 1,
        "mixed_precision": True,
    }

    dataset: str = "digits"
    labels_per_class: int = 5
    model: str = "small-cnn"
    steps: int = 500
    batch_size: int = 32
    augmentations: int = 2
    temperature: float = 0.5
    mixup_alpha: float = 0.75
    lambda_u: float = 30.0
    rampup_steps: int = 200
    lr: float = 0.002
    weight_decay: float = 0.02
    ema_decay: float = 0.99
    eval_every: int = 10
    methods: tuple[str, ...] = (SUPERVISED, MIXMATCH, NO_SHARPENING)  # NO_MIXUP on request (time budget)
    repeats: int = 3
    mixed_precision: bool = False
    target_errors: tuple[float, ...] = (20.0, 10.0)

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("model", self.model, MODELS)
        for field in ("labels_per_class", "steps", "batch_size", "augmentations", "eval_every", "repeats"):
            check_positive(field, getattr(self, field), integer=True)
        check_positive("rampup_steps", self.rampup_steps, integer=True, allow_zero=True)
        for field in ("temperature", "mixup_alpha", "lr"):
            check_positive(field, getattr(self, field))
        for field in ("lambda_u", "weight_decay"):
            check_positive(field, getattr(self, field), allow_zero=True)
        check_fraction("ema_decay", self.ema_decay)
        if not self.methods or any(method not in METHODS for method in self.methods):
            raise ConfigError(f"methods must be a non-empty tuple drawn from {METHODS}, got {self.methods!r}")
        if any(not isinstance(error, (int, float)) or not 0 < error < 100 for error in self.target_errors):
            raise ConfigError(f"target_errors must be percentages between 0 and 100, got {self.target_errors!r}")
        if not isinstance(self.mixed_precision, bool):
            raise ConfigError(f"mixed_precision must be True or False, got {self.mixed_precision!r}")
