"""Training, evaluation and the M2 against GM-DGM comparison, shared by the notebook and ``python -m rfy run``.

On the CPU each model trains on one torch thread: these MLPs are too small for a second thread to
pay, two threads per run on a busy machine spin instead of computing, and a pinned count gives
the same bits on every machine. The runs of a comparison (models × seeds) are independent, so
``study`` (and ``run_experiment``, its metrics) trains them side by side, one process per core (``rfy.parallel``).
"""
from __future__ import annotations

import contextlib
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rfy.checkpoint import ResumableLoop, RunState
from rfy.data import to_unit_interval
from rfy.parallel import default_workers, stages_in_processes
from rfy.progress import progress
from rfy.runtime import seed_everything, select_device, torch_threads
from rfy.semi_unsupervised.config import N_CLASSES, Config
from rfy.semi_unsupervised.data import SemiUnsupervisedData, load_images, make_semi_unsupervised
from rfy.semi_unsupervised.evaluation import accuracies, cluster_to_label
from rfy.semi_unsupervised.model import DeepGenerativeModel, labelled_log_q, make_model
from rfy.semi_unsupervised.objectives import class_prior, semi_unsupervised_loss, unlabelled_bound

NAMES = {"m2": "M2", "gmdgm": "GM-DGM"}


def load_data(config: Config, seed: int | None = None) -> SemiUnsupervisedData:
    """Digits, the prototypes stand-in or Fashion-MNIST, split for ``seed`` (default ``config.seed``): masked classes, kept labels, validation."""
    X, y, X_test, y_test = load_images(config.dataset)
    data = make_semi_unsupervised(X, y, X_test, y_test, masked_classes=config.masked_classes,
                                  label_fraction=config.label_fraction,
                                  validation_fraction=config.validation_fraction,
                                  seed=config.seed if seed is None else seed, n_classes=N_CLASSES)
    return data.to(select_device(config.device))


