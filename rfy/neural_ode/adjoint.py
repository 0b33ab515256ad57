"""The adjoint method, measured: memory that does not grow with the number of solver steps.

Backpropagating through a solver stores every intermediate state, so memory grows linearly
with the steps. The adjoint method instead solves, backwards in time, for ``a(t) = ∂L/∂h(t)``:

    da/dt = -a(t)ᵀ ∂f/∂h,        dL/dθ = -∫_{t1}^{t0} a(t)ᵀ ∂f/∂θ dt

re-computing ``h(t)`` on the way, so only the final state must be kept (Chen et al., 2018, eq. 4–5).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from rfy.neural_ode.odeblock import integrate


def saved_tensor_bytes(compute_loss: Callable[[], torch.Tensor],
                       exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd keeps for backward while ``compute_loss()`` runs.

    Uses ``torch.autograd.graph.saved_tensors_hooks`` to see every tensor saved for the backward
    pass; storages shared by several saved tensors count once, and storages of ``exclude`` (the
    parameters, which exist anyway) not at all. The hook keeps a detached view of each tensor: the
    tensor itself would point back to the graph node that saves it, a reference cycle through C++
    that Python's collector cannot see, so every graph measured would stay in memory for good.
    """
    excluded = {tensor.untyped_storage().data_ptr() for tensor in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        compute_loss()
    return sum(storages.values())


def memory_versus_steps(dynamics: nn.Module, h0: torch.Tensor, steps: Iterable[int],
                        solver: str = "rk4") -> list[dict[str, float]]:
    """Saved-tensor megabytes of direct backprop and of the adjoint for each fixed step count."""
    times = torch.tensor([0.0, 1.0], dtype=h0.dtype, device=h0.device)
    params = list(dynamics.parameters())
    rows = []
    for n in steps:
        row: dict[str, float] = {"steps": n}
        for name, adjoint in (("backprop_mb", False), ("adjoint_mb", True)):
            def loss() -> torch.Tensor:
                return integrate(dynamics, h0, times, solver=solver, steps=n, adjoint=adjoint)[-1].square().sum()
            row[name] = saved_tensor_bytes(loss, exclude=params) / 2**20
        rows.append(row)
    return rows


def gradient_differences(dynamics: nn.Module, h0: torch.Tensor, *, solver: str = "dopri5",
                         tol: float = 1e-8) -> dict[str, float]:
    """Adjoint against backprop gradients of ``Σ h(1)²`` over all parameters.

    Returns ``relative`` = ``‖g_adjoint − g_backprop‖ / ‖g_backprop‖``, ``max_abs`` =
    ``max |g_adjoint − g_backprop|`` and ``max_gradient`` = ``max |g_backprop|`` (the scale of ``max_abs``).
    """
    times = torch.tensor([0.0, 1.0], dtype=h0.dtype, device=h0.device)
    params = list(dynamics.parameters())
    gradients = []
    for adjoint in (False, True):
        h1 = integrate(dynamics, h0, times, solver=solver, tol=tol, adjoint=adjoint)[-1]
        gradients.append(torch.cat([g.flatten() for g in torch.autograd.grad(h1.square().sum(), params)]))
    backprop, adjoint_grad = gradients
    difference = adjoint_grad - backprop
    return {"relative": float(difference.norm() / backprop.norm()), "max_abs": float(difference.abs().max()),
            "max_gradient": float(backprop.abs().max())}


def gradient_relative_error(dynamics: nn.Module, h0: torch.Tensor, *, solver: str = "dopri5",
                            tol: float = 1e-8) -> float:
    """``‖g_adjoint − g_backprop‖ / ‖g_backprop‖`` (see ``gradient_differences``)."""
    return gradient_differences(dynamics, h0, solver=solver, tol=tol)["relative"]


def euler_path(dynamics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], h0: torch.Tensor,
               blocks: int, t1: float = 1.0) -> torch.Tensor:
    """Hidden states of a ResNet of ``blocks`` residual blocks sharing ``f``: ``h += (t1/blocks)·f(t, h)``.

    Returns [blocks + 1, ...] states; as ``blocks`` grows they trace the ODE solution.
    """
    step = t1 / blocks
    states = [h0]
    for k in range(blocks):
        t = torch.tensor(k * step, dtype=h0.dtype)
        states.append(states[-1] + step * dynamics(t, states[-1]))
    return torch.stack(states)
