"""What the full-size tests check beyond ``full_size.take_real_steps``: that a probe's step really moves the
parameters (whatever the optimiser), what its evaluation returns, and how many optimisation steps a real run takes."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
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


def trained_modules(probe: Probe) -> list[nn.Module]:
    """The modules a probe's step closes over: its model, or a stable-baselines3 agent's policy."""
    modules = []
    for value in inspect.getclosurevars(inspect.unwrap(probe.step)).nonlocals.values():
        if isinstance(value, nn.Module):
            modules.append(value)
        elif isinstance(getattr(value, "policy", None), nn.Module):
            modules.append(value.policy)
    return modules


def checked(part: CostPart, check_evaluation: Callable[[str, Any], None]) -> CostPart:
    """``part`` whose step must change some parameter of its model and leave all of them finite, and whose
    evaluation result must pass ``check_evaluation(part.name, result)``."""

    def build(device: torch.device) -> Probe:
        probe = part.build(device)
        modules = trained_modules(probe)
        assert modules, f"{part.name}: the probe's step trains no module"

        def step() -> Any:
            before = [p.detach().clone() for module in modules for p in module.parameters()]
            result = probe.step()
            after = [p.detach() for module in modules for p in module.parameters()]
            assert any(not torch.equal(old, new) for old, new in zip(before, after)), \
                f"{part.name}: the step changed no parameter"
            assert all(bool(torch.isfinite(p).all()) for p in after), f"{part.name}: a parameter is not finite"
            return result

        def evaluate() -> Any:
            result = probe.evaluate()
            check_evaluation(part.name, result)
            return result

        return Probe(step, evaluate)

    return dataclasses.replace(part, build=build)


@contextlib.contextmanager
def optimizer_step_counts() -> Iterator[list[list[Any]]]:
    """Count every ``optimizer.step()`` taken inside the block: ``[[optimizer, steps], …]`` in the order the
    optimisers first stepped."""
    counts: list[list[Any]] = []

    def count(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        for entry in counts:
            if entry[0] is optimizer:
                entry[1] += 1
                return
        counts.append([optimizer, 1])

    handle = register_optimizer_step_post_hook(count)
    try:
        yield counts
    finally:
        handle.remove()
