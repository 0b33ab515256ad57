"""The chapter's experiments, shared by the notebook and ``python -m rfy run neural-ode``.

Each function takes the chapter ``Config`` and returns plain numbers (and the trained model where
the notebook wants to plot it). ``study`` chains them as resumable stages and keeps what the notebook
plots; ``run_experiment`` returns its metrics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import make_circles
from torch import nn

from rfy.augment import random_crop
from rfy.checkpoint import ResumableLoop, RunState
from rfy.data import load_digits, load_mnist, to_unit_interval
from rfy.neural_ode.adjoint import gradient_differences, memory_versus_steps
from rfy.neural_ode.classifiers import ConvDynamics, count_parameters, make_odenet, make_resnet, ode_block_of
from rfy.neural_ode.claims import GRADIENT_CHECK_TOL
from rfy.neural_ode.cnf import CNF, MLPDynamics
from rfy.neural_ode.config import SPIRAL_TIMES, SPIRAL_WINDOW, TABLE2_TIMES, TABLE2_WINDOW, Config
from rfy.neural_ode.latent import LatentODE, RNNBaseline, Spirals, held_out_rmse, make_spirals, predictive_rmse
from rfy.progress import progress
from rfy.runtime import seed_everything, select_device

NUM_CLASSES = 10
SEQUENCE_MODELS = ("latent ODE", "RNN", "RNN on a grid")
#: The paper's Table 2 compares these two, each trained on every observation count of ``table2_observed``.
TABLE2_MODELS = ("latent ODE", "RNN")
#: Held-out spirals of the Table 2 part, drawn with the training ones and scored by ``predictive_rmse``.
TABLE2_TEST_SPIRALS = 100
#: Turns each Table 2 spiral makes over its 200 grid times: half a turn observed, half a turn predicted.
TABLE2_TURNS = 1.0


@dataclass
class ImageData:
    """Train and test tensors, already on the device the models train on."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_channels(self) -> int:
        return self.X_train.shape[1]


@dataclass
class ClassifierResult:
    """A trained classifier and what it measured."""

    name: str
    model: nn.Module
    test_accuracy: float
    params: int
    train_seconds: float
    loss_history: list[float] = field(default_factory=list)

    @property
    def test_error_pct(self) -> float:
        return 100 * (1 - self.test_accuracy)


def load_image_data(config: Config) -> ImageData:
    """Digits (8×8, no download) in reduced mode, MNIST (28×28) in full mode; pixels in [0, 1]."""
    device = select_device(config.device)
    if config.dataset == "digits":
        parts = (*load_digits("train", seed=config.seed), *load_digits("test", seed=config.seed))
    else:
        parts = (*load_mnist("train"), *load_mnist("test"))
    X_train, y_train, X_test, y_test = parts
    as_float = lambda X: to_unit_interval(X.to(device))
    return ImageData(as_float(X_train), y_train.to(device), as_float(X_test), y_test.to(device))


def build_classifier(kind: str, config: Config, in_channels: int, blocks: int | None = None) -> nn.Module:
    """``"odenet"`` or ``"resnet"`` (with ``blocks`` residual blocks) sized by ``config``."""
    downsample = config.dataset != "digits"
    if kind == "odenet":
        return make_odenet(in_channels, config.channels, NUM_CLASSES, downsample=downsample,
                           solver=config.solver, tol=config.tol, steps=config.solver_steps,
                           adjoint=config.adjoint)
    if kind == "resnet":
        return make_resnet(in_channels, config.channels, NUM_CLASSES, downsample=downsample,
                           blocks=blocks or config.resnet_blocks)
    raise ValueError(f"kind must be 'odenet' or 'resnet', got {kind!r}")


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``X`` classified as ``y``, evaluated in batches."""
    model.eval()
    correct = sum(int((model(X[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
                  for i in range(0, len(X), batch_size))
    return correct / len(X)


def make_optimizer(model: nn.Module, config: Config) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with momentum 0.9 or Adam; the rate decays ×0.1 at ``lr_milestones`` (``"step"``, the
    paper's) or along a cosine to zero over the epochs (``"cosine"``). Schedules step once per epoch.
    """
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.lr_schedule == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), 0.1)


