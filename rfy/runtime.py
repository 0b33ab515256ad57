"""Seeding, device choice, data that moves between devices, and a description of the hardware a run used."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import random
from collections.abc import Iterator
from typing import TypeVar

import re

import numpy as np
import torch

from rfy.errors import ConfigError

D = TypeVar("D", bound="DeviceData")

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda(:[0-9]+)?)")
DEVICE_RULE = "auto, cpu, cuda, cuda:N (N = 0, 1, …) or mps"
#: Seeds are non-negative and below 2**31, so chapters can derive further seeds (``seed + 10_000``)
#: that every library accepts (scikit-learn and NumPy take at most 2**32 - 1).
MAX_SEED = 2**31 - 1


def check_seed(seed: object) -> int:
    """``seed`` if it is an integer in ``[0, MAX_SEED]``; ``ConfigError`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be an integer from 0 to {MAX_SEED} (2**31 - 1), got {seed!r}")
    return seed


def check_device_name(device: object) -> str:
    """``device`` if it is spelled like one of ``DEVICE_RULE`` (whether it exists is checked later)."""
    if not isinstance(device, (str, torch.device)) or not DEVICE_PATTERN.fullmatch(str(device)):
        raise ConfigError(f"device must be one of {DEVICE_RULE}, got {device!r}")
    return str(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and every CUDA device) from one integer.

    Returns a fresh ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` CPU threads in torch, then restore the previous number.

    A float sum splits differently over 1 and 2 threads, so the last bits of results depend on
    the thread count; in a chaotic process such as RL those bits grow into different runs. Pinning
    the count makes a seed give the same run on a laptop, on CI and on Colab.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA when present (then Apple's MPS), else the CPU.

    An explicit choice that is not available fails with a ``ConfigError`` (a ``ValueError``) that
    says what to use instead, rather than later inside torch.
    """
    name = check_device_name(device)
    kind = name.split(":")[0]
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was requested but torch sees no CUDA GPU; use device 'auto' or 'cpu'")
    if kind == "cuda" and ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r} was requested but torch sees {torch.cuda.device_count()} CUDA GPU(s); "
                          f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}, 'auto' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} was requested but this machine has no MPS backend; use 'auto' or 'cpu'")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work on ``device`` (nothing to wait for on the CPU), so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: torch's global settings that change what a run computes, as a fresh Python process has them.
DEFAULT_NUMERICS = {"default_dtype": "float32", "deterministic_algorithms": False,
                    "float32_matmul_precision": "highest"}


def numeric_settings() -> dict[str, str | bool]:
    """torch's global settings that change a run's numbers, as they are now: the default dtype (float64
    makes every new tensor and model double precision), whether only deterministic algorithms may run,
    and the float32 matrix-product precision (TF32 on GPUs). Part of a run's fingerprint: a resume under
    other settings is refused, and a record made under them is not the preset's (``DEFAULT_NUMERICS``)."""
    return {"default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def numeric_differences() -> dict[str, tuple[str | bool, str | bool]]:
    """``{setting: (default, now)}`` for each of ``numeric_settings`` that differs from ``DEFAULT_NUMERICS``."""
    return {name: (DEFAULT_NUMERICS[name], value) for name, value in numeric_settings().items()
            if value != DEFAULT_NUMERICS.get(name)}


def hardware_info(device: torch.device | None = None) -> dict[str, str | int]:
    """What ran the computation: CPU model and core count, GPU name and memory when CUDA is used."""
    info: dict[str, str | int] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
    }
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            info["gpu"] = props.name
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return info


class DeviceData:
    """Base of the chapters' data classes: a dataclass of tensors and plain values that moves as a whole.

    ``data.to(device)`` is a copy with every tensor field on ``device``; the other fields are shared.
    """

    def to(self: D, device: torch.device | str) -> D:
        """A copy of this dataclass with each tensor field ``t`` replaced by ``t.to(device)``."""
        moved = {f.name: value.to(device) for f in dataclasses.fields(self)
                 if isinstance(value := getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)
