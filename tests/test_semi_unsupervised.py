"""Properties of the semi-unsupervised chapter: the bounds, the prior, the split, the evaluation, the runs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rfy.semi_unsupervised as su
from rfy.checkpoint import RunState
from rfy.errors import ConfigError
from rfy.semi_unsupervised.data import labelled_mask, make_semi_unsupervised
from rfy.semi_unsupervised.evaluation import UNMAPPED, accuracies, cluster_to_label
from rfy.semi_unsupervised.experiments import label_clusters, training_loss
from rfy.semi_unsupervised.model import make_model
from rfy.semi_unsupervised.objectives import class_prior, unlabelled_bound

TINY = dict(epochs=1, latent_dim=2, hidden=(16,), repeats=1, batch_size=50)
#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = TINY


def tiny_model(kind, x_dim=6, k=3, seed=0):
    torch.manual_seed(seed)
    return make_model(kind, x_dim, k, latent_dim=2, hidden=(8,), prior_y=torch.tensor([0.5, 0.3, 0.2]))


@pytest.mark.parametrize("kind", ["m2", "gmdgm"])
def test_batched_bounds_equal_one_class_at_a_time(kind):
    model = tiny_model(kind)
    x = torch.bernoulli(torch.full((5, 6), 0.4))
    batched = model.bounds_all_classes(x, sample=False)
    for y in range(3):
        one = model.bound(x, F.one_hot(torch.full((5,), y), 3).float(), sample=False)
        assert torch.allclose(batched[:, y], one, atol=1e-5)


@pytest.mark.parametrize("kind", ["m2", "gmdgm"])
def test_unlabelled_bound_is_the_q_weighted_labelled_bounds_plus_the_entropy(kind):
    model = tiny_model(kind)
    x = torch.bernoulli(torch.full((5, 6), 0.4))
    bounds = model.bounds_all_classes(x, sample=False)
    logits = model.class_logits(x)
    q = logits.softmax(-1)
    expected = (q * bounds).sum(-1) - (q * q.log()).sum(-1)
    assert torch.allclose(unlabelled_bound(logits, bounds), expected, atol=1e-5)
    # and it is a lower bound on log Σ_y exp L(x, y), reached when q(y|x) is the posterior
    assert torch.all(unlabelled_bound(logits, bounds) <= bounds.logsumexp(-1) + 1e-5)
    assert torch.allclose(unlabelled_bound(bounds, bounds), bounds.logsumexp(-1), atol=1e-5)
    with pytest.raises(ValueError, match="must match"):
        unlabelled_bound(logits[:, :2], bounds)


def exact_log_px(model, x):
    """log p(x) of a model with a 1-d latent, by quadrature over z on a fine grid."""
    z = torch.linspace(-12, 12, 6001)
    dz = float(z[1] - z[0])
    k = model.n_clusters
    log_terms = []
    for y in range(k):
        onehot = F.one_hot(torch.full((len(z),), y), k).float()
        mean, logvar = model.prior_z(onehot)
        log_pz = -0.5 * (math.log(2 * math.pi) + logvar + (z[:, None] - mean) ** 2 / logvar.exp()).sum(-1)
        logits = model.decode(z[:, None], onehot)
        log_px_z = -F.binary_cross_entropy_with_logits(logits[None].expand(len(x), -1, -1),
                                                       x[:, None].expand(-1, len(z), -1), reduction="none").sum(-1)
        log_terms.append(model.log_prior_y[y] + torch.logsumexp(log_pz + log_px_z, dim=-1) + math.log(dz))
    return torch.logsumexp(torch.stack(log_terms, -1), -1)


@pytest.mark.parametrize("kind", ["m2", "gmdgm"])
@torch.no_grad()
def test_the_unlabelled_elbo_lower_bounds_the_exact_log_likelihood(kind):
    torch.manual_seed(1)
    model = make_model(kind, 3, 2, latent_dim=1, hidden=(6,), prior_y=torch.tensor([0.7, 0.3]), mean_scale=2.0)
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    log_px = exact_log_px(model, x)
    many = x.repeat_interleave(20_000, dim=0)
    elbo = unlabelled_bound(model.class_logits(many), model.bounds_all_classes(many)).reshape(4, -1).mean(-1)
    assert torch.all(elbo <= log_px + 0.02), (elbo, log_px)
    assert torch.all(elbo > log_px - 5)  # a bound, not a meaningless number


def test_prior_gives_masked_classes_and_extra_clusters_their_share():
    counts = torch.tensor([10, 30, 20, 20, 20, 0, 0, 0, 0, 0])
    prior = class_prior(10, (5, 6, 7, 8, 9), counts, n_extra=3, unlabelled_mass=0.5)
    assert prior.shape == (13,) and float(prior.sum()) == pytest.approx(1.0, abs=1e-6)
    free = torch.tensor([5, 6, 7, 8, 9, 10, 11, 12])
    assert torch.allclose(prior[free], torch.full((8,), 0.5 / 8))
    assert torch.allclose(prior[:5], 0.5 * counts[:5] / 100)
    assert torch.allclose(class_prior(3, (), torch.tensor([1, 1, 2])), torch.tensor([0.25, 0.25, 0.5]))


def test_prior_of_a_config_is_the_papers():
    config = su.Config(**TINY, masked_classes=(0, 1, 2), extra_clusters=2)
    data = su.load_data(config)
    prior = su.experiments.prior_for(data, config)
    assert prior.shape == (12,) and torch.allclose(prior[[0, 1, 2, 10, 11]], torch.full((5,), 0.3 / 5))
    assert float(prior[3:10].sum()) == pytest.approx(0.7, abs=1e-6)


def test_split_is_reproducible_and_masks_exactly_the_chosen_classes():
    config = su.Config(masked_classes=(1, 4, 7), label_fraction=0.1)
    a, b, c = su.load_data(config, 3), su.load_data(config, 3), su.load_data(config, 4)
    assert torch.equal(a.X_labelled, b.X_labelled) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.X_labelled, c.X_labelled)
    assert set(a.y_labelled.tolist()) == {0, 2, 3, 5, 6, 8, 9}
    assert set(a.y_unlabelled.tolist()) == set(range(10)) and a.labelled_classes == (0, 2, 3, 5, 6, 8, 9)
    assert len(a.X_labelled) + len(a.X_unlabelled) + len(a.X_val) == 1347
    per_class = torch.bincount(a.y_labelled, minlength=10)
    assert all(8 <= int(per_class[k]) <= 12 for k in a.labelled_classes)


def test_split_parts_are_disjoint():
    X = torch.arange(300).reshape(300, 1, 1, 1)
    y = torch.arange(300) % 3
    data = make_semi_unsupervised(X, y, X[:5], y[:5], masked_classes=(2,), label_fraction=0.1,
                                  validation_fraction=0.2, seed=0, n_classes=3)
    ids = [set(part.flatten().tolist()) for part in (data.X_labelled, data.X_unlabelled, data.X_val)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(range(300)) and len(ids[2]) == 60 and len(ids[0]) == 16
    assert labelled_mask(y.numpy(), (2,), 0.001, 0).sum() == 2  # at least one label per unmasked class


def test_cluster_names_come_from_the_validation_split_only():
    clusters = torch.tensor([0, 0, 1, 1, 1, 3])
    labels = torch.tensor([4, 4, 2, 2, 5, 1])
    assert cluster_to_label(clusters, labels, n_clusters=5, n_classes=6).tolist() == [4, 2, UNMAPPED, 1, UNMAPPED]

    config = su.Config(**TINY)
    data = su.load_data(config)
    model = su.train_model("gmdgm", data, config)
    mapping = label_clusters(model, data)
    data.y_test = data.y_test[torch.randperm(len(data.y_test))]  # scramble the test labels
    assert torch.equal(label_clusters(model, data), mapping)
    data.y_val = torch.full_like(data.y_val, 7)  # while the validation labels decide the names
    assert set(label_clusters(model, data).tolist()) <= {7, UNMAPPED}


def test_accuracies_split_masked_and_labelled_classes():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 0])
    scores = accuracies(predicted, labels, masked_classes=(2,))
    assert scores == pytest.approx({"overall": 50.0, "masked": 0.0, "labelled": 75.0})


def test_config_validation_names_the_field_and_allowed_values():
    with pytest.raises(ConfigError, match=r"dataset must be one of \('digits', 'prototypes', 'fashion-mnist'\)"):
        su.Config(dataset="mnist")
    with pytest.raises(ConfigError, match="masked_classes"):
        su.Config(masked_classes=(3, 3))
    with pytest.raises(ConfigError, match="masked_classes"):
        su.Config(masked_classes=tuple(range(10)))
    with pytest.raises(ConfigError, match="label_fraction"):
        su.Config(label_fraction=0.0)
    with pytest.raises(ConfigError, match=r"models must .* \('m2', 'gmdgm'\)"):
        su.Config(models=("m3",))
    with pytest.raises(ConfigError, match="hidden"):
        su.Config(hidden=())
    with pytest.raises(ConfigError, match="stand_in must be True or False"):
        su.Config(stand_in="yes")
    full = su.Config.full()
    assert full.dataset == "fashion-mnist" and full.label_fraction == 120 / 5400 and full.latent_dim == 100
    assert full.hidden == (500, 500) and len(full.masked_classes) == 5 and su.Config().seeds == (0, 1, 2)


@pytest.mark.parametrize("kind", ["m2", "gmdgm"])
def test_a_few_training_steps_lower_the_loss(kind):
    config = su.Config(**TINY)
    data = su.load_data(config)
    model = su.experiments.build_model(kind, data, config)
    x_l = su.experiments.flat(data.X_labelled[:50]).round()
    y_l = data.y_labelled[:50]
    x_u = su.experiments.flat(data.X_unlabelled[:50]).round()

    def loss():
        torch.manual_seed(0)
        return training_loss(model, x_l, y_l, x_u, alpha=1.0)

    before = loss().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < before - 1.0


def test_run_experiment_end_to_end(tmp_path):
    config = su.Config(**{**TINY, "repeats": 2})
    metrics = su.run_experiment(config, RunState(tmp_path / "run", resume=False))
    for kind in ("m2", "gmdgm"):
        for key in ("overall", "masked", "labelled"):
            assert 0 <= metrics[f"{kind}_{key}_accuracy"] <= 100 and f"{kind}_{key}_accuracy_std" in metrics
    assert {p.metric for p in su.PAPER_NUMBERS} <= set(metrics)
    # the stand-in runs beside the digits with the same recipe, under its own prefix and stages
    assert 0 <= metrics["prototypes_gmdgm_masked_accuracy"] <= 100 and "prototypes_masked_gap_min" in metrics
    state = RunState(tmp_path / "run", resume=True)
    assert {"m2-seed0", "gmdgm-seed1", "prototypes-m2-seed0", "prototypes-gmdgm-seed1"} <= set(state.stages)
    assert [c.key for c in su.claims(metrics)] == [
        "m2-discovers-masked-digits", "m2-keeps-labelled-digits", "gmdgm-discovers-masked-digits",
        "gmdgm-keeps-labelled-digits", "stand-in-gmdgm-ahead", "stand-in-gmdgm-ahead-every-seed"]
    again = su.run_experiment(config, state)  # finished stages: not rerun
    assert again == metrics


def test_runs_trained_side_by_side_in_worker_processes_match_runs_trained_in_order(tmp_path):
    config = su.Config(**{**TINY, "repeats": 2, "epochs": 2})
    in_order = su.run_experiment(config, RunState(tmp_path / "one", resume=False), workers=1)
    side_by_side = su.run_experiment(config, RunState(tmp_path / "two", resume=False), workers=2)
    assert side_by_side == in_order
    found = su.study(config, RunState(tmp_path / "study", resume=False), workers=2)
    assert found.metrics == in_order
    comparison = found.comparison
    assert comparison.metrics() == {key: value for key, value in in_order.items() if not key.startswith(su.STAND_IN)
                                    and key in comparison.metrics()}
    assert set(comparison.models) == {"m2", "gmdgm"} and comparison.data.X_test.shape[0] > 0
    # the models read back from the checkpoints are the first seed's trained models: they give its scores
    for kind, model in comparison.models.items():
        scores = su.evaluate(model, comparison.data)
        assert scores == {key: comparison.scores[kind][0][key] for key in scores}
    assert found.stand_in is not None and found.stand_in.scores.keys() == comparison.scores.keys()
    assert sorted(path.name for path in (tmp_path / "two").glob("*.pt")) == sorted(
        f"{prefix}{kind}-seed{seed}.pt" for prefix in ("", "prototypes-") for kind in ("m2", "gmdgm") for seed in (0, 1))


def test_gap_metrics_are_per_seed_differences_on_the_masked_classes():
    scores = {"m2": [{"overall": 50, "masked": 20, "labelled": 90}, {"overall": 60, "masked": 40, "labelled": 92}],
              "gmdgm": [{"overall": 70, "masked": 50, "labelled": 88}, {"overall": 62, "masked": 45, "labelled": 90}]}
    assert su.masked_gaps(scores) == [30, 5]
    metrics = su.experiment_metrics(scores, scores)
    assert metrics["masked_gap"] == 17.5 and metrics["masked_gap_min"] == 5
    assert metrics["prototypes_masked_gap"] == 17.5 and metrics["m2_masked_accuracy"] == 30
    assert "masked_gap" not in su.experiment_metrics({"m2": scores["m2"]})


def reduced_metrics(**changes):
    metrics = {"m2_masked_accuracy": 45.0, "m2_labelled_accuracy": 93.0, "gmdgm_masked_accuracy": 50.0,
               "gmdgm_labelled_accuracy": 93.0, "prototypes_masked_gap": 28.0, "prototypes_masked_gap_min": 14.0}
    return {**metrics, **changes}


def test_claims_hold_on_good_metrics_and_fail_on_bad_ones():
    assert all(c.holds and c.why for c in su.claims(reduced_metrics()))
    bad = reduced_metrics(m2_masked_accuracy=20.0, gmdgm_labelled_accuracy=80.0, prototypes_masked_gap_min=-3.0)
    assert {c.key for c in su.claims(bad) if not c.holds} == {
        "m2-discovers-masked-digits", "gmdgm-keeps-labelled-digits", "stand-in-gmdgm-ahead-every-seed"}
    assert not su.claims(reduced_metrics(prototypes_masked_gap=10.0))[4].holds
    # without the stand-in (full mode) the claim is the paper's Fashion-MNIST accuracy
    full = su.claims({"gmdgm_overall_accuracy": 76.0, "m2_masked_accuracy": 10.0})
    assert [c.key for c in full] == ["gmdgm-fashion-mnist"] and full[0].holds and full[0].threshold == 77.2 - 3 * 1.3
    assert not su.claims({"gmdgm_overall_accuracy": 60.0})[0].holds


def test_paper_numbers_pair_only_numbers_on_the_same_data():
    """The paper's values sit only on full-mode rows (its data); full-mode rows without one show our numbers
    on the paper's data for quantities its abstract does not report (M2, the masked classes)."""
    for number in su.PAPER_NUMBERS:
        assert number.data, number.quantity
        if number.mode == "reduced":
            assert number.paper_value is None, number.quantity
    full = [n for n in su.PAPER_NUMBERS if n.mode == "full"]
    assert {n.data for n in full} == {"Fashion-MNIST"}
    assert [(n.metric, n.paper_value) for n in full if n.paper_value is not None] == [
        ("gmdgm_overall_accuracy", 77.2), ("gmdgm_authors_overall_accuracy", 77.2)]


