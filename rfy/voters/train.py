"""Training a head on votes: mini-batches of photos or of single votes, on the device, resumable."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from rfy.checkpoint import ResumableLoop
from rfy.progress import progress
from rfy.voters.config import CLASSIFICATION, REGRESSION, Config
from rfy.voters.evaluate import pearson
from rfy.voters.heads import VoteModel
from rfy.voters.simulate import VoteData

CHECKPOINTS_PER_RUN = 4


@dataclass
class TrainedHead:
    """A trained model, its scores on the test photos (n_test, K) and its losses every 50 steps."""

    model: VoteModel
    scores: torch.Tensor
    losses: list[float]


def make_model(kind: str, data: VoteData, config: Config) -> VoteModel:
    """A fresh ``VoteModel`` of ``kind`` sized for ``data``."""
    return VoteModel(kind, data.features.shape[1], width=config.width, traits=data.num_traits, levels=data.levels,
                     bins=config.bins, num_voters=data.num_voters, voter_dim=config.voter_dim)


def training_units(kind: str, data: VoteData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What one training example is: a photo and its mean vote (regression, classification) or one vote
    with its voter (distribution, voter model). Returns (photo index, target, voter or None)."""
    if kind in (REGRESSION, CLASSIFICATION):
        return data.train_items, data.mean_votes(), None
    return data.vote_items, data.votes, data.vote_voters


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_head(kind: str, data: VoteData, config: Config, seed: int, *, device: torch.device | None = None,
               checkpoint_path: Path | None = None) -> TrainedHead:
    """AdamW for ``config.steps`` steps on batches drawn with replacement; resumes from ``checkpoint_path``."""
    device = device or data.features.device
    data = data.to(device)
    torch.manual_seed(seed)
    model = make_model(kind, data, config).to(device)
    optimiser = make_optimiser(model, config)
    generator = torch.Generator(device=device).manual_seed(seed)
    items, targets, voters = training_units(kind, data)
    loop = ResumableLoop(checkpoint_path, {"model": model, "optimiser": optimiser, "generator": generator})
    saved = loop.resume() or {"step": 0, "losses": []}
    start, losses = saved["step"], saved["losses"]
    every = max(config.steps // CHECKPOINTS_PER_RUN, 1)
    model.train()
    for step in progress(range(start, config.steps), desc=kind, total=config.steps, initial=start):
        loss = train_step(model, optimiser, data, (items, targets, voters), generator, config)
        if step % 50 == 0:
            losses.append(loss)
        if checkpoint_path and (step + 1) % every == 0 and step + 1 < config.steps:
            losses = [float(value) for value in losses]
            loop.save(step=step + 1, losses=losses)
    return TrainedHead(model, score_test_photos(model, data, config), [float(value) for value in losses])


def make_optimiser(model: VoteModel, config: Config) -> torch.optim.Optimizer:
    """AdamW with the learning rate and (decoupled) weight decay of ``config``."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def train_step(model: VoteModel, optimiser: torch.optim.Optimizer, data: VoteData,
               units: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], generator: torch.Generator,
               config: Config) -> torch.Tensor:
    """One optimisation step on ``config.batch_size`` training units (``training_units``) drawn with
    replacement by ``generator``: the head's loss (see ``VoteModel.loss``), backward, ``optimiser.step()``.
    Returns the loss, still on the device."""
    items, targets, voters = units
    device = data.features.device
    batch = torch.randint(0, len(items), (config.batch_size,), generator=generator, device=device)
    with autocast(device, config.mixed_precision):
        loss = model.loss(data.features[items[batch]], targets[batch], None if voters is None else voters[batch])
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


def score_test_photos(model: VoteModel, data: VoteData, config: Config) -> torch.Tensor:
    """The model's score $\\hat g$ of every test photo (n_test, K) in float32, in evaluation mode."""
    model.eval()
    with autocast(data.features.device, config.mixed_precision):
        return model.score(data.features[data.test_items], data.standard_voters).float()


def head_metrics(scores: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Pearson r per trait and averaged (``r``), MAE and RMSE of the score against the truth."""
    r = pearson(scores, truth)
    error = (scores - truth).float()
    metrics = {f"r_{k}": float(value) for k, value in enumerate(r)}
    metrics.update(r=float(r.mean()), mae=float(error.abs().mean()), rmse=float(error.square().mean().sqrt()))
    return metrics
