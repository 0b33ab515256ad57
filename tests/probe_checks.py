"""What the full-size tests check beyond ``full_size.take_real_steps``: that a probe's step really moves the
parameters (whatever the optimiser), and what its evaluation returns."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from rfy.cost import CostPart, Probe


@contextlib.contextmanager
def optimiser_steps() -> Iterator[list[float]]:
    """Within the block, every ``optimizer.step()`` appends the largest absolute change it made to a parameter."""
    changes: list[float] = []
    before: dict[int, list] = {}

    def parameters(optimizer) -> list:
        return [parameter.detach() for group in optimizer.param_groups for parameter in group["params"]]

    def snapshot(optimizer, args, kwargs) -> None:
        before[id(optimizer)] = [parameter.clone() for parameter in parameters(optimizer)]

    def compare(optimizer, args, kwargs) -> None:
        pairs = zip(parameters(optimizer), before.pop(id(optimizer)))
        changes.append(max(float((after - earlier).abs().max()) for after, earlier in pairs))

    handles = [register_optimizer_step_pre_hook(snapshot), register_optimizer_step_post_hook(compare)]
    try:
        yield changes
    finally:
        for handle in handles:
            handle.remove()


def keeping_evaluations(parts: list[CostPart]) -> tuple[list[CostPart], list[Any]]:
    """The same parts, whose probes also append what every ``evaluate()`` returns to the returned list."""
    outputs: list[Any] = []

    def recording(part: CostPart) -> CostPart:
        def build(device):
            probe = part.build(device)
            return Probe(step=probe.step, evaluate=lambda: outputs.append(probe.evaluate()) or outputs[-1])
        return dataclasses.replace(part, build=build)

    return [recording(part) for part in parts], outputs
