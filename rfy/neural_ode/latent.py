"""Latent ODEs for irregularly sampled time series, with an RNN baseline.

Generative model (Chen et al., 2018, §5): ``z(t₀) ~ N(0, I)``, ``z(t) = ODESolve(f, z(t₀), t)``,
``x(t) ~ N(decoder(z(t)), σ²)``. Inference: an RNN reads the observations ``(x_i, Δt_i)``
backwards in time and outputs ``q(z(t₀) | x) = N(μ, diag exp(logvar))``; training maximises

    ELBO = E_q[Σ_i log N(x_i; decoder(z(t_i)), σ²)] − KL(q(z(t₀) | x) ‖ N(0, I)).

Because ``z(t)`` is defined at every ``t``, the model predicts at times it never observed and
beyond the observation window. Data are 2-D spirals observed at random subsets of a time grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rfy.neural_ode.odeblock import integrate
from rfy.runtime import DeviceData


@dataclass(frozen=True)
class Spirals(DeviceData):
    """Spiral trajectories on a shared time grid, with a random subset observed in a window.

    ``clean``/``noisy`` [N, T, 2]; ``times`` [T]; ``observed`` [N, m] sorted grid indices, all
    ``< window``. Points after ``window`` are for extrapolation, unobserved ones before it for
    interpolation.
    """

    times: torch.Tensor
    clean: torch.Tensor
    noisy: torch.Tensor
    observed: torch.Tensor
    window: int

    def observations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Observed noisy values [N, m, 2] and their times [N, m]."""
        values = torch.gather(self.noisy, 1, self.observed[..., None].expand(-1, -1, 2))
        return values, self.times[self.observed]

    def subset(self, index: slice | torch.Tensor) -> Spirals:
        return Spirals(self.times, self.clean[index], self.noisy[index], self.observed[index], self.window)