def classifier_on_device(model: nn.Module, config: Config, device: torch.device) -> tuple[
        nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """``model`` moved to ``device``, with its optimiser and learning-rate schedule (``make_optimizer``)."""
    model = model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed image size: let cuDNN pick its fastest kernels
    return (model, *make_optimizer(model, config))


def classifier_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor, *,
                    augment: bool) -> torch.Tensor:
    """One optimisation step on the cross-entropy $-\\frac{1}{B}\\sum_i \\log p_\\theta(y_i \\mid x_i)$ of a batch
    (each image randomly shifted by up to 4 pixels when ``augment``); returns the batch's loss, detached."""
    X = random_crop(X, 4, mode="zeros") if augment else X
    loss = F.cross_entropy(model(X), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_classifier(name: str, model: nn.Module, data: ImageData, config: Config,
                     checkpoint: Path | None = None) -> ClassifierResult:
    """Minimise cross-entropy for ``config.epochs`` epochs; checkpoint and resume every epoch."""
    model, optimizer, scheduler = classifier_on_device(model, config, data.X_train.device)
    loop = ResumableLoop(checkpoint, {"model": model, "optimizer": optimizer, "scheduler": scheduler}, rng=True)
    saved = loop.resume() or {"epoch": 0, "history": [], "seconds": 0.0}
    start_epoch, history, seconds = saved["epoch"], saved["history"], saved["seconds"]
    n = len(data.X_train)
    for epoch in progress(range(start_epoch, config.epochs), desc=f"{name}", total=config.epochs - start_epoch,
                          unit="epoch"):
        began = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=data.X_train.device)
        running = torch.zeros((), device=data.X_train.device)
        for i in range(0, n, config.batch_size):
            batch = order[i : i + config.batch_size]
            loss = classifier_step(model, optimizer, data.X_train[batch], data.y_train[batch], augment=config.augment)
            running += loss * len(batch)
        scheduler.step()
        history.append(float(running) / n)
        seconds += time.perf_counter() - began
        loop.save(epoch=epoch + 1, history=history, seconds=seconds)
    return ClassifierResult(name, model, accuracy(model, data.X_test, data.y_test), count_parameters(model),
                            seconds, history)


def classifier_plans(config: Config) -> list[tuple[str, str, int | None]]:
    """``(name, kind, blocks)`` of every classifier ``compare_classifiers`` trains, in order."""
    return [("ODE-Net", "odenet", None), (f"ResNet-{config.resnet_blocks}", "resnet", config.resnet_blocks),
            (f"ResNet-{config.small_resnet_blocks}", "resnet", config.small_resnet_blocks)]


def compare_classifiers(config: Config, data: ImageData, state: RunState | None = None) -> list[ClassifierResult]:
    """ODE-Net, the paper's 6-block ResNet, and a ResNet with about the ODE-Net's parameter count."""
    results = []
    for name, kind, blocks in classifier_plans(config):
        seed_everything(config.seed)
        model = build_classifier(kind, config, data.in_channels, blocks)
        checkpoint = state.workdir / f"{kind}{blocks or ''}.pt" if state else None
        results.append(train_classifier(name, model, data, config, checkpoint))
    return results


@torch.no_grad()
def nfe_versus_tolerance(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                         tolerances: tuple[float, ...]) -> list[dict[str, float]]:
    """Evaluate a trained ODE-Net with dopri5 at each tolerance: NFE per forward pass and accuracy."""
    block = ode_block_of(model)
    solver, tol, steps = block.solver, block.tol, block.steps
    rows = []
    for tolerance in tolerances:
        block.set_solver("dopri5", tol=tolerance)
        block.reset_nfe()
        model.eval()
        correct = int((model(X).argmax(1) == y).sum())
        rows.append({"tol": tolerance, "nfe": block.nfe, "accuracy": correct / len(X)})
    block.set_solver(solver, tol=tol, steps=steps)
    return rows


