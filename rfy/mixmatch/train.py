"""The MixMatch training loop: one step at a time on the device, the EMA model evaluated every so often.

One ``Trainer`` serves the supervised baseline, MixMatch and its ablations, the benchmark, and
multi-GPU runs under ``torchrun`` (the interleaved forward is a single DistributedDataParallel
call, so gradients are averaged once per step). Nothing in a step reads a value back to the host:
the loss is accumulated on the device and read at evaluation time.
"""
from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from rfy.checkpoint import ResumableLoop
from rfy.data import to_unit_interval
from rfy.distributed import ProcessGroup, join_process_group
from rfy.errors import ConfigError
from rfy.mixmatch.algorithm import interleave_order, linear_rampup, mixmatch_batch, mixmatch_loss
from rfy.mixmatch.config import METHODS, NO_MIXUP, NO_SHARPENING, SUPERVISED, Config
from rfy.mixmatch.data import SemiSupervisedData
from rfy.mixmatch.models import make_classifier
from rfy.progress import progress
from rfy.runtime import seed_everything, select_device, synchronize


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated and slower than fp32, so mixed precision falls back to fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(getattr(torch.cpu, check, lambda: False)()
                   for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside this block use batch statistics but leave the running averages as they are.

    A momentum of 0 makes batch norm's update ``running ← (1 − m)·running + m·batch`` a no-op.
    """
    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


class InterleavedForward(nn.Module):
    """Classify a list of equal-sized chunks; only the first chunk updates the batch-norm running statistics."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        logits = [self.classifier(chunks[0])]
        with frozen_running_stats(self.classifier):
            logits += [self.classifier(chunk) for chunk in chunks[1:]]
        return torch.cat(logits)


class WeightAverage:
    """An exponential moving average of a model's parameters: θ̄ ← δ·θ̄ + (1 − δ)·θ after every step.

    As in the official code, only the trainable parameters are averaged; the buffers (batch-norm
    running statistics) are copied from the online model, so the averaged weights are evaluated
    with the online model's statistics. (Averaging the statistics too gives statistics that fit
    none of the weights they are used with.)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._parameters = (list(self.model.parameters()), list(model.parameters()))
        self._buffers = (list(self.model.buffers()), list(model.buffers()))

    @torch.no_grad()
    def update(self, decay: float) -> None:
        averages, values = self._parameters
        torch._foreach_lerp_(averages, values, 1.0 - decay)
        torch._foreach_copy_(*self._buffers)


@dataclass
class TrainResult:
    """The EMA model after training and its test error over time."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    steps: int = 0  # every step of the run, resumed sessions included, like train_seconds

    @property
    def final_error(self) -> float:
        return self.history[-1]["error"]

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds else float("nan")


class Trainer:
    """Model, EMA copy, optimiser and data of one run; ``step`` does one update of ``method``.

    ``group`` defaults to this process alone, or to torchrun's group when launched by torchrun.
    """

    def __init__(self, data: SemiSupervisedData, config: Config, method: str, seed: int,
                 group: ProcessGroup | None = None) -> None:
        group = group or join_process_group(select_device(config.device))
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
        if config.batch_size % group.world_size:
            raise ConfigError(f"batch_size={config.batch_size} must be divisible by the {group.world_size} "
                              "processes of the run")
        self.config, self.method, self.group, device = config, method, group, group.device
        self.batch_size = config.batch_size // group.world_size
        seed_everything(seed)
        self.classifier = make_classifier(config.model, data.labelled_images.shape[1], data.num_classes).to(device)
        self.autocast_enabled = config.mixed_precision and bf16_is_fast(device)
        # channels-last wherever it was measured faster: GPUs, bf16, and WRN-28-2's fp32 convolutions on the CPU
        # (3.1 against 3.6 CPU-s per step, one thread); the reduced preset's small CNN keeps its contiguous layout
        channels_last = device.type == "cuda" or self.autocast_enabled or config.model == "wrn-28-2"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.classifier.to(memory_format=self.memory_format)
        forward = InterleavedForward(self.classifier)
        self.forward = DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None) \
            if group.world_size > 1 else forward
        if group.rank:
            seed_everything(seed + 100_003 * group.rank)
        self.average = WeightAverage(self.classifier)
        # fused: one kernel per step on a GPU, where launches, not arithmetic, bound a step of WRN-28-2 at batch 64
        self.optimizer = torch.optim.Adam(self.classifier.parameters(), lr=config.lr, fused=device.type == "cuda")
        self.kernels = [p for p in self.classifier.parameters() if p.dim() > 1]
        self.data = data.to(device)
        self.order = interleave_order(self.batch_size, config.augmentations + 1, device)

    @property
    def precision(self) -> str:
        """What the forward passes compute in: ``"bf16 autocast"`` or ``"fp32"``."""
        return "bf16 autocast" if self.autocast_enabled else "fp32"

    @property
    def memory_format_name(self) -> str:
        """The layout of the images and convolution weights: ``"channels_last"`` or ``"contiguous"``."""
        return "channels_last" if self.memory_format == torch.channels_last else "contiguous"

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.group.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled)

    def loss(self, step: int) -> torch.Tensor:
        """The training loss of ``method`` on freshly drawn batches."""
        index = torch.randint(len(self.data.labels), (self.batch_size,), device=self.group.device)
        labelled = self.data.augment(self.data.labelled_images[index]).contiguous(memory_format=self.memory_format)
        onehot = F.one_hot(self.data.labels[index], self.data.num_classes).float()
        if self.method == SUPERVISED:
            with self.autocast():
                logits = self.forward([labelled]).float()
            return -(onehot * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
        return self.mixmatch_loss(step, labelled, onehot)

    def mixmatch_loss(self, step: int, labelled: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Guess, sharpen and mix (no running-statistics update), then one interleaved forward and L_X + λ_u·L_U."""
        config = self.config
        index = torch.randint(len(self.data.unlabelled_images), (self.batch_size,), device=self.group.device)
        unlabelled = self.data.unlabelled_images[index]
        views = torch.stack([self.data.augment(unlabelled) for _ in range(config.augmentations)])
        temperature = 1.0 if self.method == NO_SHARPENING else config.temperature
        with frozen_running_stats(self.classifier), self.autocast():
            batch = mixmatch_batch(self.classifier, labelled, onehot, views, temperature=temperature,
                                   alpha=config.mixup_alpha, use_mixup=self.method != NO_MIXUP)
        chunks = batch.inputs[self.order].contiguous(memory_format=self.memory_format).split(self.batch_size)
        with self.autocast():
            logits = self.forward(list(chunks))[self.order]
        weight = config.lambda_u * linear_rampup(step, config.rampup_steps)
        return mixmatch_loss(logits, batch, weight)[0]

    def step(self, step: int) -> torch.Tensor:
        """One update: Adam on the loss, decoupled weight decay w ← (1 − wd·lr)·w on kernels, EMA update."""
        self.classifier.train()
        loss = self.loss(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_mul_(self.kernels, 1.0 - self.config.weight_decay * self.config.lr)
        self.average.update(self.config.ema_decay)
        return loss.detach()

    @torch.no_grad()
    def test_error(self, batch_size: int = 1000) -> float:
        """Test error (%) of the EMA model."""
        model, wrong = self.average.model, torch.zeros((), device=self.group.device)
        for start in range(0, len(self.data.test_labels), batch_size):
            images = to_unit_interval(self.data.test_images[start:start + batch_size])
            with self.autocast():
                logits = model(images.contiguous(memory_format=self.memory_format))
            wrong += (logits.argmax(dim=-1) != self.data.test_labels[start:start + batch_size]).sum()
        return 100.0 * wrong.item() / len(self.data.test_labels)


def train(data: SemiSupervisedData, config: Config, method: str, seed: int, *,
          checkpoint_path: str | Path | None = None) -> TrainResult:
    """Train ``method`` for ``config.steps`` steps; evaluate the EMA model every ``config.eval_every`` steps.

    With ``checkpoint_path`` the run saves itself at every evaluation and resumes from there.
    """
    trainer = Trainer(data, config, method, seed)
    group = trainer.group
    result = TrainResult(trainer.average.model)
    loop = ResumableLoop(checkpoint_path, {"classifier": trainer.classifier, "average": trainer.average.model,
                                           "optimizer": trainer.optimizer}, rng=True)
    saved = loop.resume() or {"history": [], "train_seconds": 0.0, "step": 0}
    result.history, result.train_seconds, start = saved["history"], saved["train_seconds"], saved["step"]
    running_loss = torch.zeros((), device=group.device)
    bar = progress(total=config.steps, desc=method, unit="step", initial=start, disable=not group.is_main)
    tick = time.perf_counter()
    for step in range(start, config.steps):
        running_loss += trainer.step(step)
        bar.update()
        done = step + 1
        if done % config.eval_every == 0 or done == config.steps:
            steps_since = done - (result.history[-1]["step"] if result.history else start)
            loss = running_loss.item() / max(steps_since, 1)
            synchronize(group.device)
            result.train_seconds += time.perf_counter() - tick
            result.history.append({"step": done, "seconds": round(result.train_seconds, 2),
                                   "error": trainer.test_error(), "loss": loss})
            running_loss.zero_()
            loop.save(history=result.history, train_seconds=result.train_seconds, step=done)
            tick = time.perf_counter()
    bar.close()
    result.steps = config.steps
    return result
