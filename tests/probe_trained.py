"""Checks the full-size tests add to ``take_real_steps``: each step trains its model, each evaluation
returns what the chapter evaluates; and a count of the optimisation steps a real run takes."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from rfy.cost import CostPart, Probe


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
def optimizer_steps() -> Iterator[list[list[Any]]]:
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