def adjoint_checks(config: Config, data: ImageData) -> dict[str, object]:
    """Saved-tensor memory of backprop vs adjoint per step count, and adjoint-vs-backprop gradient error."""
    seed_everything(config.seed)
    dynamics = ConvDynamics(config.channels).to(data.X_train.device)
    h0 = torch.randn(32, config.channels, 8, 8, device=data.X_train.device)
    memory = memory_versus_steps(dynamics, h0, config.memory_steps)
    small = MLPDynamics(3, 16).double()
    gradients = gradient_differences(small, torch.randn(8, 3, dtype=torch.float64), tol=GRADIENT_CHECK_TOL)
    return {"memory": memory, "gradient_relative_error": gradients["relative"],
            "gradient_max_abs_difference": gradients["max_abs"], "gradient_max_abs": gradients["max_gradient"]}


def two_circles(n: int, seed: int) -> torch.Tensor:
    """``n`` points from scikit-learn's two concentric circles, scaled to about unit radius."""
    points, _ = make_circles(n_samples=n, noise=0.06, factor=0.5, random_state=seed)
    return torch.as_tensor(points, dtype=torch.float32) * 2


@dataclass
class CNFResult:
    """A trained flow, its training losses, and held-out NLL before and after training."""

    model: CNF
    nll_history: list[float]
    initial_test_nll: float
    final_test_nll: float
    train_seconds: float


@torch.no_grad()
def evaluate_nll(flow: CNF, x: torch.Tensor) -> float:
    """Mean negative log-likelihood ``−mean log p(x)`` (no graph kept)."""
    return float(-flow.log_prob(x).mean())


def build_cnf(config: Config) -> CNF:
    """The flow of ``config``: an MLP of width ``cnf_width`` as the dynamics of 2-D points."""
    return CNF(MLPDynamics(2, config.cnf_width), solver=config.cnf_solver, tol=config.cnf_tol, steps=config.cnf_steps)


def cnf_step(flow: CNF, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    """One maximum-likelihood step on a batch: minimise $-\\frac{1}{B}\\sum_i \\log p(x_i)$; returns the loss,
    detached."""
    loss = -flow.log_prob(x).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_cnf(config: Config, checkpoint: Path | None = None) -> CNFResult:
    """Maximum likelihood: minimise ``−mean log p(x)`` over batches of two-circles points.

    All training points are drawn once, up front, and live on the device.
    """
    seed_everything(config.seed)
    device = select_device(config.device)
    flow = build_cnf(config).to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=config.cnf_lr)
    train = two_circles(config.cnf_iters * config.cnf_batch, seed=config.seed).to(device)
    test = two_circles(1000, seed=config.seed + 10_000).to(device)
    loop = ResumableLoop(checkpoint, {"model": flow, "optimizer": optimizer})
    saved = loop.resume()
    history, initial, seconds = (saved["history"], saved["initial"], saved["seconds"]) if saved \
        else ([], evaluate_nll(flow, test), 0.0)
    began = time.perf_counter()
    for step in progress(range(len(history), config.cnf_iters), desc="CNF", total=config.cnf_iters - len(history)):
        loss = cnf_step(flow, optimizer, train[step * config.cnf_batch : (step + 1) * config.cnf_batch])
        history.append(float(loss))
        if (step + 1) % 100 == 0:
            loop.save(history=history, initial=initial, seconds=seconds + time.perf_counter() - began)
    return CNFResult(flow, history, initial, evaluate_nll(flow, test), seconds + time.perf_counter() - began)


@dataclass
class LatentResult:
    """The trained sequence models, the held-out spirals, and each model's RMSE on them."""

    models: dict[str, nn.Module]
    test_data: Spirals
    rmse: dict[str, dict[str, float]]
    loss_history: dict[str, list[float]]


def spiral_splits(config: Config, device: torch.device) -> tuple[Spirals, Spirals]:
    """``n_spirals`` training spirals and 100 held-out ones, on ``device``."""
    spirals = make_spirals(config.n_spirals + 100, n_times=SPIRAL_TIMES, window=SPIRAL_WINDOW,
                           n_observed=config.n_observed, seed=config.seed).to(device)
    return spirals.subset(slice(0, config.n_spirals)), spirals.subset(slice(config.n_spirals, None))