def flat(images: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` images (uint8 or float) as float rows in [0, 1]."""
    return to_unit_interval(images).flatten(1)


def binarise(x: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation: every pixel is a fresh Bernoulli draw with its grey value as probability."""
    return torch.bernoulli(x)


def prior_for(data: SemiUnsupervisedData, config: Config) -> torch.Tensor:
    """$p(y)$ of the authors: the masked classes and extra clusters share the masked classes' share of 1/10 each."""
    counts = torch.bincount(data.y_labelled.cpu(), minlength=data.n_classes)
    return class_prior(data.n_classes, data.masked_classes, counts, config.extra_clusters,
                       unlabelled_mass=len(data.masked_classes) / data.n_classes)


def build_model(kind: str, data: SemiUnsupervisedData, config: Config) -> DeepGenerativeModel:
    return make_model(kind, data.x_dim, config.n_clusters, config.latent_dim, tuple(config.hidden),
                      prior_for(data, config), config.prior_mean_scale).to(data.X_unlabelled.device)


def training_loss(model: DeepGenerativeModel, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor,
                  alpha: float, kl_weight: float | torch.Tensor = 1.0) -> torch.Tensor:
    """The negative objective on one labelled and one unlabelled batch (binarised rows)."""
    bounds_l = model.bound(x_l, F.one_hot(y_l, model.n_clusters).float(), kl_weight=kl_weight)
    bounds_u = unlabelled_bound(model.class_logits(x_u), model.bounds_all_classes(x_u, kl_weight=kl_weight))
    return semi_unsupervised_loss(bounds_l, labelled_log_q(model, x_l, y_l), bounds_u, alpha)


class TrainingStep:
    """One optimisation step of the objective: a random labelled batch, the unlabelled batch ``u_index``,
    dynamic binarisation, the negative bound, backward, gradients clipped to ±``grad_clip``, Adam.

    A step of these MLPs is a few hundred tiny kernels, so on a GPU Python's launch cost, not arithmetic,
    sets its time. There the step is captured once as a CUDA graph (after ``GRAPH_WARMUP`` ordinary steps)
    and replayed: the same kernels and random draws, launched at once. A batch of another size (the last
    of an epoch) runs as an ordinary step.
    """

    GRAPH_WARMUP = 3

    def __init__(self, model: DeepGenerativeModel, optimizer: torch.optim.Optimizer, data: SemiUnsupervisedData,
                 config: Config, alpha: float) -> None:
        self.model, self.optimizer, self.data, self.alpha = model, optimizer, data, alpha
        self.batch_size, self.grad_clip = config.batch_size, config.grad_clip
        device = data.X_unlabelled.device
        self.kl_weight = torch.ones((), device=device)
        self.u_index = torch.zeros(config.batch_size, dtype=torch.long, device=device)
        self.use_graph = device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0

    def set_kl_weight(self, weight: float) -> None:
        """The KL terms' weight for the coming steps (the warm-up's linear ramp)."""
        self.kl_weight.fill_(weight)

    def _step(self, u_index: torch.Tensor) -> torch.Tensor:
        data = self.data
        pick = torch.randint(len(data.X_labelled), (self.batch_size,), device=u_index.device)
        x_l, x_u = binarise(flat(data.X_labelled[pick])), binarise(flat(data.X_unlabelled[u_index]))
        loss = training_loss(self.model, x_l, data.y_labelled[pick], x_u, self.alpha, self.kl_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss

    def __call__(self, u_index: torch.Tensor) -> None:
        if not self.use_graph or len(u_index) != self.batch_size:
            self._step(u_index)
            return
        self.u_index.copy_(u_index)
        if self.graph is None and self.eager_steps < self.GRAPH_WARMUP:
            self._warmup_step()
        else:
            if self.graph is None:
                try:
                    self.graph = self._capture()
                except RuntimeError as error:  # a GPU or driver that cannot capture: ordinary steps, slower
                    warnings.warn(f"the training step could not be captured as a CUDA graph ({error}); "
                                  f"training goes on with ordinary steps", stacklevel=2)
                    self.use_graph = False
                    self._step(self.u_index)
                    return
            self.graph.replay()

    def _warmup_step(self) -> None:
        """An ordinary step on a side stream, as CUDA graph capture wants before it records."""
        stream = torch.cuda.Stream(self.u_index.device)
        stream.wait_stream(torch.cuda.current_stream(self.u_index.device))
        with torch.cuda.stream(stream):
            self._step(self.u_index)
        torch.cuda.current_stream(self.u_index.device).wait_stream(stream)
        self.eager_steps += 1

    def _capture(self) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # gradients then live in the graph's own memory
        with torch.cuda.graph(graph):
            self._step(self.u_index)
        return graph


def make_optimizer(model: DeepGenerativeModel, config: Config) -> torch.optim.Adam:
    """Adam at ``config.lr``. On a GPU its step count lives on the device, so the step can be a CUDA graph,
    and every parameter is updated by one fused kernel (the same update, fewer launches)."""
    on_gpu = next(model.parameters()).device.type == "cuda"
    return torch.optim.Adam(model.parameters(), lr=config.lr, capturable=on_gpu, fused=on_gpu or None)


def kl_weight_at(epoch: int, config: Config) -> float:
    """The KL weight ramps linearly from 0 to 1 over ``warmup_epochs`` (1 throughout without warm-up)."""
    return min(1.0, (epoch + 1) / config.warmup_epochs) if config.warmup_epochs else 1.0


def classifier_weight(data: SemiUnsupervisedData, config: Config) -> float:
    """$\\alpha$ = ``alpha_scale`` · N / N_labelled."""
    n_u, n_l = len(data.X_unlabelled), len(data.X_labelled)
    return config.alpha_scale * (n_u + n_l) / n_l


def steps_per_epoch(data: SemiUnsupervisedData, config: Config) -> int:
    """Batches of ``batch_size`` unlabelled images in one pass (the last one may be smaller)."""
    return -(-len(data.X_unlabelled) // config.batch_size)


def train_model(kind: str, data: SemiUnsupervisedData, config: Config, *, seed: int = 0, desc: str = "",
                checkpoint: Path | None = None) -> DeepGenerativeModel:
    """Adam on the objective, batches of ``batch_size`` labelled and ``batch_size`` unlabelled images.

    An epoch is one pass over the unlabelled images; the labelled ones are redrawn at random. The
    KL terms ramp linearly from 0 to 1 over ``warmup_epochs``; gradients are clipped to ±``grad_clip``
    (``TrainingStep``). With ``checkpoint`` the state is saved after every epoch and an interrupted run
    resumes from it.
    """
    seed_everything(seed)
    model = build_model(kind, data, config)
    optimizer = make_optimizer(model, config)
    loop = ResumableLoop(checkpoint, {"model": model, "optimizer": optimizer}, rng=True)
    start = (loop.resume() or {"epoch": 0})["epoch"]
    step = TrainingStep(model, optimizer, data, config, classifier_weight(data, config))
    device = data.X_unlabelled.device
    model.train()
    for epoch in progress(range(start, config.epochs), desc=desc, unit="epoch", total=config.epochs, initial=start):
        step.set_kl_weight(kl_weight_at(epoch, config))
        for batch in torch.randperm(len(data.X_unlabelled), device=device).split(config.batch_size):
            step(batch)
        loop.save(epoch=epoch + 1)
    model.eval()
    return model


@torch.no_grad()
def predict_clusters(model: DeepGenerativeModel, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """$\\arg\\max_y q(y\\mid x)$ for grey-valued images."""
    model.eval()
    return torch.cat([model.class_logits(flat(b)).argmax(-1) for b in images.split(batch_size)])


@torch.no_grad()
def latent_means(model: DeepGenerativeModel, images: torch.Tensor) -> torch.Tensor:
    """Mean of $q(z\\mid x, \\hat y)$ at the predicted cluster $\\hat y$, for figures."""
    x = flat(images)
    y = F.one_hot(model.class_logits(x).argmax(-1), model.n_clusters).float()
    return model.encode(x, y)[0]


def label_clusters(model: DeepGenerativeModel, data: SemiUnsupervisedData) -> torch.Tensor:
    """``[K]``: each cluster's majority label on the validation split (``UNMAPPED`` if none of it lands there)."""
    return cluster_to_label(predict_clusters(model, data.X_val), data.y_val, model.n_clusters, data.n_classes)


def evaluate(model: DeepGenerativeModel, data: SemiUnsupervisedData) -> dict[str, float]:
    """Name clusters with the validation split, then score the test split (%): overall, masked, labelled."""
    predicted = label_clusters(model, data)[predict_clusters(model, data.X_test)]
    return accuracies(predicted, data.y_test, data.masked_classes)


@dataclass
class Comparison:
    """Per model kind, one evaluation dict per seed; the first seed's data and models, for figures."""

    scores: dict[str, list[dict[str, float]]]
    data: SemiUnsupervisedData
    models: dict[str, DeepGenerativeModel]

    def mean(self, kind: str, key: str) -> float:
        return statistics.fmean(run[key] for run in self.scores[kind])

    def std(self, kind: str, key: str) -> float:
        return spread([run[key] for run in self.scores[kind]])

    def metrics(self) -> dict[str, float]:
        return accuracy_metrics(self.scores)

    def gaps(self) -> list[float]:
        """Per seed, GM-DGM minus M2 on the masked classes (points)."""
        return masked_gaps(self.scores)


def spread(values: list[float]) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def accuracy_metrics(scores: dict[str, list[dict[str, float]]], prefix: str = "") -> dict[str, float]:
    """Flat metrics for a run record: ``<prefix><kind>_<overall|masked|labelled>_accuracy`` (mean and std
    over seeds) and, with both models, ``<prefix>masked_gap`` (GM-DGM minus M2 on the masked classes,
    mean over seeds) and ``<prefix>masked_gap_min`` (the smallest per-seed gap)."""
    metrics = {}
    for kind, runs in scores.items():
        for key in ("overall", "masked", "labelled"):
            values = [run[key] for run in runs]
            metrics[f"{prefix}{kind}_{key}_accuracy"] = statistics.fmean(values)
            metrics[f"{prefix}{kind}_{key}_accuracy_std"] = spread(values)
    if {"m2", "gmdgm"} <= set(scores):
        gaps = masked_gaps(scores)
        metrics[f"{prefix}masked_gap"] = statistics.fmean(gaps)
        metrics[f"{prefix}masked_gap_min"] = min(gaps)
    return metrics


def masked_gaps(scores: dict[str, list[dict[str, float]]]) -> list[float]:
    """Per seed, GM-DGM minus M2 accuracy (points) on the masked classes."""
    return [g["masked"] - m["masked"] for g, m in zip(scores["gmdgm"], scores["m2"])]


#: Prefix of the stand-in's metrics in a run record.
STAND_IN = "prototypes_"


def experiment_metrics(scores: dict[str, list[dict[str, float]]],
                       stand_in_scores: dict[str, list[dict[str, float]]] | None = None) -> dict[str, float]:
    """The record's metrics: the dataset's, then the stand-in's under the ``prototypes_`` prefix."""
    metrics = accuracy_metrics(scores)
    if stand_in_scores is not None:
        metrics.update(accuracy_metrics(stand_in_scores, STAND_IN))
    return metrics


@dataclass(frozen=True)
class ModelJob:
    """One run of a comparison: model ``kind`` on the split of ``config``'s data for ``seed``,
    checkpointed every epoch at ``checkpoint`` when given."""

    config: Config
    kind: str
    seed: int
    checkpoint: Path | None = None


def train_and_evaluate(job: ModelJob) -> dict[str, float]:
    """Train the model ``job`` names and score it (``evaluate``), on one thread when on the CPU: what a run's
    stage stores (the trained model stays in the job's checkpoint)."""
    data = load_data(job.config, job.seed)
    on_cpu = data.X_unlabelled.device.type == "cpu"
    with torch_threads(1) if on_cpu else contextlib.nullcontext():
        model = train_model(job.kind, data, job.config, seed=job.seed, checkpoint=job.checkpoint,
                            desc=f"{NAMES[job.kind]}, seed {job.seed}")
        return evaluate(model, data)


def model_jobs(config: Config, checkpoints: Callable[[str], Path] | None = None,
               prefix: str = "") -> dict[str, ModelJob]:
    """Every run of ``config`` (each model on each seed), by stage name ``<prefix><kind>-seed<seed>``;
    ``checkpoints(name)`` gives each run's checkpoint path. M2 runs come first: they take longest."""
    names = [(f"{prefix}{kind}-seed{seed}", kind, seed) for kind in config.models for seed in config.seeds]
    return {name: ModelJob(config, kind, seed, checkpoints(name) if checkpoints else None)
            for name, kind, seed in names}


def trained_model(job: ModelJob) -> DeepGenerativeModel:
    """The model a finished run of ``job`` trained, read from its checkpoint (saved after its last epoch)."""
    model = build_model(job.kind, load_data(job.config, job.seed), job.config)
    if ResumableLoop(job.checkpoint, {"model": model}).resume() is None:
        raise FileNotFoundError(f"{job.checkpoint} is missing, so the trained {NAMES[job.kind]} of seed {job.seed} "
                                f"cannot be shown; start the run over without --resume")
    return model.eval()


@dataclass
class Study:
    """The chapter's experiment with what the notebook's figures need: ``metrics`` is ``run_experiment``'s;
    ``comparison`` holds the dataset's scores per seed, its first seed's data and trained models, and
    ``stand_in`` the prototypes stand-in's (``None`` when ``config.runs_stand_in`` is false)."""

    config: Config
    metrics: dict[str, float]
    comparison: Comparison
    stand_in: Comparison | None


def study(config: Config, state: RunState, workers: int | None = None) -> Study:
    """Every (dataset, model, seed) run as its own resumable stage, checkpointed every epoch, trained
    side by side on ``workers`` processes (default: one per CPU core on the CPU, one per run on a GPU,
    where each run's Python loop then feeds the one GPU in turn).

    Runs ``config.dataset`` and, when ``config.runs_stand_in``, the prototypes stand-in with the same
    recipe. The first seed's models of each comparison are read back from their checkpoints.
    """
    runs = {"": model_jobs(config, state.checkpoint_path)}
    if config.runs_stand_in:
        runs["prototypes-"] = model_jobs(config.stand_in_config(), state.checkpoint_path, "prototypes-")
    jobs = {name: job for group in runs.values() for name, job in group.items()}
    device = select_device(config.device)
    workers = workers or (len(jobs) if device.type == "cuda" else default_workers(device))
    scores = stages_in_processes(state, jobs, train_and_evaluate, workers, desc="models")

    def comparison(group: dict[str, ModelJob]) -> Comparison:
        first = next(iter(group.values())).config
        return Comparison({kind: [scores[name] for name, job in group.items() if job.kind == kind]
                           for kind in config.models}, load_data(first, first.seeds[0]),
                          {job.kind: trained_model(job) for job in group.values() if job.seed == first.seeds[0]})

    dataset = comparison(runs[""])
    stand_in = comparison(runs["prototypes-"]) if config.runs_stand_in else None
    return Study(config, experiment_metrics(dataset.scores, stand_in.scores if stand_in else None), dataset, stand_in)


def run_experiment(config: Config, state: RunState, workers: int | None = None) -> dict[str, float]:
    """The record's metrics (``experiment_metrics``) of ``study``."""
    return study(config, state, workers).metrics