def test_an_interrupted_training_resumes_to_the_same_model(tmp_path):
    data = su.load_data(su.Config(**TINY))
    straight = su.train_model("gmdgm", data, su.Config(**{**TINY, "epochs": 3}), seed=1)
    su.train_model("gmdgm", data, su.Config(**{**TINY, "epochs": 2}), seed=1, checkpoint=tmp_path / "run.pt")
    resumed = su.train_model("gmdgm", data, su.Config(**{**TINY, "epochs": 3}), seed=1, checkpoint=tmp_path / "run.pt")
    for name, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[name]), name
    saved = torch.load(tmp_path / "run.pt", weights_only=False)
    assert saved["epoch"] == 3
    name = next(iter(saved["model"]))
    saved["model"][name] = torch.full_like(saved["model"][name], 7.0)
    torch.save(saved, tmp_path / "run.pt")
    finished = su.train_model("gmdgm", data, su.Config(**{**TINY, "epochs": 3}), seed=1, checkpoint=tmp_path / "run.pt")
    assert torch.all(finished.state_dict()[name] == 7.0)  # a finished checkpoint is loaded, not retrained


def test_full_mode_runs_on_fake_fashion_mnist(monkeypatch, tmp_path):
    import rfy.semi_unsupervised.data as data_module

    gen = torch.Generator().manual_seed(0)

    def fake_fashion(split):
        n = 400 if split == "train" else 60
        return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10

    monkeypatch.setattr(data_module, "load_fashion_mnist", fake_fashion)
    config = su.Config.full(epochs=1, latent_dim=2, hidden=(8,))
    data = su.load_data(config)
    assert data.X_unlabelled.dtype == torch.uint8 and data.x_dim == 784
    assert len(data.X_val) == 40 and len(data.X_labelled) == 5  # 2% of 36 per unmasked class, at least 1
    # one worker: the fake loader is patched into this process only
    metrics = su.run_experiment(config, RunState(tmp_path / "full", resume=False), workers=1)
    assert all(np.isfinite(value) for key, value in metrics.items() if not key.endswith("_std"))
    assert not config.runs_stand_in and not any(key.startswith(su.STAND_IN) for key in metrics)
    assert [c.key for c in su.claims(metrics)] == ["gmdgm-fashion-mnist"]