def build_sequence_models(config: Config, device: torch.device) -> dict[str, nn.Module]:
    """The latent ODE and the two RNN baselines, by name (``SEQUENCE_MODELS``), in the order they train."""
    models = (LatentODE(latent_dim=config.latent_dim, solver=config.latent_solver), RNNBaseline(),
              RNNBaseline(on_grid=True))
    return {name: model.to(device) for name, model in zip(SEQUENCE_MODELS, models)}


def sequence_step(model: nn.Module, optimizer: torch.optim.Optimizer, values: torch.Tensor, times: torch.Tensor,
                  observed: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """One full-batch step on a sequence model's own loss (the latent ODE's negative ELBO, or the RNN's
    squared error) over every training spiral; returns the loss, detached."""
    loss = model.loss(values, times, observed, grid)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_latent_models(config: Config, checkpoint: Path | None = None) -> LatentResult:
    """Fit a latent ODE and two RNN baselines to the same spirals; RMSE on held-out times of new spirals."""
    device = select_device(config.device)
    train, test = spiral_splits(config, device)
    values, times = train.observations()
    window_grid = train.times[: SPIRAL_WINDOW]
    seed_everything(config.seed)
    models = build_sequence_models(config, device)
    # Saved after each model finishes: a model not trained yet is saved (and restored) as it was built.
    loop = ResumableLoop(checkpoint, models)
    histories: dict[str, list[float]] = (loop.resume() or {"histories": {}})["histories"]
    for name, model in models.items():
        if name in histories:
            continue
        seed_everything(config.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.latent_lr)
        histories[name] = []
        for _ in progress(range(config.latent_iters), desc=name):
            loss = sequence_step(model, optimizer, values, times, train.observed, window_grid)
            histories[name].append(float(loss))
        loop.save(histories=histories)
    return LatentResult(models, test, predict_rmse(models, test), histories)


@torch.no_grad()
def predict_spirals(model: nn.Module, data: Spirals) -> torch.Tensor:
    """Each model's prediction [N, T, 2] on the whole grid from the observed points (latent mean)."""
    values, times = data.observations()
    model.eval()
    if isinstance(model, LatentODE):
        return model(values, times, data.times, sample=False)[0]
    return model(values, times, data.times)


def predict_rmse(models: dict[str, nn.Module], data: Spirals) -> dict[str, dict[str, float]]:
    """Interpolation and extrapolation RMSE of every model on ``data``."""
    return {name: held_out_rmse(predict_spirals(model, data), data) for name, model in models.items()}


def table2_splits(config: Config, n_observed: int, device: torch.device) -> tuple[Spirals, Spirals]:
    """The paper's spirals (§5.1): ``table2_spirals`` for training and ``TABLE2_TEST_SPIRALS`` held out, exactly
    half of all clockwise, each observed at ``n_observed`` of the first ``TABLE2_WINDOW`` grid times and
    predicted at the ``TABLE2_TIMES − TABLE2_WINDOW`` after them.

    The spirals and their noise are the same for every ``n_observed`` of a seed; only the observed times
    differ (they are drawn last).
    """
    spirals = make_spirals(config.table2_spirals + TABLE2_TEST_SPIRALS, n_times=TABLE2_TIMES, window=TABLE2_WINDOW,
                           n_observed=n_observed, turns=TABLE2_TURNS, noise=config.table2_noise, seed=config.seed,
                           exact_half=True).to(device)
    return spirals.subset(slice(0, config.table2_spirals)), spirals.subset(slice(config.table2_spirals, None))


def build_table2_model(name: str, config: Config, device: torch.device) -> nn.Module:
    """``"latent ODE"`` (``latent_dim``-d latent, its likelihood's σ the data's noise) or ``"RNN"`` (stepping
    through the observed times, the paper's baseline); both read the observations with a 25-unit GRU."""
    if name == "latent ODE":
        model = LatentODE(latent_dim=config.latent_dim, solver=config.latent_solver, obs_std=config.table2_noise)
    elif name == "RNN":
        model = RNNBaseline()
    else:
        raise ValueError(f"name must be one of {TABLE2_MODELS}, got {name!r}")
    return model.to(device)


@torch.no_grad()
def predict_after_window(model: nn.Module, data: Spirals) -> torch.Tensor:
    """Each model's prediction [N, T, 2] on the whole grid from the observed points, the latent mean for the
    latent ODE. The RNN steps through the observed times (as in training) and then through the grid times
    after the window; the window's unobserved times, which it never stepped through, are left NaN."""
    values, times = data.observations()
    model.eval()
    if isinstance(model, LatentODE):
        return model(values, times, data.times, sample=False)[0]
    future = data.times[data.window :].expand(len(values), -1)
    ahead = model(values, times, torch.cat([times, future], dim=1))[:, times.shape[1] :]
    prediction = torch.full_like(data.clean, float("nan"))
    prediction[:, data.window :] = ahead
    return prediction


def table2_key(name: str, n_observed: int) -> str:
    """``latent_ode_predictive_rmse_30obs``: the metric of one model at one observation count."""
    return f"{name.replace(' ', '_').lower()}_predictive_rmse_{n_observed}obs"


@dataclass
class Table2Result:
    """The Table 2 part: ``rmse[metric key]`` (``table2_key``) and each trained model's loss history."""

    rmse: dict[str, float]
    loss_history: dict[str, list[float]]
    train_seconds: float


def train_table2(config: Config, checkpoint: Path | None = None) -> Table2Result:
    """The paper's Table 2: for each observation count, a latent ODE and an RNN trained full-batch with Adam
    (``latent_lr``) for ``table2_iters`` steps on the same spirals, each model on its own loss (negative
    ELBO, squared error); predictive RMSE on the held-out spirals' 100 times after the window."""
    device = select_device(config.device)
    models: dict[str, nn.Module] = {}
    for n_observed in config.table2_observed:
        seed_everything(config.seed)
        for name in TABLE2_MODELS:
            models[table2_key(name, n_observed)] = build_table2_model(name, config, device)
    # Saved after each model finishes, with the RMSE it scored; a model not trained yet is saved as built.
    loop = ResumableLoop(checkpoint, models)
    saved = loop.resume() or {"histories": {}, "rmse": {}, "seconds": 0.0}
    histories, rmse, seconds = saved["histories"], saved["rmse"], saved["seconds"]
    for n_observed in config.table2_observed:
        train, test = table2_splits(config, n_observed, device)
        values, times = train.observations()
        window_grid = train.times[: train.window]
        for name in TABLE2_MODELS:
            key = table2_key(name, n_observed)
            if key in rmse:
                continue
            began = time.perf_counter()
            seed_everything(config.seed)
            model = models[key]
            optimizer = torch.optim.Adam(model.parameters(), lr=config.latent_lr)
            histories[key] = []
            for _ in progress(range(config.table2_iters), desc=f"{name}, {n_observed} points"):
                loss = sequence_step(model, optimizer, values, times, train.observed, window_grid)
                histories[key].append(float(loss))
            rmse[key] = predictive_rmse(predict_after_window(model, test), test)
            seconds += time.perf_counter() - began
            loop.save(histories=histories, rmse=rmse, seconds=seconds)
    return Table2Result(rmse, histories, seconds)


def table2_metrics(result: Table2Result) -> dict[str, float]:
    """``<model>_predictive_rmse_<n>obs`` for both models at every observation count, and the part's seconds."""
    return {**result.rmse, "table2_train_seconds": result.train_seconds}


def classifier_metrics(results: list[ClassifierResult], nfe_rows: list[dict[str, float]]) -> dict[str, float]:
    """Test error, parameters (millions) and training time of each classifier; NFE per tolerance."""
    metrics = {}
    for result, key in zip(results, ("odenet", "resnet", "small_resnet")):
        metrics[f"{key}_test_error_pct"] = result.test_error_pct
        metrics[f"{key}_params_m"] = result.params / 1e6
        metrics[f"{key}_train_seconds"] = result.train_seconds
    metrics.update({f"nfe_at_tol_{row['tol']:g}": row["nfe"] for row in nfe_rows})
    return metrics


def adjoint_metrics(checks: dict[str, object]) -> dict[str, float]:
    """Memory of both methods at the fewest and the most steps, and the gradient disagreement."""
    first, last = checks["memory"][0], checks["memory"][-1]
    return {"backprop_mb_at_max_steps": last["backprop_mb"], "backprop_mb_at_min_steps": first["backprop_mb"],
            "adjoint_mb_at_max_steps": last["adjoint_mb"], "adjoint_mb_at_min_steps": first["adjoint_mb"],
            "adjoint_gradient_relative_error": checks["gradient_relative_error"],
            "adjoint_gradient_max_abs_difference": checks["gradient_max_abs_difference"],
            "backprop_gradient_max_abs": checks["gradient_max_abs"]}


def cnf_metrics(result: CNFResult) -> dict[str, float]:
    return {"cnf_initial_test_nll": result.initial_test_nll, "cnf_final_test_nll": result.final_test_nll,
            "cnf_train_seconds": result.train_seconds}


def latent_metrics(result: LatentResult) -> dict[str, float]:
    """``<model>_<interpolation|extrapolation>_rmse`` for every sequence model."""
    return {f"{name.replace(' ', '_').lower()}_{key}": value
            for name, scores in result.rmse.items() for key, value in scores.items()}


@dataclass
class Study:
    """The chapter's experiment with what the notebook's figures need: ``metrics`` is ``run_experiment``'s,
    and each stage's results (its checks, trained models and histories). A stage finished in an earlier
    session of a resumed run, or not run (``table2_only`` runs the Table 2 part alone, without images),
    brings no results; they are then ``None``."""

    config: Config
    metrics: dict[str, float]
    data: ImageData | None
    adjoint: dict[str, object] | None = None
    classifiers: list[ClassifierResult] | None = None
    nfe_rows: list[dict[str, float]] | None = None
    flow: CNFResult | None = None
    latent: LatentResult | None = None
    table2: Table2Result | None = None


def study(config: Config, state: RunState) -> Study:
    """The chapter's experiments as resumable stages (adjoint checks, classifiers with NFE per tolerance, CNF,
    latent models, and the paper's Table 2 where ``table2_observed`` asks for it; that one alone with
    ``table2_only``); returns their metrics and results."""
    data = None if config.table2_only else load_image_data(config)
    found = Study(config, {}, data)

    def adjoint(_: Path) -> dict[str, float]:
        found.adjoint = adjoint_checks(config, data)
        return adjoint_metrics(found.adjoint)

    def classifiers(_: Path) -> dict[str, float]:
        found.classifiers = compare_classifiers(config, data, state)
        found.nfe_rows = nfe_versus_tolerance(found.classifiers[0].model, data.X_test[:1000], data.y_test[:1000],
                                              config.nfe_tolerances)
        return classifier_metrics(found.classifiers, found.nfe_rows)

    def cnf(checkpoint: Path) -> dict[str, float]:
        found.flow = train_cnf(config, checkpoint)
        return cnf_metrics(found.flow)

    def latent(checkpoint: Path) -> dict[str, float]:
        found.latent = train_latent_models(config, checkpoint)
        return latent_metrics(found.latent)

    def table2(checkpoint: Path) -> dict[str, float]:
        found.table2 = train_table2(config, checkpoint)
        return table2_metrics(found.table2)

    stages = {} if config.table2_only else {"adjoint": adjoint, "classifiers": classifiers, "cnf": cnf,
                                            "latent": latent}
    if config.table2_observed:
        stages["table2"] = table2
    for name, stage in stages.items():
        found.metrics.update(state.stage(name, stage))
    return found


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The metrics a run record stores: those of ``study``."""
    return study(config, state).metrics
