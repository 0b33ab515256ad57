"""Multi-process training launched by ``torchrun``: which process this is, and setting up the group.

``torchrun --nproc_per_node N -m rfy run <chapter> …`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. Without those variables every
function here describes a single process, so the same code runs with and without torchrun.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rfy.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: its rank, how many processes there are, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, evaluates for the record and writes files."""
        return self.rank == 0


def _environment_int(name: str, default: int, minimum: int) -> int:
    """The integer in environment variable ``name`` (set by torchrun); ``ConfigError`` if it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"environment variable {name} must be an integer >= {minimum} (torchrun sets it), "
                          f"got {raw!r}; unset it for a single process")
    return value


def process_rank() -> int:
    """``RANK`` set by torchrun, 0 in a plain process."""
    return _environment_int("RANK", 0, 0)


def world_size() -> int:
    """``WORLD_SIZE`` set by torchrun, 1 in a plain process."""
    return _environment_int("WORLD_SIZE", 1, 1)


def join_process_group(device: torch.device) -> ProcessGroup:
    """Join torchrun's group (NCCL on CUDA with one GPU per local rank, gloo on the CPU); single process otherwise."""
    if world_size() == 1:
        return ProcessGroup(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), device)