def test_prototype_images_are_noisy_copies_of_one_prototype_per_class():
    from rfy.semi_unsupervised.data import prototype_images

    X, y, X_test, y_test = prototype_images(n_train=2000, n_test=100, flip=0.25, seed=3)
    assert X.shape == (2000, 1, 8, 8) and X_test.shape == (100, 1, 8, 8)
    assert torch.bincount(y).tolist() == [200] * 10 and torch.bincount(y_test).tolist() == [10] * 10
    assert X.unique().tolist() == pytest.approx([0.05, 0.95])
    bits = (X.flatten(1) > 0.5).float()
    prototypes = torch.stack([bits[y == c].mean(0) for c in range(10)]).round()  # the per-class majority
    flipped = (bits != prototypes[y]).float().mean()
    assert 0.22 < float(flipped) < 0.28  # every pixel flipped with probability 0.25
    distances = torch.cdist(prototypes, prototypes, p=1) + 64 * torch.eye(10)
    assert float(distances.min()) >= 16  # every class is its own mode
    again = prototype_images(n_train=2000, n_test=100, flip=0.25, seed=3)
    assert torch.equal(again[0], X) and not torch.equal(prototype_images(n_train=2000, n_test=100, seed=4)[0], X)


def test_the_prototypes_stand_in_runs():
    config = su.Config(**TINY, dataset="prototypes")
    data = su.load_data(config)
    assert data.x_dim == 64 and len(data.X_labelled) + len(data.X_unlabelled) + len(data.X_val) == 1350
    scores = su.evaluate(su.train_model("gmdgm", data, config), data)
    assert all(0 <= value <= 100 for value in scores.values())
