"""Training, evaluation and the α sweep, shared by the notebook and ``python -m rfy run debiasing``."""
from __future__ import annotations

import contextlib
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from rfy.checkpoint import RunState
from rfy.data import to_unit_interval
from rfy.debiasing.config import Config
from rfy.debiasing.data import BiasedData, make_biased_digits
from rfy.debiasing.losses import classifier_loss, debiasing_loss
from rfy.debiasing.model import DBVAE, make_dbvae
from rfy.debiasing.resampling import effective_sample_size, resampled_order, sampling_weights
from rfy.progress import progress
from rfy.runtime import seed_everything, select_device, torch_threads

STANDARD = "standard classifier"
NO_RESAMPLING = "DB-VAE, uniform sampling"
#: CPU threads for the digits models (see ``train_model``).
DIGITS_THREADS = 1
#: In full mode, a DB-VAE warns when an epoch's positives are drawn with an effective sample size below this
#: fraction of them: the epoch is then spent on a few faces, and a rare group larger than that fraction cannot
#: be what it over-samples. On structureless latents with ``k = 8`` the paper's α = 0.1 and 0.05 stay above it,
#: α = 0.01 and 0.001 fall below (``tests/test_debiasing.py`` checks both).
ESS_WARNING_FRACTION = 0.05


def method_name(alpha: float | None) -> str:
    return NO_RESAMPLING if alpha is None else f"DB-VAE, α = {alpha:g}"


def load_data(config: Config) -> BiasedData:
    """The reduced digits stand-in, or CelebA faces and Imagenette non-faces at 64×64 (full mode)."""
    if config.dataset == "digits":
        data = make_biased_digits(rare_fraction=config.rare_fraction,
                                  negative_dark_fraction=config.negative_dark_fraction, seed=config.seed)
    else:
        from rfy.debiasing.faces import load_face_detection_data
        data = load_face_detection_data(config)
    return data.to(select_device(config.device))


@torch.no_grad()
def positive_latent_means(model: DBVAE, X: torch.Tensor, index: torch.Tensor | None = None,
                          batch_size: int = 1024) -> torch.Tensor:
    """``μ(x)`` of the rows ``index`` of ``X`` (all rows by default), in evaluation mode and batches.

    Rows are gathered batch by batch, so the selection is never copied whole.
    """
    model.eval()
    index = torch.arange(len(X), device=X.device) if index is None else index.to(X.device)
    return torch.cat([model.encode(to_unit_interval(X[batch]))[1] for batch in index.split(batch_size)])


