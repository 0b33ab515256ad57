"""Continuous normalizing flows: a density moved by an ODE, with an exact log-density.

If ``z(t)`` follows ``dz/dt = f(z(t), t)``, its log-density obeys the instantaneous change of
variables (Chen et al., 2018, Theorem 1):

    d log p(z(t)) / dt = -tr(∂f/∂z(t)).

So ``log p(x) = log p₀(z(t₀)) − ∫_{t₀}^{t₁} tr(∂f/∂z) dt`` where ``z(t₁) = x`` is integrated
backwards to ``z(t₀)``. The trace needs no determinant; in 2-D we compute it exactly with one
autograd call per dimension.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rfy.neural_ode.odeblock import CountingDynamics, integrate


class MLPDynamics(nn.Module):
    """``f(z, t)``: a tanh MLP on the concatenation ``[z, t]`` (smooth, so solvers stay cheap)."""

    def __init__(self, dim: int = 2, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [dim + 1] + [width] * (depth - 1)
        for size_in, size_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(size_in, size_out), nn.Tanh()]
        layers.append(nn.Linear(sizes[-1], dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, t.expand(z.shape[0], 1)], dim=1))


def exact_divergence(f_z: torch.Tensor, z: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """``tr(∂f/∂z) = Σ_i ∂f_i/∂z_i`` for each row, with one backward pass per dimension."""
    diagonal = [torch.autograd.grad(f_z[:, i].sum(), z, create_graph=create_graph, retain_graph=True)[0][:, i]
                for i in range(z.shape[1])]
    return torch.stack(diagonal, dim=1).sum(dim=1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over dimensions."""
    return -0.5 * (z.square().sum(dim=1) + z.shape[1] * math.log(2 * math.pi))


class CNF(nn.Module):
    """A flow from ``N(0, I)`` at ``t = 0`` to the data at ``t = t1`` driven by ``dynamics(t, z)``."""

    def __init__(self, dynamics: nn.Module, *, solver: str = "dopri5", tol: float = 1e-5,
                 steps: int = 8, t1: float = 1.0) -> None:
        super().__init__()
        self.func = CountingDynamics(dynamics)
        self.solver, self.tol, self.steps, self.t1 = solver, tol, steps, t1

    def _augmented(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``d[z, a]/dt = [f(z, t), −tr(∂f/∂z)]``: the state and its log-density change together."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            z = state[:, :-1]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            f_z = self.func(t, z)
            divergence = exact_divergence(f_z, z, create_graph=create_graph)
        if not create_graph:
            f_z, divergence = f_z.detach(), divergence.detach()
        return torch.cat([f_z, -divergence[:, None]], dim=1)

    def _solve(self, func, state: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return integrate(func, state, times, solver=self.solver, tol=self.tol, steps=self.steps)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = log p₀(z(0)) − ∫_0^{t1} tr(∂f/∂z) dt``, integrating ``[x, 0]`` from ``t1`` to 0."""
        times = torch.tensor([self.t1, 0.0], dtype=x.dtype, device=x.device)
        start = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
        end = self._solve(self._augmented, start, times)[-1]
        z0, trace_integral = end[:, :-1], end[:, -1]
        return standard_normal_log_prob(z0) - trace_integral

    @torch.no_grad()
    def transport(self, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Positions [len(times), N, dim] of base samples ``z0`` carried forward by the flow."""
        return self._solve(self.func, z0, times.to(z0))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples: base draws pushed from ``t = 0`` to ``t1``."""
        param = next(self.parameters())
        z0 = torch.randn(n, 2, generator=generator).to(param)
        return self.transport(z0, torch.tensor([0.0, self.t1]))[-1]
