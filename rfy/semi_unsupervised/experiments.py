"""Training, evaluation and the M2 against GM-DGM comparison, shared by the notebook and ``python -m rfy run``.

On the CPU each model trains on one torch thread: these MLPs are too small for a second thread to
pay, two threads per run on a busy machine spin instead of computing, and a pinned count gives
the same bits on every machine. The runs of a comparison (models × seeds) are independent, so
``study`` (and ``run_experiment``, its metrics) trains them side by side, one process per core (``rfy.parallel``).
"""
from __future__ import annotations

import contextlib
import re
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
from rfy.results import RunRecord
from rfy.runtime import seed_everything, select_device, torch_threads
from rfy.semi_unsupervised.config import N_CLASSES, Config
from rfy.semi_unsupervised.data import SemiUnsupervisedData, load_images, make_semi_unsupervised
from rfy.semi_unsupervised.evaluation import accuracies, cluster_to_label, dead_outputs
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
                      prior_for(data, config), config.prior_mean_scale, config.init).to(data.X_unlabelled.device)


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
    """$\\alpha$ = ``alpha_scale`` · N / N_labelled with ``scale_alpha`` (the paper's rule), else ``alpha_scale``
    (what the authors' code computes; ``Config`` explains the difference)."""
    if not config.scale_alpha:
        return config.alpha_scale
    n_u, n_l = len(data.X_unlabelled), len(data.X_labelled)
    return config.alpha_scale * (n_u + n_l) / n_l