def epoch_order(model: DBVAE, data: BiasedData, alpha: float | None, config: Config,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """This epoch's example order, and the sampling weights of the positives it was drawn with:
    uniform, or by latent rarity (recomputed now from the current encoder)."""
    positives = torch.nonzero(data.y_train.cpu() == 1).flatten()
    negatives = torch.nonzero(data.y_train.cpu() == 0).flatten()
    if alpha is None:
        weights = torch.full((len(positives),), 1 / len(positives))
    else:
        means = positive_latent_means(model, data.X_train, positives).cpu()
        weights = sampling_weights(means, alpha=alpha, bins=config.bins, rule=config.weighting)
    return resampled_order(positives, negatives, weights, generator), weights


def warn_if_concentrated(weights: torch.Tensor, alpha: float, epoch: int) -> bool:
    """Warn (``RuntimeWarning``) when Kish's effective sample size ``1 / Σ W(x)²`` of this epoch's sampling
    ``weights`` is below ``ESS_WARNING_FRACTION`` of the positives; returns whether it warned."""
    ess = effective_sample_size(weights)
    if ess >= ESS_WARNING_FRACTION * len(weights):
        return False
    warnings.warn(f"DB-VAE with alpha = {alpha:g}: epoch {epoch} draws its positives with an effective sample "
                  f"size of {ess:,.0f} of {len(weights):,} ({ess / len(weights):.2%}), below "
                  f"{ESS_WARNING_FRACTION:.0%}: the resampling spends the epoch on a few faces. A larger alpha, or "
                  "fewer latent dimensions, spreads it over more.", RuntimeWarning,
                  stacklevel=3)
    return True


def resampling_summary(weights: torch.Tensor, data: BiasedData) -> dict[str, float]:
    """What one epoch's weights do: effective sample size (count and fraction of the positives) and
    the share of the probability that goes to the rare groups (known here only for evaluation)."""
    groups = data.group_train[data.y_train == 1].cpu()
    rare = torch.isin(groups, torch.tensor(data.rare_groups))
    ess = effective_sample_size(weights)
    return {"ess": ess, "ess_fraction": ess / len(weights), "rare_share": float(weights[rare].sum()),
            "rare_fraction": float(rare.float().mean())}


def train_model(data: BiasedData, config: Config, *, debias: bool, alpha: float | None = None,
                seed: int = 0, desc: str = "", history: list[dict[str, float]] | None = None) -> DBVAE:
    """Train the standard classifier (``debias=False``) or a DB-VAE with sampling parameter ``alpha``.

    If ``history`` is a list, one ``resampling_summary`` per epoch is appended to it (uniform
    sampling for the standard classifier and ``alpha=None``). In full mode a DB-VAE whose resampling
    concentrates on fewer than ``ESS_WARNING_FRACTION`` of the positives warns (``warn_if_concentrated``),
    once per model. The digits models are tiny, so they
    train on one CPU thread (``DIGITS_THREADS``): a second thread only adds synchronisation, which
    on a busy machine costs far more than it saves, and one pinned count gives a seed the same run
    everywhere.
    """
    with training_threads(config):
        return _train_model(data, config, debias=debias, alpha=alpha, seed=seed, desc=desc, history=history)


def _train_model(data: BiasedData, config: Config, *, debias: bool, alpha: float | None, seed: int, desc: str,
                 history: list[dict[str, float]] | None) -> DBVAE:
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    model, optimizer = model_and_optimizer(tuple(data.X_train.shape[1:]), config, data.X_train.device)
    uniform = torch.full((int((data.y_train == 1).sum()),), 1 / int((data.y_train == 1).sum()))
    watch = debias and alpha is not None and config.mode == "full"  # warn once per model, in full mode only
    for epoch in progress(range(config.epochs), desc=desc, unit="epoch"):
        if debias:
            order, weights = epoch_order(model, data, alpha, config, generator)
            if watch and warn_if_concentrated(weights, alpha, epoch):
                watch = False
        else:
            order, weights = torch.randperm(len(data.y_train), generator=generator), uniform
        if history is not None:
            history.append({"epoch": float(epoch), **resampling_summary(weights, data)})
        model.train()
        for batch in order.to(data.X_train.device).split(config.batch_size):
            train_step(model, optimizer, data.X_train[batch], data.y_train[batch], config, debias=debias)
    return model


def training_threads(config: Config) -> contextlib.AbstractContextManager:
    """The CPU threads a model of ``config`` trains on: ``DIGITS_THREADS`` for the digits, torch's default otherwise."""
    return torch_threads(DIGITS_THREADS) if config.dataset == "digits" else contextlib.nullcontext()


def model_and_optimizer(image_shape: tuple[int, ...], config: Config,
                        device: torch.device) -> tuple[DBVAE, torch.optim.Optimizer]:
    """A fresh DB-VAE for images of ``image_shape`` on ``device`` (``make_dbvae``), and its Adam optimiser."""
    model = make_dbvae(image_shape, config.latent_dim, config.hidden).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


def train_step(model: DBVAE, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               config: Config, *, debias: bool) -> torch.Tensor:
    """One Adam step on a batch: the DB-VAE objective ``debiasing_loss`` (classification of every image,
    VAE terms on the positives) when ``debias``, else the classifier's cross-entropy alone; bfloat16
    autocast on CUDA, full precision on the CPU. Returns the loss, detached."""
    x = to_unit_interval(images)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        if debias:
            logit, x_hat, mean, logvar = model(x)
            loss = debiasing_loss(logit, labels, x, x_hat, mean, logvar, c1=config.c1, c2=config.c2, c3=config.c3)
        else:
            loss = classifier_loss(model.encode(x)[0], labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: nn.Module, data: BiasedData) -> dict[str, float]:
    """Accuracy (%) on each positive group and on negatives; mean and variance over the groups."""
    model.eval()
    logits = torch.cat([model.encode(to_unit_interval(batch))[0] for batch in data.X_test.split(1024)])
    correct = ((logits > 0).long() == data.y_test).float()
    groups = [100 * float(correct[data.group_test == g].mean()) for g in range(len(data.group_names))]
    return {**{name: acc for name, acc in zip(data.group_names, groups)},
            "negatives": 100 * float(correct[data.y_test == 0].mean()),
            "mean": statistics.fmean(groups), "variance": statistics.pvariance(groups)}


@dataclass
class SweepResult:
    """Per method, one evaluation dict per seed, and one training history (a summary per epoch) per seed."""

    scores: dict[str, list[dict[str, float]]]
    histories: dict[str, list[list[dict[str, float]]]] = field(default_factory=dict)

    def mean(self, method: str, key: str) -> float:
        return statistics.fmean(run[key] for run in self.scores[method])

    def std(self, method: str, key: str) -> float:
        values = [run[key] for run in self.scores[method]]
        return statistics.stdev(values) if len(values) > 1 else 0.0


def method_plans(config: Config) -> list[tuple[str, bool, float | None]]:
    """``(name, debias, alpha)`` of every method the sweep trains: the standard classifier, a DB-VAE
    without resampling, a DB-VAE per α."""
    return [(STANDARD, False, None), (NO_RESAMPLING, True, None)] + \
        [(method_name(alpha), True, alpha) for alpha in config.alphas]


def alpha_sweep(config: Config, data: BiasedData | None = None) -> SweepResult:
    """The standard classifier, a DB-VAE without resampling, and a DB-VAE per α, for every seed."""
    data = data or load_data(config)
    plans = method_plans(config)
    scores: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in plans}
    histories: dict[str, list[list[dict[str, float]]]] = {name: [] for name, _, _ in plans}
    for seed in config.seeds:
        for name, debias, alpha in plans:
            history: list[dict[str, float]] = []
            model = train_model(data, config, debias=debias, alpha=alpha, seed=seed, desc=f"{name}, seed {seed}",
                                history=history)
            scores[name].append(evaluate(model, data))
            histories[name].append(history)
    return SweepResult(scores, histories)


