"""One data set's runs (the raw-vote curve and every head, each a resumable stage) and their summary.

Shared by the simulation (``rfy.voters.experiments``) and SCUT-FBP5500's folds (``rfy.voters.scut``).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from rfy.checkpoint import RunState
from rfy.runtime import select_device
from rfy.voters.config import VOTER, Config
from rfy.voters.evaluate import raw_vote_curve, votes_equivalent
from rfy.voters.simulate import VoteData
from rfy.voters.train import head_metrics, train_head


def curve_metrics(data: VoteData, permutations: int, seed: int) -> dict[str, float]:
    """The raw-vote curve of ``data`` as ``raw_votes_r_<n>`` entries."""
    curve = raw_vote_curve(data.heldout_votes.cpu(), data.heldout_truth.cpu(), permutations=permutations,
                           generator=torch.Generator().manual_seed(seed))
    return {f"raw_votes_r_{n}": float(value) for n, value in enumerate(curve, start=1)}


def curve_of(metrics: dict[str, float], prefix: str = "") -> torch.Tensor:
    """The curve stored by ``curve_metrics`` (under ``prefix``), as a tensor indexed by n - 1."""
    values, n = [], 1
    while f"{prefix}raw_votes_r_{n}" in metrics:
        values.append(metrics[f"{prefix}raw_votes_r_{n}"])
        n += 1
    return torch.tensor(values)


def condition_runs(config: Config, condition: str, seed: int, state: RunState,
                   data_for: Callable[[], VoteData]) -> dict[str, dict[str, float]]:
    """Every head of ``config`` (and the raw-vote curve) on one data set, each a resumable stage."""
    device = select_device(config.device)
    name = f"{condition}-seed{seed}"
    runs = {"votes": state.stage(f"{name}-votes", lambda _: curve_metrics(data_for(), config.permutations, seed))}
    for head in config.heads:
        def fit(checkpoint, head=head):
            data = data_for()
            trained = train_head(head, data, config, seed, device=device, checkpoint_path=checkpoint)
            return head_metrics(trained.scores.cpu(), data.truth[data.test_items].cpu())
        runs[head] = state.stage(f"{name}-{head}", fit)
    return runs


def summarise(config: Config, runs: dict[int, dict[str, dict[str, float]]], prefix: str = "") -> dict[str, float]:
    r"""Means over seeds (or folds) and per-run values: ``<head>_r``, ``_r_std``, ``_k_star``, the voter model's
    advantage over the best other head, and the mean raw-vote curve; every key starts with ``prefix``.

    The advantages are taken run by run, against the best other head of that run, then summarised over runs:
    ``voter_advantage`` :math:`= r_\text{voter} - \max_{h \ne \text{voter}} r_h` (mean, ``_min``, ``_std``) and
    ``voter_k_star_advantage`` :math:`= k^*_\text{voter} - \max_{h \ne \text{voter}} k^*_h` (mean, ``_min``).
    """
    flat: dict[str, float] = {}
    keys = sorted(runs)
    k_star_of: dict[str, list[float]] = {}
    for head in config.heads:
        for name in runs[keys[0]][head]:
            flat[f"{prefix}{head}_{name}"] = statistics.fmean(runs[key][head][name] for key in keys)
        per_run = [runs[key][head]["r"] for key in keys]
        flat[f"{prefix}{head}_r_std"] = statistics.stdev(per_run) if len(per_run) > 1 else 0.0
        k_stars = [votes_equivalent(curve_of(runs[key]["votes"]), runs[key][head]["r"]) for key in keys]
        k_star_of[head] = k_stars
        flat[f"{prefix}{head}_k_star"] = statistics.fmean(k_stars)
        for key, r, k_star in zip(keys, per_run, k_stars):
            flat[f"{prefix}run{key}_{head}_r"] = r
            flat[f"{prefix}run{key}_{head}_k_star"] = k_star
    others = [head for head in config.heads if head != VOTER]
    if VOTER in config.heads and others:
        advantages = [runs[key][VOTER]["r"] - max(runs[key][head]["r"] for head in others) for key in keys]
        flat[f"{prefix}voter_advantage"] = statistics.fmean(advantages)
        flat[f"{prefix}voter_advantage_min"] = min(advantages)
        flat[f"{prefix}voter_advantage_std"] = statistics.stdev(advantages) if len(advantages) > 1 else 0.0
        vote_margins = [k_star_of[VOTER][i] - max(k_star_of[head][i] for head in others) for i in range(len(keys))]
        flat[f"{prefix}voter_k_star_advantage"] = statistics.fmean(vote_margins)
        flat[f"{prefix}voter_k_star_advantage_min"] = min(vote_margins)
    for key in keys:
        flat.update({f"{prefix}run{key}_{name}": value for name, value in runs[key]["votes"].items()})
    curve = torch.stack([curve_of(runs[key]["votes"]) for key in keys]).mean(0)
    flat.update({f"{prefix}raw_votes_r_{n}": float(value) for n, value in enumerate(curve, start=1)})
    return flat