def steps_per_epoch(data: SemiUnsupervisedData, config: Config) -> int:
    """Batches of ``batch_size`` unlabelled images in one pass (the last one may be smaller)."""
    return -(-len(data.X_unlabelled) // config.batch_size)


def train_model(kind: str, data: SemiUnsupervisedData, config: Config, *, seed: int = 0, desc: str = "",
                checkpoint: Path | None = None, curve: list[dict[str, float]] | None = None) -> DeepGenerativeModel:
    """Adam on the objective, batches of ``batch_size`` labelled and ``batch_size`` unlabelled images.

    An epoch is one pass over the unlabelled images; the labelled ones are redrawn at random. The
    KL terms ramp linearly from 0 to 1 over ``warmup_epochs``; gradients are clipped to ±``grad_clip``
    (``TrainingStep``). With ``checkpoint`` the state is saved after every epoch and an interrupted run
    resumes from it. With ``curve`` (a list) the scores of ``epoch_scores`` after every epoch are appended
    to it (and kept in the checkpoint, so a resumed run's curve is whole); scoring draws no random numbers,
    so it leaves the training itself unchanged.
    """
    seed_everything(seed)
    model = build_model(kind, data, config)
    optimizer = make_optimizer(model, config)
    loop = ResumableLoop(checkpoint, {"model": model, "optimizer": optimizer}, rng=True)
    saved = loop.resume() or {"epoch": 0}
    start = saved["epoch"]
    if curve is not None:
        curve[:] = saved.get("curve", [])
        if len(curve) != start:
            raise ValueError(f"the checkpoint {checkpoint} holds {len(curve)} epochs of the learning curve but "
                             f"{start} trained epochs; start the run over without --resume")
    step = TrainingStep(model, optimizer, data, config, classifier_weight(data, config))
    device = data.X_unlabelled.device
    model.train()
    for epoch in progress(range(start, config.epochs), desc=desc, unit="epoch", total=config.epochs, initial=start):
        step.set_kl_weight(kl_weight_at(epoch, config))
        for batch in torch.randperm(len(data.X_unlabelled), device=device).split(config.batch_size):
            step(batch)
        if curve is not None:
            curve.append(epoch_scores(model, data))
            model.train()
        loop.save(epoch=epoch + 1, **({"curve": curve} if curve is not None else {}))
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


#: The authors keep the checkpoint with the best accuracy on this many first test images.
AUTHORS_SELECTION_IMAGES = 1000
#: What ``epoch_scores`` measures after every epoch.
EPOCH_KEYS = ("overall", "masked", "labelled", "dead_outputs", "authors_selection", "authors_overall",
              "authors_masked", "authors_labelled")


def majority_named_accuracy(clusters: torch.Tensor, labels: torch.Tensor, n_clusters: int,
                        masked_classes: tuple[int, ...], n_classes: int) -> dict[str, float]:
    """Accuracies (%) when each cluster is named by the majority label of the very points being scored."""
    names = cluster_to_label(clusters, labels, n_clusters, n_classes)
    return accuracies(names[clusters], labels, masked_classes)


@torch.no_grad()
def epoch_scores(model: DeepGenerativeModel, data: SemiUnsupervisedData) -> dict[str, float]:
    """The scores of one epoch's model, under both protocols.

    Ours (``evaluate``): clusters named on the validation split, test accuracy overall, on the masked
    and on the labelled classes, and ``dead_outputs``, the outputs no test image reaches. The authors'
    (``model.py``'s ``compute_acc``): clusters named by the majority label of the test images
    themselves; ``authors_selection`` is that accuracy on the first ``AUTHORS_SELECTION_IMAGES`` test
    images (what their checkpoint choice maximises), ``authors_*`` on the whole test split.
    """
    clusters = predict_clusters(model, data.X_test)
    ours = accuracies(label_clusters(model, data)[clusters], data.y_test, data.masked_classes)
    named = (model.n_clusters, data.masked_classes, data.n_classes)
    first = slice(0, AUTHORS_SELECTION_IMAGES)
    authors = majority_named_accuracy(clusters, data.y_test, *named)
    selection = majority_named_accuracy(clusters[first], data.y_test[first], *named)["overall"]
    return {**ours, "dead_outputs": float(dead_outputs(clusters, model.n_clusters)), "authors_selection": selection,
            **{f"authors_{key}": value for key, value in authors.items()}}


def authors_protocol(curve: list[dict[str, float]]) -> dict[str, float]:
    """The authors' result from a learning curve: the scores of the epoch with the highest ``authors_selection``
    (the first such epoch, as their checkpoint saver replaces only a better one), and that epoch (from 1)."""
    if not curve:
        raise ValueError("curve must hold the scores of at least one epoch, got none")
    best = max(range(len(curve)), key=lambda i: (curve[i]["authors_selection"], -i))
    return {"authors_overall": curve[best]["authors_overall"], "authors_masked": curve[best]["authors_masked"],
            "authors_labelled": curve[best]["authors_labelled"], "authors_epoch": float(best + 1)}


def run_scores(curve: list[dict[str, float]]) -> dict[str, float]:
    """One run's stage: the last epoch's scores under our protocol and its dead outputs, the authors'
    protocol (``authors_protocol``), and every epoch's scores as ``epoch<e>_<key>``."""
    last = curve[-1]
    return {**{key: last[key] for key in ("overall", "masked", "labelled", "dead_outputs")},
            **authors_protocol(curve),
            **{f"epoch{e}_{key}": value for e, scores in enumerate(curve, start=1) for key, value in scores.items()}}


def curve_from(metrics: dict[str, float], prefix: str = "epoch") -> dict[str, list[float]]:
    """Per key, its values after epochs 1, 2, … from flat metrics named ``<prefix><e>_<key>``: a run's
    stage (``prefix="epoch"``) or a record (``prefix="gmdgm_curve_epoch"``). ``{}`` when there are none."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)_(.+)$")
    found: dict[str, dict[int, float]] = {}
    for name, value in metrics.items():
        if match := pattern.match(name):
            found.setdefault(match[2], {})[int(match[1])] = value
    return {key: [values[e] for e in sorted(values)] for key, values in found.items()}


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


def record_curves(records: list[RunRecord]) -> dict[str, dict[int, dict[str, list[float]]]]:
    """The learning curves stored in run records: model kind → record seed → quantity (``overall_accuracy``,
    ``masked_accuracy``, ``labelled_accuracy``, ``dead_outputs``) → its value after epochs 1, 2, …
    Records without a curve are skipped; a later record of a seed replaces an earlier one."""
    curves: dict[str, dict[int, dict[str, list[float]]]] = {}
    for record in records:
        for kind in NAMES:
            if curve := curve_from(record.metrics, f"{kind}_curve_epoch"):
                curves.setdefault(kind, {})[record.seed] = curve
    return curves


def plateau_epoch(values: list[float], tolerance: float = 1.0, patience: int = 3) -> int | None:
    """The first epoch (from 1) that no later epoch beats by more than ``tolerance``, provided at least
    ``patience`` epochs follow it; ``None`` while the curve may still be rising (too few epochs after)."""
    for epoch in range(1, len(values) - patience + 1):
        if max(values[epoch:]) - values[epoch - 1] <= tolerance:
            return epoch
    return None


def accuracy_metrics(scores: dict[str, list[dict[str, float]]], prefix: str = "", *,
                     curve: bool = False) -> dict[str, float]:
    """Flat metrics for a run record, means and standard deviations over seeds:
    ``<prefix><kind>_<overall|masked|labelled>_accuracy`` (our protocol, last epoch), ``<kind>_dead_outputs``
    (outputs no test image reaches), ``<kind>_authors_<overall|masked|labelled>_accuracy`` and
    ``<kind>_authors_epoch`` (the authors' protocol, ``authors_protocol``); with ``curve``, the mean over
    seeds after every epoch, ``<kind>_curve_epoch<e>_<overall|masked|labelled>_accuracy`` and
    ``<kind>_curve_epoch<e>_dead_outputs``; with both models, ``<prefix>masked_gap`` (GM-DGM minus M2
    on the masked classes, mean over seeds) and ``<prefix>masked_gap_min`` (the smallest per-seed gap).
    A quantity missing from a seed's scores (a stage stored before it was measured) is left out."""
    metrics = {}
    names = {**{key: f"{key}_accuracy" for key in ("overall", "masked", "labelled")}, "dead_outputs": "dead_outputs",
             **{f"authors_{key}": f"authors_{key}_accuracy" for key in ("overall", "masked", "labelled")},
             "authors_epoch": "authors_epoch"}
    for kind, runs in scores.items():
        for key, name in names.items():
            if not all(key in run for run in runs):
                continue
            values = [run[key] for run in runs]
            metrics[f"{prefix}{kind}_{name}"] = statistics.fmean(values)
            metrics[f"{prefix}{kind}_{name}_std"] = spread(values)
        if curve:
            curves = [curve_from(run) for run in runs]
            epochs = min(len(c.get("overall", [])) for c in curves)
            for key in ("overall", "masked", "labelled", "dead_outputs"):
                name = names[key]
                for e in range(epochs):
                    metrics[f"{prefix}{kind}_curve_epoch{e + 1}_{name}"] = statistics.fmean(c[key][e] for c in curves)
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
                       stand_in_scores: dict[str, list[dict[str, float]]] | None = None, *,
                       curve: bool = False) -> dict[str, float]:
    """The record's metrics: the dataset's, then the stand-in's under the ``prototypes_`` prefix; the
    dataset's learning curves too with ``curve`` (``accuracy_metrics``)."""
    metrics = accuracy_metrics(scores, curve=curve)
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
    """Train the model ``job`` names, scoring it after every epoch, on one thread when on the CPU; what a
    run's stage stores is ``run_scores`` of that curve (the trained model stays in the job's checkpoint)."""
    data = load_data(job.config, job.seed)
    on_cpu = data.X_unlabelled.device.type == "cpu"
    curve: list[dict[str, float]] = []
    with torch_threads(1) if on_cpu else contextlib.nullcontext():
        train_model(job.kind, data, job.config, seed=job.seed, checkpoint=job.checkpoint,
                    desc=f"{NAMES[job.kind]}, seed {job.seed}", curve=curve)
    return run_scores(curve)


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
    return Study(config, experiment_metrics(dataset.scores, stand_in.scores if stand_in else None,
                                            curve=config.record_curve), dataset, stand_in)


def run_experiment(config: Config, state: RunState, workers: int | None = None) -> dict[str, float]:
    """The record's metrics (``experiment_metrics``) of ``study``."""
    return study(config, state, workers).metrics