def make_spirals(n: int, *, n_times: int = 75, window: int = 50, n_observed: int = 30,
                 turns: float = 1.0, noise: float = 0.05, seed: int = 0, exact_half: bool = False) -> Spirals:
    """``n`` Archimedean spirals ``r = 0.15·θ`` (half clockwise) making ``turns`` turns over the grid.

    Each starts at a random angle ``θ₀ ~ U(1.5π, 3.5π)`` and follows ``θ(t) = θ₀ + 2π·turns·t / t_end``
    on the grid ``t = 0, 0.1, …, (n_times − 1)/10``; the point is ``(r cos θ, ±r sin θ) / 2`` (the
    minus sign turns it clockwise) plus Gaussian noise of standard deviation ``noise`` per coordinate.
    All spirals follow one law, so a model can learn the dynamics from many short pieces; each is
    observed at ``n_observed`` grid points drawn without replacement among the first ``window``
    (irregular sampling). Each spiral turns clockwise with probability 1/2, or, with ``exact_half``,
    exactly ``n // 2`` of them do (the paper's "half are clockwise"), in random positions.
    """
    if not 0 < n_observed <= window <= n_times:
        raise ValueError(f"need 0 < n_observed <= window <= n_times, got {n_observed}, {window}, {n_times}")
    gen = torch.Generator().manual_seed(seed)
    times = torch.linspace(0.0, 1.0, n_times) * (n_times - 1) / 10
    start = torch.rand(n, 1, generator=gen) * 2 * math.pi + 1.5 * math.pi
    angle = start + times[None] * (2 * math.pi * turns / times[-1])
    radius = 0.15 * angle
    if exact_half:
        clockwise = (torch.randperm(n, generator=gen) < n // 2)[:, None]
    else:
        clockwise = torch.rand(n, 1, generator=gen) < 0.5
    sign = torch.where(clockwise, -1.0, 1.0)
    clean = torch.stack([radius * torch.cos(angle), sign * radius * torch.sin(angle)], dim=-1) / 2
    noisy = clean + noise * torch.randn(clean.shape, generator=gen)
    observed = torch.rand(n, window, generator=gen).argsort(dim=1)[:, :n_observed].sort(dim=1).values
    return Spirals(times, clean, noisy, observed, window)


class ReverseEncoder(nn.Module):
    """A GRU that reads ``[x_i, Δt_i]`` from the last observation to the first."""

    def __init__(self, obs_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(obs_dim + 1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, values: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        gaps = torch.diff(times, dim=1, prepend=torch.zeros_like(times[:, :1]))
        sequence = torch.cat([values, gaps[..., None]], dim=-1).flip(1)
        _, last = self.gru(sequence)
        return self.out(last[0])


class LatentODE(nn.Module):
    """RNN recognition network → ``z(t₀)`` → ODE in latent space → decoder to observations."""

    def __init__(self, obs_dim: int = 2, latent_dim: int = 4, hidden: int = 25, dynamics_width: int = 20,
                 *, solver: str = "rk4", tol: float = 1e-4, step_size: float = 0.25,
                 obs_std: float = 0.1) -> None:
        super().__init__()
        self.encoder = ReverseEncoder(obs_dim, hidden, 2 * latent_dim)
        self.dynamics = nn.Sequential(nn.Linear(latent_dim, dynamics_width), nn.ELU(),
                                      nn.Linear(dynamics_width, dynamics_width), nn.ELU(),
                                      nn.Linear(dynamics_width, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, obs_dim))
        self.solver, self.tol, self.step_size, self.obs_std = solver, tol, step_size, obs_std

    def _f(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.dynamics(z)

    def decode(self, z0: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Predicted observations [B, T, obs_dim] on the time grid ``grid`` (grid[0] is ``t₀``).

        Fixed-step solvers take steps of about ``step_size`` and interpolate between them.
        """
        steps = max(math.ceil(float(grid[-1] - grid[0]) / self.step_size), 1)
        path = integrate(self._f, z0, grid, solver=self.solver, tol=self.tol, steps=steps)
        return self.decoder(path.transpose(0, 1))

    def forward(self, values: torch.Tensor, times: torch.Tensor, grid: torch.Tensor, *,
                sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions on ``grid`` and the KL term per sequence; ``sample=False`` decodes the mean."""
        mean, logvar = self.encoder(values, times).chunk(2, dim=-1)
        z0 = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(dim=-1)
        return self.decode(z0, grid), kl

    def loss(self, values: torch.Tensor, times: torch.Tensor, observed: torch.Tensor,
             grid: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per sequence, averaged: Gaussian NLL of the observed points plus KL."""
        prediction, kl = self(values, times, grid)
        fitted = gather_points(prediction, observed)
        nll = 0.5 * ((fitted - values) / self.obs_std).square() + math.log(self.obs_std * math.sqrt(2 * math.pi))
        return (nll.sum(dim=(1, 2)) + kl).mean()


class RNNBaseline(nn.Module):
    """Same recognition RNN, then a GRU cell that steps through query times with ``Δt`` as input.

    With ``on_grid=False`` (the paper's setting) it is trained at the irregular observation times
    themselves, so at test time it is asked to step through more, shorter intervals than it ever
    saw: an RNN counts steps, not time. With ``on_grid=True`` it always steps along the regular
    grid the ODE solver reports on and is trained on the grid points that were observed.
    """

    def __init__(self, obs_dim: int = 2, hidden: int = 25, *, on_grid: bool = False) -> None:
        super().__init__()
        self.encoder = ReverseEncoder(obs_dim, hidden, hidden)
        self.cell = nn.GRUCell(1, hidden)
        self.readout = nn.Linear(hidden, obs_dim)
        self.on_grid = on_grid

    def forward(self, values: torch.Tensor, times: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Predictions [B, Q, obs_dim] at ``query`` times ([Q] shared, or [B, Q] per sequence)."""
        state = torch.tanh(self.encoder(values, times))
        query = query.expand(state.shape[0], -1)
        gaps = torch.diff(query, dim=1, prepend=torch.zeros_like(query[:, :1]))
        outputs = []
        for k in range(query.shape[1]):
            state = self.cell(gaps[:, k : k + 1], state)
            outputs.append(self.readout(state))
        return torch.stack(outputs, dim=1)

    def loss(self, values: torch.Tensor, times: torch.Tensor, observed: torch.Tensor,
             grid: torch.Tensor) -> torch.Tensor:
        """Mean squared error at the observed points (reached along the grid if ``on_grid``)."""
        prediction = gather_points(self(values, times, grid), observed) if self.on_grid else self(values, times, times)
        return (prediction - values).square().mean()


def gather_points(path: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``path[b, index[b, j]]`` for a batch of paths [B, T, D] and grid indices [B, m]."""
    return torch.gather(path, 1, index[..., None].expand(-1, -1, path.shape[-1]))


def held_out_rmse(prediction: torch.Tensor, data: Spirals) -> dict[str, float]:
    """RMSE against the clean trajectory at unobserved times in the window and after it."""
    error = (prediction - data.clean).square().sum(dim=-1)
    in_window = torch.zeros_like(error, dtype=torch.bool)
    in_window[:, : data.window] = True
    unobserved = in_window.clone()
    unobserved.scatter_(1, data.observed, False)
    return {"interpolation_rmse": float(error[unobserved].mean().sqrt()),
            "extrapolation_rmse": float(error[~in_window].mean().sqrt())}


def predictive_rmse(prediction: torch.Tensor, data: Spirals) -> float:
    """Root mean squared error of the predictions after the observation window (the paper's Table 2 metric).

    ``sqrt(mean over spirals n, times t >= window and coordinates d of (x̂[n, t, d] − x[n, t, d])²)``
    against the clean trajectory ``x``: every coordinate counts as one error, so it is ``held_out_rmse``'s
    per-point distance divided by √2 for 2-D points.
    """
    if data.window >= prediction.shape[1]:
        raise ValueError(f"no time after the observation window ({data.window} of {prediction.shape[1]} grid times)")
    return float((prediction[:, data.window :] - data.clean[:, data.window :]).square().mean().sqrt())
