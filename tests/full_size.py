"""Shared check of the full-size tests: every part of a preset takes real steps at its true size."""
from __future__ import annotations

import math

import torch

from rfy.cost import CostPart


def take_real_steps(parts: list[CostPart], steps: int = 1) -> None:
    """Build every part on the CPU, take ``steps`` optimisation steps and one evaluation batch each;
    fail if a part counts no steps or a step leaves a parameter non-finite."""
    assert parts, "the preset names no trainings"
    for part in parts:
        assert part.steps >= 1 and math.isfinite(part.steps), f"{part.name}: the preset must count its steps"
        probe = part.build(torch.device("cpu"))
        for _ in range(steps):
            probe.step()
        probe.evaluate()