def metric_prefix(method: str) -> str:
    """The metric-key prefix of a method: ``standard``, ``dbvae_uniform`` or ``dbvae_alpha_<α>``."""
    return {STANDARD: "standard", NO_RESAMPLING: "dbvae_uniform"}.get(method) or \
        method.replace("DB-VAE, α = ", "dbvae_alpha_")


def sweep_metrics(result: SweepResult, rare_groups: tuple[int, ...], group_names: tuple[str, ...]) -> dict[str, float]:
    """Flat metrics for a run record, per method and averaged over seeds: mean accuracy, variance,
    accuracy on the rare and on the common groups, on negatives, and the resampling's effective
    sample size as a fraction of the positives (its smallest epoch, and the last epoch)."""
    common_groups = [g for g in range(len(group_names)) if g not in rare_groups]
    metrics = {}
    for method in result.scores:
        key = metric_prefix(method)
        metrics[f"{key}_mean_accuracy"] = result.mean(method, "mean")
        metrics[f"{key}_variance"] = result.mean(method, "variance")
        metrics[f"{key}_rare_accuracy"] = statistics.fmean(result.mean(method, group_names[g]) for g in rare_groups)
        metrics[f"{key}_common_accuracy"] = statistics.fmean(result.mean(method, group_names[g]) for g in common_groups)
        metrics[f"{key}_negatives_accuracy"] = result.mean(method, "negatives")
        histories = result.histories.get(method)
        if histories:
            metrics[f"{key}_ess_fraction_min"] = statistics.fmean(min(h["ess_fraction"] for h in run)
                                                                  for run in histories)
            metrics[f"{key}_ess_fraction_last"] = statistics.fmean(run[-1]["ess_fraction"] for run in histories)
            metrics[f"{key}_rare_share_last"] = statistics.fmean(run[-1]["rare_share"] for run in histories)
    return metrics


@dataclass
class SweepRun:
    """One run of the chapter: its data, the sweep trained in this session (``None`` when the stage had
    finished in an earlier session) and the metrics the run record stores."""

    data: BiasedData
    sweep: SweepResult | None
    metrics: dict[str, float]


def run_sweep(config: Config, state: RunState, data: BiasedData | None = None) -> SweepRun:
    """The α sweep as one resumable stage: the experiment the command line and the notebook run."""
    data = data or load_data(config)
    trained: list[SweepResult] = []

    def sweep(_: Path) -> dict[str, float]:
        trained.append(alpha_sweep(config, data))
        return sweep_metrics(trained[0], data.rare_groups, data.group_names)

    metrics = state.stage("sweep", sweep)
    return SweepRun(data, trained[0] if trained else None, metrics)


def run_experiment(config: Config, state: RunState) -> dict[str, float]:
    """The metrics of ``run_sweep``, which a run record stores."""
    return run_sweep(config, state).metrics
