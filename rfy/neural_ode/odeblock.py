"""The ODE block: a residual stack taken to the limit of infinitely many, infinitely thin layers.

A residual block computes ``h_{n+1} = h_n + f(h_n, θ)``, one Euler step of size 1 of

    dh/dt = f(h(t), t, θ),

so instead of stacking blocks we hand ``h(0)`` to an ODE solver and read off ``h(1)``
(Chen et al., 2018, eq. 1–2). The solver decides how many evaluations of ``f`` it needs
(the *number of function evaluations*, NFE), which plays the role of depth.
"""
from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

ADAPTIVE_SOLVERS = ("dopri5", "bosh3", "adaptive_heun", "dopri8")
FIXED_STEP_SOLVERS = ("rk4", "midpoint", "euler")
SOLVERS = ADAPTIVE_SOLVERS + FIXED_STEP_SOLVERS


class CountingDynamics(nn.Module):
    """Wraps ``f(t, h)`` and counts how often the solver calls it (forward and adjoint passes)."""

    def __init__(self, dynamics: nn.Module) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.nfe = 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.dynamics(t, h)


def check_solver(solver: str, tol: float, steps: int) -> None:
    """Fail early, naming the argument, instead of inside torchdiffeq."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def integrate(func: nn.Module, h0: torch.Tensor, times: torch.Tensor, *, solver: str = "dopri5",
              tol: float = 1e-3, steps: int = 10, adjoint: bool = False) -> torch.Tensor:
    """Solve ``dh/dt = func(t, h)`` from ``h0`` and return ``h`` at every entry of ``times``.

    Adaptive solvers keep the local error below ``rtol = atol = tol``; fixed-step solvers take
    ``steps`` equal steps over ``[times[0], times[-1]]``. With ``adjoint=True`` gradients come from
    solving the adjoint ODE backwards in time (constant memory in the number of steps).
    """
    check_solver(solver, tol, steps)
    options = None
    if solver in FIXED_STEP_SOLVERS:
        options = {"step_size": abs(float(times[-1] - times[0])) / steps}
    solve = odeint_adjoint if adjoint else odeint
    return solve(func, h0, times, rtol=tol, atol=tol, method=solver, options=options)


class ODEBlock(nn.Module):
    """``h(t1) = h(0) + ∫_0^{t1} f(h(t), t, θ) dt`` with a configurable solver and an NFE counter."""

    def __init__(self, dynamics: nn.Module, *, solver: str = "dopri5", tol: float = 1e-3,
                 steps: int = 10, adjoint: bool = False, t1: float = 1.0) -> None:
        super().__init__()
        check_solver(solver, tol, steps)
        self.func = CountingDynamics(dynamics)
        self.solver, self.tol, self.steps, self.adjoint, self.t1 = solver, tol, steps, adjoint, t1

    def set_solver(self, solver: str, *, tol: float | None = None, steps: int | None = None) -> None:
        """Switch the solver of a trained block (the learned dynamics do not depend on it)."""
        tol = self.tol if tol is None else tol
        steps = self.steps if steps is None else steps
        check_solver(solver, tol, steps)
        self.solver, self.tol, self.steps = solver, tol, steps

    @property
    def nfe(self) -> int:
        """Evaluations of ``f`` since the last ``reset_nfe``."""
        return self.func.nfe

    def reset_nfe(self) -> None:
        self.func.nfe = 0

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        times = torch.tensor([0.0, self.t1], dtype=h0.dtype, device=h0.device)
        return integrate(self.func, h0, times, solver=self.solver, tol=self.tol, steps=self.steps,
                         adjoint=self.adjoint)[-1]
