"""Conquer and merge: the training loop of one embedding with K learners, on the device, resumable.

One epoch visits the clusters round-robin, one class-balanced batch at a time, until it has drawn
about as many images as the training set holds. Every ``recluster_every`` epochs the training
images are re-clustered on the trunk's normalised features and the new clusters are handed to
the learners they overlap most. The schedule has three phases (``Config.phase``): each learner's
loss on its own slice, then the loss on the whole embedding (batches still per cluster), then a
short fine-tune with K = 1 (batches from all the data).

Everything stays on the device: images (uint8 photographs are cropped and mirrored there), labels, the
pair mining and the evaluation; only the k-means step copies the trunk's features to the host. There
is no DistributedDataParallel: the paper's setting (ResNet-50, batches of 80 images, 5,864 training
images) keeps one GPU busy, and the k-means step, not the network, would not shrink with more GPUs.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rfy.checkpoint import ResumableLoop, rng_state, set_rng_state
from rfy.data import to_unit_interval
from rfy.divide_conquer.clustering import ClusterBatches, cluster_features, match_clusters
from rfy.divide_conquer.config import Config
from rfy.divide_conquer.data import RetrievalData
from rfy.divide_conquer.evaluation import clustering_nmi, nmi, recall_at_k
from rfy.divide_conquer.losses import batch_margin_loss, full_embedding, split_embedding
from rfy.divide_conquer.models import Embedder, make_embedder
from rfy.progress import progress
from rfy.runtime import seed_everything, select_device, synchronize, torch_threads

CROP = 224  # photographs are stored at 256×256 and cropped to 224×224


def random_window(images: torch.Tensor, size: int) -> torch.Tensor:
    """A random ``size``×``size`` window of each image ``[B, C, H, W]``, mirrored with probability 1/2."""
    batch, _, height, width = images.shape
    dy = torch.randint(0, height - size + 1, (batch,), device=images.device)
    dx = torch.randint(0, width - size + 1, (batch,), device=images.device)
    rows = (dy[:, None] + torch.arange(size, device=images.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(size, device=images.device))[:, None, :]
    flip = torch.rand(batch, device=images.device) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    index = torch.arange(batch, device=images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def centre_window(images: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top:top + size, left:left + size]


@dataclass
class TrainResult:
    """The trained embedder, its test metrics before training and per epoch, and the clusterings it trained on."""

    model: Embedder
    learners: int
    history: list[dict[str, float]] = field(default_factory=list)
    assignments: list[torch.Tensor] = field(default_factory=list)  # training-set cluster ids, per re-clustering
    initial: dict[str, float] = field(default_factory=dict)  # Recall@K of the network before any training step
    train_seconds: float = 0.0

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1]


class Learner:
    """Model, optimiser, data and current clustering of one run with ``learners`` = K (``trunk``: see
    ``make_embedder``)."""

    def __init__(self, data: RetrievalData, config: Config, learners: int, seed: int, *,
                 trunk: nn.Module | None = None) -> None:
        self.config, self.learners = config, learners
        self.device = select_device(config.device)
        seed_everything(seed)
        self.seed = seed
        self.data = data.to(self.device)
        in_dim = data.train_images.shape[1] if data.train_images.dim() == 2 else 0
        self.model = make_embedder(config.model, in_dim, config.hidden_dim, config.embedding_dim,
                                   trunk=trunk).to(self.device)
        if self.device.type == "cuda" and data.train_images.dim() == 4:
            self.model.to(memory_format=torch.channels_last)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.autocast_enabled = config.mixed_precision and self.device.type == "cuda"
        self.assignment = torch.zeros(len(data.train_labels), dtype=torch.long)
        self.history_assignments: list[torch.Tensor] = []
        self.batches = self._batches(1)
        batch_size = config.classes_per_batch * config.images_per_class
        self.steps_per_epoch = math.ceil(len(data.train_labels) / batch_size)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled)

    def _batches(self, clusters: int) -> ClusterBatches:
        return ClusterBatches(self.data.train_labels, self.assignment, clusters, self.config.classes_per_batch,
                              self.config.images_per_class)

    def inputs(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """Floats for the network: photographs are cropped (randomly when training), digits pass through."""
        images = to_unit_interval(images)
        if images.dim() == 4:
            images = random_window(images, CROP) if train and self.data.augment else centre_window(images, CROP)
            if self.device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
        return images

    @torch.no_grad()
    def encode(self, images: torch.Tensor, *, features: bool = False) -> torch.Tensor:
        """Trunk features $\\phi(x)$ or the normalised full embedding of ``images``, in evaluation batches."""
        self.model.eval()
        outputs = []
        for start in range(0, len(images), self.config.batch_size_eval):
            batch = self.inputs(images[start:start + self.config.batch_size_eval], train=False)
            with self.autocast():
                out = self.model.features(batch) if features else self.model(batch)
            outputs.append(out.float() if features else full_embedding(out.float(), self.learners))
        return torch.cat(outputs)

    def recluster(self) -> None:
        """k-means on the normalised trunk features of the training set; new clusters keep their learner."""
        features = self.encode(self.data.train_images, features=True)
        current = cluster_features(features, self.learners, seed=self.seed + len(self.history_assignments),
                                   restarts=self.config.kmeans_restarts, iterations=self.config.kmeans_iterations)
        if self.history_assignments:
            current = match_clusters(self.history_assignments[-1], current, self.learners)
        self.assignment = current
        self.history_assignments.append(current)
        self.batches = self._batches(self.learners)

    def step(self, cluster: int, phase: str) -> torch.Tensor:
        """One Adam step on the margin loss of a batch from ``cluster``: on its slice, or on the whole embedding."""
        config = self.config
        self.model.train()
        index = self.batches.draw(cluster).to(self.device)
        with self.autocast():
            embedding = self.model(self.inputs(self.data.train_images[index], train=True)).float()
        if phase == "slices" and self.learners > 1:
            embedding = split_embedding(embedding, self.learners)[cluster]
        else:
            embedding = full_embedding(embedding, self.learners)
        loss = batch_margin_loss(embedding, self.data.train_labels[index], sampler=config.sampler, beta=config.beta,
                                 alpha=config.margin, cutoff=config.cutoff,
                                 nonzero_loss_cutoff=config.nonzero_loss_cutoff)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self, epoch: int) -> torch.Tensor:
        """One epoch of the schedule; returns the mean loss (on the device)."""
        phase = self.config.phase(epoch)
        if self.learners > 1 and phase != "finetune" and epoch % self.config.recluster_every == 0:
            self.recluster()
        if phase == "finetune" and len(self.batches.tables) > 1:
            self.assignment = torch.zeros_like(self.assignment)
            self.batches = self._batches(1)
        usable = self.batches.usable
        total = torch.zeros((), device=self.device)
        for step in range(self.steps_per_epoch):
            total += self.step(usable[step % len(usable)], phase)
        return total / self.steps_per_epoch

    def evaluate(self, *, with_nmi: bool = True) -> dict[str, float]:
        """Recall@K (%) on the unseen test classes and, if asked, NMI (%) of k-means against their labels."""
        embeddings = self.encode(self.data.test_images)
        metrics = {f"recall@{k}": value for k, value in
                   recall_at_k(embeddings, self.data.test_labels, self.config.recall_ks).items()}
        if with_nmi:
            metrics["nmi"] = clustering_nmi(embeddings, self.data.test_labels, seed=self.seed)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
                "assignments": self.history_assignments, "assignment": self.assignment}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.history_assignments, self.assignment = state["assignments"], state["assignment"]
        clusters = 1 if int(self.assignment.max()) == 0 else self.learners
        self.batches = self._batches(clusters)


def train(data: RetrievalData, config: Config, learners: int, seed: int, *,
          checkpoint_path: str | Path | None = None) -> TrainResult:
    """Train one embedding with K = ``learners`` for ``config.epochs`` epochs, evaluating every ``eval_every``.

    The network is also evaluated once before the first step (``TrainResult.initial``, Recall@K only: what
    training is measured against). With ``checkpoint_path`` the run saves itself after every evaluation
    and resumes from there.
    The last evaluation adds NMI and the agreement (NMI) of the last clustering with the data's domains.
    On the CPU the small reduced-mode networks run on one thread: their tensors are too small to
    gain from more, and a fixed count makes a seed give the same run on every machine.
    """
    small = select_device(config.device).type == "cpu" and config.model in ("mlp", "cnn")
    with torch_threads(1) if small else contextlib.nullcontext():
        return _train(data, config, learners, seed, checkpoint_path)


def _train(data: RetrievalData, config: Config, learners: int, seed: int,
           checkpoint_path: str | Path | None) -> TrainResult:
    learner = Learner(data, config, learners, seed)
    result, start = TrainResult(learner.model, learners), 0
    loop = ResumableLoop(checkpoint_path, {"learner": learner})
    saved = loop.resume()
    if saved is not None:
        result.history, result.train_seconds, start = saved["history"], saved["train_seconds"], saved["epoch"]
        result.initial = saved["initial"]
    else:
        result.initial = learner.evaluate(with_nmi=False)
    bar = progress(total=config.epochs, desc=f"K = {learners}", unit="epoch", initial=start)
    tick = time.perf_counter()
    for epoch in range(start, config.epochs):
        loss = learner.epoch(epoch)
        bar.update()
        done = epoch + 1
        if done % config.eval_every == 0 or done == config.epochs:
            synchronize(learner.device)
            result.train_seconds += time.perf_counter() - tick
            entry = {"epoch": done, "seconds": round(result.train_seconds, 2), "loss": loss.item(),
                     **learner.evaluate(with_nmi=done == config.epochs)}
            result.history.append(entry)
            loop.save(history=result.history, train_seconds=result.train_seconds, epoch=done, initial=result.initial)
            tick = time.perf_counter()
    bar.close()
    result.assignments = learner.history_assignments
    if result.assignments and len(data.domain_names) > 1:
        result.history[-1]["cluster_domain_nmi"] = nmi(result.assignments[-1], data.train_domains.cpu())
    return result
