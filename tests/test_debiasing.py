"""Properties of the DB-VAE chapter: losses, resampling, data, models."""
import pytest
import torch

from rfy.debiasing import (Config, claims, debiasing_loss, effective_sample_size, histogram_mass,
                           kl_to_standard_normal, make_biased_digits, make_dbvae, resampled_order, sampling_weights)
from rfy.debiasing.experiments import evaluate, train_model
from rfy.errors import ConfigError

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(epochs=1, latent_dim=2, hidden=16, repeats=1, alphas=(0.1,))


def latent_means_with_rare_cluster(n_common=190, n_rare=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    common = torch.randn(n_common, 3, generator=gen) * 0.3
    rare = torch.randn(n_rare, 3, generator=gen) * 0.3 + 4.0
    return torch.cat([common, rare])


def test_rare_latent_points_get_higher_weights():
    weights = sampling_weights(latent_means_with_rare_cluster(), alpha=0.01)
    assert weights[190:].min() > 10 * weights[:190].median()


def test_weights_are_normalised_and_become_uniform_as_alpha_grows():
    means = latent_means_with_rare_cluster()
    for alpha in (0.001, 0.1, 10.0):
        weights = sampling_weights(means, alpha=alpha)
        assert torch.all(weights > 0) and float(weights.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(sampling_weights(means, alpha=1e9), torch.full((200,), 1 / 200), rtol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        sampling_weights(means, alpha=0.0)


def test_resampled_epochs_over_represent_the_rare_group():
    means = latent_means_with_rare_cluster()
    positives, negatives = torch.arange(200), torch.arange(200, 400)
    order = resampled_order(positives, negatives, sampling_weights(means, alpha=0.01), torch.Generator().manual_seed(0))
    drawn = order[order < 200]
    assert len(order) == 400 and torch.equal(order[order >= 200].sort().values, negatives)
    assert float((drawn >= 190).float().mean()) > 5 * 10 / 200


def test_kl_is_zero_when_q_equals_the_prior_and_positive_otherwise():
    zeros = torch.zeros(4, 3)
    assert torch.equal(kl_to_standard_normal(zeros, zeros), torch.zeros(4))
    assert torch.all(kl_to_standard_normal(torch.ones(4, 3), zeros) > 0)


def test_vae_terms_get_no_gradient_from_negatives():
    torch.manual_seed(0)
    model = make_dbvae((1, 8, 8), latent_dim=4)
    x = torch.rand(6, 1, 8, 8)
    logit, x_hat, mean, logvar = model(x)
    debiasing_loss(logit, torch.zeros(6, dtype=torch.long), x, x_hat, mean, logvar).backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.decoder.parameters())
    model.zero_grad()
    logit, x_hat, mean, logvar = model(x)
    debiasing_loss(logit, torch.ones(6, dtype=torch.long), x, x_hat, mean, logvar).backward()
    assert any(torch.count_nonzero(p.grad) > 0 for p in model.decoder.parameters())


def test_loss_rejects_shapes_that_would_broadcast():
    x = torch.rand(5, 1, 8, 8)
    good = dict(x=x, x_hat=x.clone(), mean=torch.zeros(5, 2), logvar=torch.zeros(5, 2))
    loss = debiasing_loss(torch.zeros(5), torch.ones(5), **good)
    assert loss.shape == ()
    with pytest.raises(ValueError, match=r"logit must have shape \[5\]"):
        debiasing_loss(torch.zeros(5, 1), torch.ones(5), **good)
    with pytest.raises(ValueError, match=r"y must have shape \[5\]"):
        debiasing_loss(torch.zeros(5), torch.ones(5, 1), **good)


def test_biased_digits_have_a_rare_group_and_a_balanced_test_set():
    data = make_biased_digits(rare_fraction=0.05, seed=1)
    positives = data.group_train[data.y_train == 1]
    assert int((positives >= 2).sum()) == round(0.05 * len(positives))  # an exact count on every seed
    assert bool((data.group_train[data.y_train == 0] == -1).all())
    counts = torch.bincount(data.group_test[data.y_test == 1])
    assert len(counts) == 4 and len(set(counts.tolist())) == 1
    assert 0 <= float(data.X_train.min()) and float(data.X_train.max()) <= 1
    assert torch.equal(make_biased_digits(rare_fraction=0.05, seed=1).X_train, data.X_train)


def test_conv_dbvae_for_64px_rgb_images():
    model = make_dbvae((3, 64, 64), latent_dim=5)
    logit, x_hat, mean, logvar = model(torch.rand(2, 3, 64, 64))
    assert logit.shape == (2,) and x_hat.shape == (2, 3, 64, 64) and mean.shape == logvar.shape == (2, 5)


def test_short_training_and_evaluation_report_every_group():
    data = make_biased_digits(seed=0)
    config = Config(epochs=1, latent_dim=2, hidden=16)
    scores = evaluate(train_model(data, config, debias=True, alpha=0.1), data)
    assert set(data.group_names) | {"negatives", "mean", "variance"} == set(scores)
    assert all(0 <= scores[name] <= 100 for name in data.group_names)


def test_config_validation():
    with pytest.raises(ConfigError, match="alphas"):
        Config(alphas=(0.1, -1.0))
    with pytest.raises(ConfigError, match="rare_fraction"):
        Config(rare_fraction=1.5)
    with pytest.raises(ConfigError, match="negative_dark_fraction"):
        Config(negative_dark_fraction=-0.1)
    with pytest.raises(ConfigError, match=r"weighting must be one of \('product', 'max'\)"):
        Config(weighting="sum")
    assert Config.full().dataset == "celeba" and Config().seeds == (0, 1, 2)


def test_full_mode_assembles_celeba_and_non_faces_into_balanced_groups(monkeypatch):
    import rfy.debiasing.faces as faces

    gen = torch.Generator().manual_seed(0)
    train_groups = torch.tensor([0] * 10 + [1] * 2 + [2] * 8 + [3] * 1)
    monkeypatch.setattr(faces, "load_celeba_faces", lambda split, size, limit=None: (
        torch.randint(0, 256, (21 if split == "train" else 40, 3, size, size), dtype=torch.uint8, generator=gen),
        train_groups if split == "train" else torch.arange(40) % 4, faces.GROUP_NAMES))
    monkeypatch.setattr(faces, "load_non_faces", lambda split, size, limit=None: torch.zeros(
        limit or 7, 3, size, size, dtype=torch.uint8))
    data = faces.load_face_detection_data(Config.full(test_per_group=5, train_per_class=7))
    assert data.X_train.shape == (28, 3, 64, 64) and data.X_train.dtype == torch.uint8
    assert torch.bincount(data.group_test[data.y_test == 1]).tolist() == [5, 5, 5, 5]
    assert int((data.y_test == 0).sum()) == 5
    assert data.rare_groups == (1, 3)


def test_uint8_images_train_and_evaluate_like_their_float_copies():
    """Full mode keeps uint8 images; converting per batch must give the model the same inputs."""
    from rfy.debiasing.data import BiasedData
    from rfy.debiasing.experiments import positive_latent_means

    data = make_biased_digits(seed=0)
    as_bytes = BiasedData((data.X_train * 255).round().to(torch.uint8), data.y_train, data.group_train,
                          (data.X_test * 255).round().to(torch.uint8), data.y_test, data.group_test)
    as_floats = BiasedData(as_bytes.X_train.float() / 255, data.y_train, data.group_train,
                           as_bytes.X_test.float() / 255, data.y_test, data.group_test)
    config = Config(epochs=1, latent_dim=2, hidden=16)
    models = [train_model(d, config, debias=True, alpha=0.1, seed=3) for d in (as_bytes, as_floats)]
    assert evaluate(models[0], as_bytes) == evaluate(models[1], as_floats)
    index = torch.tensor([5, 2, 7])
    assert torch.equal(positive_latent_means(models[0], as_bytes.X_train, index),
                       positive_latent_means(models[0], as_floats.X_train[index]))


def mean_intensity(images):
    return images.flatten(1).mean(dim=1)


def test_dark_ink_is_rare_among_positives_only():
    """The bias: dark (bright-background) images are common among negatives, rare among positives."""
    data = make_biased_digits(rare_fraction=0.01, negative_dark_fraction=0.5, seed=0)
    bright = mean_intensity(data.X_train) > 0.5
    positives, negatives = data.y_train == 1, data.y_train == 0
    assert float(bright[positives].float().mean()) == pytest.approx(0.01, abs=0.002)
    assert 0.4 < float(bright[negatives].float().mean()) < 0.6
    test_bright = mean_intensity(data.X_test) > 0.5
    assert bool(test_bright[data.group_test >= 2].all()) and not bool(test_bright[(data.group_test >= 0)
                                                                                  & (data.group_test < 2)].any())
    assert 0.3 < float(test_bright[data.y_test == 0].float().mean()) < 0.7
    no_dark_negatives = make_biased_digits(rare_fraction=0.01, negative_dark_fraction=0.0, seed=0)
    assert not bool((mean_intensity(no_dark_negatives.X_train[no_dark_negatives.y_train == 0]) > 0.5).any())


def test_histogram_mass_and_weights_accept_float64_latents():
    means = latent_means_with_rare_cluster()
    mass64 = histogram_mass(means.double(), bins=10)
    assert mass64.dtype == torch.float64
    assert torch.allclose(mass64.float(), histogram_mass(means, bins=10))
    weights = sampling_weights(means.double(), alpha=0.1)
    assert weights.dtype == torch.float64 and float(weights.sum()) == pytest.approx(1.0)
    assert torch.allclose(weights.float(), sampling_weights(means, alpha=0.1), rtol=1e-4)
    order = resampled_order(torch.arange(200), torch.arange(200, 210), weights, torch.Generator().manual_seed(0))
    assert len(order) == 210


def test_max_rule_is_the_largest_single_factor():
    means = latent_means_with_rare_cluster()
    mass = histogram_mass(means, bins=10)
    expected = (1 / (mass + 0.1)).max(dim=1).values
    assert torch.allclose(sampling_weights(means, alpha=0.1, rule="max"), expected / expected.sum())
    with pytest.raises(ValueError, match="rule must be one of"):
        sampling_weights(means, alpha=0.1, rule="mean")


def test_effective_sample_size_of_uniform_and_degenerate_weights():
    assert effective_sample_size(torch.full((50,), 1 / 50)) == pytest.approx(50)
    assert effective_sample_size(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(1)
    assert effective_sample_size(torch.tensor([0.5, 0.5, 0.0, 0.0])) == pytest.approx(2)


def gaussian_latents_ess(latent_dim, alpha, *, bins=10, rule="product", n=5000, seed=0):
    """ESS as a fraction of ``n`` on structure-free latents: there is nothing rare to find."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return effective_sample_size(sampling_weights(z, alpha=alpha, bins=bins, rule=rule)) / n


def test_full_preset_resampling_keeps_a_sensible_effective_sample_size():
    full = Config.full()
    assert full.weighting == "product"
    fractions = {alpha: gaussian_latents_ess(full.latent_dim, alpha, bins=full.bins) for alpha in full.alphas}
    assert fractions[max(full.alphas)] >= 0.2, fractions
    assert min(fractions.values()) >= 0.005, fractions
    # The same bound fails with k = 100 (the teaching version's size): the product collapses.
    assert gaussian_latents_ess(100, max(full.alphas), bins=full.bins) < 0.005
    # ... and the maximum over dimensions does not.
    assert gaussian_latents_ess(100, min(full.alphas), bins=full.bins, rule="max") >= 0.2


def test_training_history_reports_the_effective_sample_size_per_epoch():
    data = make_biased_digits(seed=0)
    config = Config(epochs=2, latent_dim=2, hidden=16)
    history, uniform = [], []
    train_model(data, config, debias=True, alpha=0.01, history=history)
    train_model(data, config, debias=False, history=uniform)
    positives = int((data.y_train == 1).sum())
    assert [h["epoch"] for h in history] == [0.0, 1.0]
    assert all(1 <= h["ess"] <= positives and h["ess_fraction"] == pytest.approx(h["ess"] / positives)
               for h in history)
    assert all(h["ess"] == pytest.approx(positives) for h in uniform)
    assert uniform[0]["rare_share"] == pytest.approx(uniform[0]["rare_fraction"])


def test_full_mode_warns_when_the_resampling_concentrates_on_a_few_positives():
    import warnings

    from rfy.debiasing import ESS_WARNING_FRACTION, warn_if_concentrated

    # On structureless k = 8 latents (the full preset's size) the paper's mildest α values stay above the
    # warning fraction and its harshest fall below it: what the chapter says holds, and what it warns about.
    full = Config.full()
    assert all(gaussian_latents_ess(full.latent_dim, alpha, bins=full.bins) >= ESS_WARNING_FRACTION
               for alpha in (0.1, 0.05))
    assert all(gaussian_latents_ess(full.latent_dim, alpha, bins=full.bins) < ESS_WARNING_FRACTION
               for alpha in (0.01, 0.001))
    spread = torch.full((1000,), 1 / 1000)
    concentrated = torch.cat([torch.full((10,), 0.099), torch.full((990,), 0.01 / 990)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_concentrated(spread, 0.1, epoch=0)
    with pytest.warns(RuntimeWarning, match=r"alpha = 0.001: epoch 3 .* effective sample size of 10 of 1,000"):
        assert warn_if_concentrated(concentrated, 0.001, epoch=3)
    # In training: once per model in full mode, never in reduced mode.
    data = make_biased_digits(seed=0)
    knobs = {"dataset": "digits", "epochs": 2, "latent_dim": 8, "hidden": 16, "train_per_class": 0}
    with pytest.warns(RuntimeWarning, match="alpha = 0.001") as caught:
        train_model(data, Config.full(**knobs), debias=True, alpha=0.001)
    assert len([w for w in caught if "effective sample size" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        train_model(data, Config.reduced(**knobs), debias=True, alpha=0.001)


def test_sweep_metrics_and_claims():
    import rfy.debiasing.experiments as experiments

    data = make_biased_digits(seed=0)
    config = Config(epochs=1, latent_dim=2, hidden=16, repeats=1, alphas=(0.1,))
    metrics = experiments.sweep_metrics(experiments.alpha_sweep(config, data), data.rare_groups, data.group_names)
    for prefix in ("standard", "dbvae_uniform", "dbvae_alpha_0.1"):
        for name in ("rare_accuracy", "common_accuracy", "variance", "negatives_accuracy", "ess_fraction_min",
                     "ess_fraction_last", "rare_share_last"):
            assert f"{prefix}_{name}" in metrics
    assert metrics["standard_ess_fraction_min"] == pytest.approx(1.0)
    assert [c.key for c in claims(metrics)] == ["rare_gain", "variance_ratio", "common_change", "negatives"]
    assert claims({}) == []


def fake_metrics(**changes):
    metrics = {"standard_rare_accuracy": 50.0, "standard_common_accuracy": 100.0, "standard_variance": 600.0,
               "standard_negatives_accuracy": 100.0, "dbvae_alpha_0.1_rare_accuracy": 98.0,
               "dbvae_alpha_0.1_common_accuracy": 99.5, "dbvae_alpha_0.1_variance": 2.0,
               "dbvae_alpha_0.1_negatives_accuracy": 99.0}
    return {**metrics, **changes}


def test_claims_hold_and_fail_on_the_right_numbers():
    assert all(c.holds for c in claims(fake_metrics()))
    failing = {"rare_gain": fake_metrics(**{"dbvae_alpha_0.1_rare_accuracy": 54.0}),
               "variance_ratio": fake_metrics(**{"dbvae_alpha_0.1_variance": 400.0}),
               "common_change": fake_metrics(**{"dbvae_alpha_0.1_common_accuracy": 97.0}),
               "negatives": fake_metrics(**{"dbvae_alpha_0.1_negatives_accuracy": 90.0})}
    for key, metrics in failing.items():
        verdicts = {c.key: c.holds for c in claims(metrics)}
        assert not verdicts[key] and sum(verdicts.values()) == 3, (key, verdicts)
    gain = {c.key: c for c in claims(fake_metrics())}["rare_gain"]
    assert gain.measured == pytest.approx(48.0) and gain.threshold == 5.0 and gain.why
