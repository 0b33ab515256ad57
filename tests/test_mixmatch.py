"""Properties of the MixMatch chapter: the algorithm's pieces, the models, the training loop, DDP, the benchmark."""
import importlib
import os
import statistics
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from rfy.augment import random_crop, random_flip
from rfy.checkpoint import RunState
from rfy.distributed import ProcessGroup
from rfy.errors import ConfigError
from rfy.mixmatch import (MIXMATCH, SUPERVISED, Config, InterleavedForward, MixedBatch, Trainer, WeightAverage,
                          benchmark, benchmark_trainer, bf16_is_fast, claims, frozen_running_stats, guess_labels,
                          interleave_offsets, interleave_order, labelled_indices,
                          linear_rampup, load_split, make_classifier, mixmatch_batch, mixmatch_loss, mixup,
                          random_cifar_like, run_experiment, sharpen, small_cnn, train, wide_resnet)
from rfy.mixmatch import LAST_EVALUATIONS, PAPER_NUMBERS, TrainResult, comparison_metrics, run_metrics
from rfy.mixmatch import data as mixmatch_data
from rfy.mixmatch.experiments import CPU_THREADS

mixmatch_train = importlib.import_module("rfy.mixmatch.train")  # the module; rfy.mixmatch.train is the function

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(steps=10, eval_every=5, repeats=1)

CPU = ProcessGroup(0, 1, torch.device("cpu"))


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def test_sharpening_keeps_the_argmax_lowers_entropy_and_tends_to_one_hot():
    probabilities = torch.softmax(torch.randn(64, 10, generator=torch.Generator().manual_seed(0)), dim=-1)
    sharp = sharpen(probabilities, 0.5)
    assert torch.allclose(sharp.sum(-1), torch.ones(64), atol=1e-6)
    assert torch.equal(sharp.argmax(-1), probabilities.argmax(-1))
    assert torch.all(entropy(sharp) < entropy(probabilities))
    assert torch.allclose(sharpen(probabilities, 1.0), probabilities, atol=1e-6)
    one_hot = torch.nn.functional.one_hot(probabilities.argmax(-1), 10).float()
    assert torch.allclose(sharpen(probabilities, 1e-5), one_hot, atol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        sharpen(probabilities, 0.0)


def test_mixup_keeps_lambda_at_least_half_and_mixes_labels_like_inputs():
    torch.manual_seed(0)
    size = 256
    identity = torch.eye(size)
    mixed_inputs, mixed_targets = mixup(identity, identity.clone(), alpha=0.75)
    assert torch.allclose(mixed_inputs, mixed_targets)
    own_weight = mixed_inputs.diagonal()  # x'_i = λ'_i e_i + (1 − λ'_i) e_partner
    assert torch.all(own_weight >= 0.5 - 1e-6) and torch.any(own_weight < 0.95)
    assert torch.allclose(mixed_inputs.sum(-1), torch.ones(size))
    with pytest.raises(ValueError, match="alpha"):
        mixup(identity, identity, alpha=0.0)


def test_label_guess_is_the_mean_softmax_over_views_without_gradient():
    model = nn.Linear(4, 3)
    views = torch.randn(2, 5, 4)
    guess = guess_labels(model, views)
    assert not guess.requires_grad
    expected = (torch.softmax(model(views[0]), -1) + torch.softmax(model(views[1]), -1)) / 2
    assert torch.allclose(guess, expected.detach(), atol=1e-6)


def test_label_guess_runs_each_view_as_its_own_batch_like_the_official_code():
    torch.manual_seed(0)
    seen: list[tuple[int, ...]] = []
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).train()
    views = torch.randn(2, 5, 4) * torch.tensor([1.0, 6.0]).view(2, 1, 1)
    guess = guess_labels(lambda batch: seen.append(tuple(batch.shape)) or model(batch), views)
    assert seen == [(5, 4), (5, 4)]  # K calls of B examples, not one of K·B
    per_view = torch.stack([torch.softmax(model(view), -1) for view in views]).mean(0)
    joint = torch.softmax(model(views.flatten(0, 1)), -1).view(2, 5, 3).mean(0)
    assert torch.allclose(guess, per_view.detach(), atol=1e-6)
    assert not torch.allclose(guess, joint.detach(), atol=1e-3)  # batch norm tells the two apart


def test_mixmatch_batch_layout_and_the_no_mixup_ablation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    labelled, onehot = torch.rand(4, 1, 4, 4), torch.eye(10)[:4]
    views = torch.rand(2, 4, 1, 4, 4)
    batch = mixmatch_batch(model, labelled, onehot, views, temperature=0.5, alpha=0.75, use_mixup=False)
    assert batch.num_labelled == 4 and batch.inputs.shape == (12, 1, 4, 4)
    assert torch.equal(batch.targets[:4], onehot) and torch.equal(batch.targets[4:8], batch.targets[8:])
    assert torch.equal(batch.inputs[4:8], views[0])
    mixed = mixmatch_batch(model, labelled, onehot, views, temperature=0.5, alpha=0.75)
    assert mixed.inputs.shape == batch.inputs.shape and not torch.equal(mixed.inputs, batch.inputs)


def test_loss_terms_match_their_definitions():
    logits = torch.randn(6, 5)
    targets = torch.cat([torch.eye(5)[[0, 3]], torch.softmax(logits[2:], -1)])
    total, labelled, unlabelled = mixmatch_loss(logits, MixedBatch(torch.zeros(6), targets, 2), 75.0)
    assert labelled.item() == pytest.approx(nn.functional.cross_entropy(logits[:2], torch.tensor([0, 3])).item())
    assert unlabelled.item() == pytest.approx(0.0, abs=1e-7)
    assert total.item() == pytest.approx(labelled.item())
    assert [linear_rampup(step, 100) for step in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    assert linear_rampup(0, 0) == 1.0


def test_ema_averages_parameters_and_copies_batch_norm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(model)
    before = {name: p.detach().clone() for name, p in average.model.named_parameters()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.train()(torch.randn(8, 3) * 4 + 2)  # changes the online running statistics
    average.update(0.9)
    for name, value in average.model.named_parameters():
        expected = 0.9 * before[name] + 0.1 * dict(model.named_parameters())[name]
        assert torch.allclose(value, expected, atol=1e-6), name
    for (name, value), online in zip(average.model.named_buffers(), model.buffers()):
        assert torch.equal(value, online), name  # running mean, variance and the batch count: the online ones
    assert not torch.equal(average.model[1].running_mean, torch.zeros(2))


def test_trainer_evaluates_the_average_with_the_online_statistics():
    config = Config(labels_per_class=2, batch_size=8)
    trainer = Trainer(load_split(config, seed=0), config, MIXMATCH, 0, group=CPU)
    for step in range(2):
        trainer.step(step)
    for average, online in zip(trainer.average.model.buffers(), trainer.classifier.buffers()):
        assert torch.equal(average, online)
    parameters = zip(trainer.average.model.parameters(), trainer.classifier.parameters())
    assert any(not torch.equal(average, online) for average, online in parameters)


def test_augmentations_keep_shape_and_dtype_and_are_reproducible_by_seed():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    for augment in (lambda x: random_crop(x, 4), random_flip):
        torch.manual_seed(1)
        first = augment(images)
        torch.manual_seed(1)
        assert first.dtype == torch.uint8 and first.shape == images.shape and torch.equal(first, augment(images))
    data = random_cifar_like(num_labelled=8, num_unlabelled=8)
    torch.manual_seed(2)
    augmented = data.augment(images)
    torch.manual_seed(2)
    assert augmented.dtype == torch.float32 and augmented.shape == images.shape
    assert torch.equal(augmented, data.augment(images)) and 0 <= augmented.min() and augmented.max() <= 1
    torch.manual_seed(3)
    assert not torch.equal(augmented, data.augment(images))


def official_interleave(chunks: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """``interleave`` of the official MixMatch code (libml/layers.py), transcribed to torch."""
    nu = len(chunks) - 1
    groups = [batch // (nu + 1)] * (nu + 1)
    for x in range(batch - sum(groups)):
        groups[-x - 1] += 1
    offsets = [0]
    for g in groups:
        offsets.append(offsets[-1] + g)
    pieces = [[v[offsets[p]:offsets[p + 1]] for p in range(nu + 1)] for v in chunks]
    for i in range(1, nu + 1):
        pieces[0][i], pieces[i][i] = pieces[i][i], pieces[0][i]
    return [torch.cat(v) for v in pieces]


@pytest.mark.parametrize("batch_size, num_batches", [(32, 3), (10, 3), (64, 3), (7, 4), (5, 2)])
def test_interleaving_matches_the_official_code_and_is_its_own_inverse(batch_size, num_batches):
    order = interleave_order(batch_size, num_batches)
    rows = torch.arange(batch_size * num_batches)
    assert torch.equal(order[order], rows)
    expected = torch.cat(official_interleave(list(rows.split(batch_size)), batch_size))
    assert torch.equal(rows[order], expected)
    assert all(bool((chunk < batch_size).any()) for chunk in order.view(num_batches, batch_size))
    offsets = interleave_offsets(batch_size, num_batches)
    assert offsets[0] == 0 and offsets[-1] == batch_size and len(offsets) == num_batches + 1
    assert interleave_offsets(32, 3) == [0, 10, 21, 32]  # the leftover rows go to the last slices


def test_only_the_first_chunk_updates_batch_norm_statistics():
    torch.manual_seed(0)
    first, second = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4) * 5 + 3
    interleaved = InterleavedForward(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    alone = InterleavedForward(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    alone.load_state_dict(interleaved.state_dict())
    logits = interleaved([first, second])
    alone([first])
    assert logits.shape == (16, 4, 4, 4)
    norm, reference = interleaved.classifier[1], alone.classifier[1]
    assert torch.allclose(norm.running_mean, reference.running_mean) and norm.momentum == 0.1
    with frozen_running_stats(norm):
        norm(torch.randn(8, 4, 4, 4) + 10)
    assert torch.allclose(norm.running_mean, reference.running_mean)


def test_models_have_the_expected_sizes_and_outputs():
    wrn = wide_resnet()
    assert sum(p.numel() for p in wrn.parameters()) == pytest.approx(1.47e6, rel=0.01)
    assert wrn.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    cnn = small_cnn()
    assert 40_000 < sum(p.numel() for p in cnn.parameters()) < 70_000
    assert cnn.eval()(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ConfigError, match="model must be one of"):
        make_classifier("resnet-50", 3, 10)
    with pytest.raises(ValueError, match="depth"):
        wide_resnet(depth=27)


def test_labelled_split_has_k_per_class_and_is_reproducible_by_seed():
    labels = torch.arange(200) % 10
    chosen = labelled_indices(labels, 3, seed=4)
    assert torch.equal(torch.bincount(labels[chosen]), torch.full((10,), 3))
    assert torch.equal(chosen, labelled_indices(labels, 3, seed=4))
    assert not torch.equal(chosen, labelled_indices(labels, 3, seed=5))
    with pytest.raises(ConfigError, match="labels_per_class"):
        labelled_indices(labels, 21, seed=0)
    data = load_split(Config(labels_per_class=2), seed=0)
    assert len(data.labels) == 20 and len(data.unlabelled_images) > 1000 and len(data.test_labels) > 400


def test_config_errors_name_the_field_and_allowed_values():
    with pytest.raises(ConfigError, match="dataset must be one of"):
        Config(dataset="stl-10")
    with pytest.raises(ConfigError, match="methods must be"):
        Config(methods=("fixmatch",))
    with pytest.raises(ConfigError, match="ema_decay"):
        Config(ema_decay=1.0)
    with pytest.raises(ConfigError, match="target_errors"):
        Config(target_errors=(120.0,))
    full = Config.full()
    assert (full.model, full.batch_size, full.lambda_u, full.ema_decay, full.steps) == ("wrn-28-2", 64, 75.0, 0.999, 2**20)
    with pytest.raises(ConfigError, match="divisible"):
        Trainer(random_cifar_like(8, 8), Config(batch_size=5), MIXMATCH, 0, ProcessGroup(0, 2, torch.device("cpu")))


def labelled_loss(trainer: Trainer) -> float:
    trainer.classifier.eval()
    with torch.no_grad():
        logits = trainer.classifier(trainer.data.labelled_images)
    return nn.functional.cross_entropy(logits, trainer.data.labels).item()


@pytest.mark.parametrize("method", [SUPERVISED, MIXMATCH])
def test_a_few_training_steps_lower_the_labelled_loss(method):
    config = Config(labels_per_class=3, rampup_steps=0)
    trainer = Trainer(load_split(config, seed=0), config, method, seed=0, group=CPU)
    before = labelled_loss(trainer)
    for step in range(40):
        trainer.step(step)
    assert labelled_loss(trainer) < 0.7 * before


def test_training_resumes_from_its_checkpoint(tmp_path):
    config = Config(steps=6, eval_every=3, methods=(MIXMATCH,), repeats=1)
    data = load_split(config, seed=0)
    first = train(data, config, MIXMATCH, 0, checkpoint_path=tmp_path / "run.pt")
    assert [entry["step"] for entry in first.history] == [3, 6]
    longer = Config(steps=9, eval_every=3, methods=(MIXMATCH,), repeats=1)
    resumed = train(data, longer, MIXMATCH, 0, checkpoint_path=tmp_path / "run.pt")
    assert [entry["step"] for entry in resumed.history] == [3, 6, 9]
    assert resumed.history[:2] == first.history
    straight = train(data, longer, MIXMATCH, 0)  # the same nine steps without an interruption
    untimed = lambda history: [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]
    assert untimed(resumed.history) == untimed(straight.history)
    for (name, expected), actual in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(expected, actual), name


def test_run_experiment_end_to_end_and_metric_names(tmp_path):
    config = Config(steps=20, eval_every=10, repeats=2, methods=(SUPERVISED, MIXMATCH), target_errors=(99.0,))
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    for method in (SUPERVISED, MIXMATCH):
        assert 0 <= metrics[f"digits_50_{method}_error"] <= 100
        per_seed = [metrics[f"digits_50_{method}_seed{seed}_error"] for seed in config.seeds]
        assert metrics[f"digits_50_{method}_error_std"] == pytest.approx(statistics.stdev(per_seed))
        assert metrics[f"digits_50_{method}_seed1_steps_per_s"] > 0
    assert "digits_50_mixmatch_seed0_seconds_to_error_99" in metrics


def test_full_mode_runs_on_tiny_cifar_shaped_data(monkeypatch, tmp_path):
    fake = random_cifar_like(num_labelled=40, num_unlabelled=40)
    splits = {"train": (torch.cat([fake.labelled_images, fake.unlabelled_images]), torch.arange(80) % 10),
              "test": (fake.test_images[:20], fake.test_labels[:20])}
    monkeypatch.setitem(mixmatch_data.DATASET_SETUPS, "cifar-10", (lambda split: splits[split], True, 4))
    config = Config.full(steps=2, eval_every=1, batch_size=4, labels_per_class=2)
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    assert 0 <= metrics["cifar-10_20_mixmatch_error"] <= 100


def test_full_mode_without_cifar_explains_what_to_download():
    with pytest.raises(Exception, match="cifar-10-python.tar.gz"):
        load_split(Config.full(), seed=0)


def test_benchmark_reports_speed_precision_and_memory_format():
    result = benchmark(device="cpu", steps=2, warmup=1, batch_size=4, model="small-cnn")
    # every image forwarded: K·B = 8 views to guess labels, then (K + 1)·B = 12 mixed images to train
    assert result["steps_per_s"] > 0 and result["images_per_s"] == pytest.approx(20 * result["steps_per_s"])
    assert result["threads"] == CPU_THREADS and result["device"] == f"cpu ({CPU_THREADS} threads)"
    fast = bf16_is_fast(torch.device("cpu"))
    assert result["precision"] == ("bf16 autocast" if fast else "fp32")
    assert result["memory_format"] == ("channels_last" if fast else "contiguous")
    fp32 = benchmark(device="cpu", steps=1, warmup=0, batch_size=4, model="small-cnn", mixed_precision=False)
    assert (fp32["precision"], fp32["memory_format"]) == ("fp32", "contiguous")


def test_bf16_is_used_only_where_the_hardware_multiplies_it():
    cpu_has_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert bf16_is_fast(torch.device("cpu")) == cpu_has_bf16
    assert not bf16_is_fast(torch.device("meta"))


def test_the_reduced_preset_stays_in_fp32_with_contiguous_images():
    config = Config(labels_per_class=2, batch_size=8)
    trainer = Trainer(load_split(config, seed=0), config, MIXMATCH, 0, group=CPU)
    assert (trainer.precision, trainer.memory_format_name) == ("fp32", "contiguous")


def mixmatch_loss_and_gradient(mixed_precision: bool, contiguous: bool = False) -> tuple[float, torch.Tensor]:
    """The full preset's loss (λ_u ramped up) and its gradient, at initialisation, on batch 8 of WRN-28-2.

    ``contiguous`` puts the images and weights back in the contiguous layout, whatever the trainer chose.
    """
    trainer = benchmark_trainer(device="cpu", batch_size=8, mixed_precision=mixed_precision)
    if contiguous:
        trainer.memory_format = torch.contiguous_format
        trainer.classifier.to(memory_format=torch.contiguous_format)
    trainer.classifier.train()
    torch.manual_seed(0)  # the same batches, augmentations and MixUp draws for both precisions
    loss = trainer.loss(trainer.config.rampup_steps)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in trainer.classifier.parameters()])


def test_a_bf16_channels_last_step_matches_fp32_within_stated_tolerances(monkeypatch):
    """bf16 keeps 8 bits of mantissa (0.4% per rounding): the loss must stay within 1% of fp32's.

    The gradient goes back through 28 layers of bf16 activations, so only its direction is compared:
    cosine similarity above 0.95 (about 0.97 measured at this batch of 8).
    """
    monkeypatch.setattr(mixmatch_train, "bf16_is_fast", lambda device: True)  # bf16 is correct, if slow, anywhere
    loss_bf16, gradient_bf16 = mixmatch_loss_and_gradient(mixed_precision=True)
    monkeypatch.undo()
    monkeypatch.setattr(mixmatch_train, "bf16_is_fast", lambda device: False)
    loss_fp32, gradient_fp32 = mixmatch_loss_and_gradient(mixed_precision=True)
    assert loss_bf16 != loss_fp32  # autocast really ran
    assert loss_bf16 == pytest.approx(loss_fp32, rel=0.01)
    assert torch.cosine_similarity(gradient_bf16, gradient_fp32, dim=0) > 0.95


def test_wide_resnet_runs_channels_last_in_fp32_on_the_cpu_with_the_contiguous_loss_and_gradient(monkeypatch):
    """The layout changes only the order of the convolutions' sums: loss within 1e-5, gradient cosine > 0.9999."""
    monkeypatch.setattr(mixmatch_train, "bf16_is_fast", lambda device: False)
    trainer = benchmark_trainer(device="cpu", batch_size=8, mixed_precision=False)
    assert (trainer.precision, trainer.memory_format_name) == ("fp32", "channels_last")
    loss_channels_last, gradient_channels_last = mixmatch_loss_and_gradient(mixed_precision=False)
    loss_contiguous, gradient_contiguous = mixmatch_loss_and_gradient(mixed_precision=False, contiguous=True)
    assert loss_channels_last == pytest.approx(loss_contiguous, rel=1e-5)
    assert torch.cosine_similarity(gradient_channels_last, gradient_contiguous, dim=0) > 0.9999


def test_channels_last_trainer_takes_a_step_and_evaluates(monkeypatch):
    monkeypatch.setattr(mixmatch_train, "bf16_is_fast", lambda device: True)
    trainer = benchmark_trainer(device="cpu", batch_size=4, model="small-cnn")
    assert (trainer.precision, trainer.memory_format_name) == ("bf16 autocast", "channels_last")
    kernel = next(p for p in trainer.classifier.parameters() if p.dim() == 4)
    assert kernel.is_contiguous(memory_format=torch.channels_last)
    loss = trainer.step(trainer.config.rampup_steps)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in trainer.average.model.parameters())
    assert 0 <= trainer.test_error(batch_size=500) <= 100


def history(errors: list[float]) -> TrainResult:
    return TrainResult(nn.Identity(), [{"step": 10 * (i + 1), "seconds": float(i), "error": e, "loss": 0.0}
                                       for i, e in enumerate(errors)], train_seconds=1.0, steps=10 * len(errors))


def test_the_reported_paper_statistic_is_the_median_of_the_last_20_evaluations():
    errors = [90.0 - i for i in range(30)]  # 90, 89, …, 61: the last 20 are 80 … 61
    metrics = run_metrics(history(errors), target_errors=(70.0,))
    assert LAST_EVALUATIONS == 20
    assert metrics["error_median_last"] == pytest.approx(70.5) and metrics["error"] == 61.0
    assert metrics["seconds_to_error_70"] == 20.0
    config = Config.full(labels_per_class=25, methods=(MIXMATCH,), repeats=2)
    per_run = {(MIXMATCH, 0): metrics, (MIXMATCH, 1): run_metrics(history([50.0] * 20 + [10.0] * 5), (70.0,))}
    flat = comparison_metrics(config, per_run)
    assert flat["cifar-10_250_mixmatch_error_median_last"] == pytest.approx((70.5 + 50.0) / 2)
    assert flat["cifar-10_250_mixmatch_error"] == pytest.approx((61.0 + 10.0) / 2)  # the final errors
    for number in PAPER_NUMBERS:  # the rows beside the paper's numbers read the paper's statistic
        assert number.metric.endswith("_error_median_last")
        assert (number.mode == "full") == (number.paper_value is not None)
    assert "cifar-10_250_mixmatch_error_median_last" in {n.metric for n in PAPER_NUMBERS}


def test_reduced_mode_takes_its_paper_statistic_after_the_ramp():
    config = Config()
    first_of_last_20 = config.steps - (LAST_EVALUATIONS - 1) * config.eval_every
    assert config.steps // config.eval_every >= 2 * LAST_EVALUATIONS and first_of_last_20 > config.rampup_steps
    full = Config.full()
    assert full.eval_every == 1024 and full.steps // full.eval_every == 1024


def digits_metrics(supervised=(20.0, 2.0), mixmatch=(6.0, 1.0), unsharpened=(9.0, 1.0)) -> dict[str, float]:
    metrics = {}
    for method, (mean, std) in {"supervised": supervised, "mixmatch": mixmatch,
                                "mixmatch-no-sharpening": unsharpened}.items():
        metrics[f"digits_50_{method}_error_median_last"], metrics[f"digits_50_{method}_error_median_last_std"] = mean, std
    return metrics


def test_claims_measure_the_gap_in_standard_deviations_and_the_ablation():
    found = {claim.key: claim for claim in claims(digits_metrics())}
    assert set(found) == {"mixmatch-beats-supervised", "sharpening-helps"}
    assert found["mixmatch-beats-supervised"].measured == pytest.approx(7.0) and found["mixmatch-beats-supervised"].holds
    assert found["sharpening-helps"].measured == pytest.approx(3.0) and found["sharpening-helps"].holds
    weak = {claim.key: claim for claim in claims(digits_metrics(supervised=(10.0, 3.0), unsharpened=(7.5, 1.0)))}
    assert not weak["mixmatch-beats-supervised"].holds and not weak["sharpening-helps"].holds
    assert all(claim.why and claim.statement for claim in found.values())
    full = claims({"cifar-10_250_mixmatch_error_median_last": 12.0, "cifar-10_250_mixmatch_error_median_last_std": 0.0})
    assert [claim.key for claim in full] == ["cifar-10-250-error"] and full[0].holds
    assert claims({"unrelated": 1.0}) == []


DDP_SCRIPT = """
import sys, torch
from rfy.distributed import join_process_group
from rfy.mixmatch import MIXMATCH, Config, Trainer, random_cifar_like
group = join_process_group(torch.device("cpu"))
config = Config(batch_size=8, model="small-cnn")
trainer = Trainer(random_cifar_like(20, 40, seed=group.rank), config, MIXMATCH, seed=group.rank, group=group)
initial = [p.detach().clone() for p in trainer.classifier.parameters()]
for step in range(3):
    trainer.step(step)
torch.save({"initial": initial, "final": [p.detach() for p in trainer.classifier.parameters()],
            "batch": trainer.batch_size}, f"{sys.argv[1]}/rank{group.rank}.pt")
"""


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    """Launch ``arguments`` as 2 CPU processes (gloo) with torchrun on a free port."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_distributed_data_parallel_with_two_gloo_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    finished = torchrun(str(script), str(tmp_path))
    assert finished.returncode == 0, finished.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    assert ranks[0]["batch"] == 4
    for start0, start1 in zip(ranks[0]["initial"], ranks[1]["initial"]):
        assert torch.equal(start0, start1)  # DDP broadcast rank 0's initial weights
    for final0, final1, start in zip(ranks[0]["final"], ranks[1]["final"], ranks[0]["initial"]):
        assert torch.allclose(final0, final1, atol=1e-6)  # averaged gradients keep the replicas equal
    assert any(not torch.equal(final, start) for final, start in zip(ranks[0]["final"], ranks[0]["initial"]))


def test_torchrun_cli_run_writes_one_record_from_rank_zero(tmp_path):
    finished = torchrun("-m", "rfy", "run", "mixmatch", "--set", "steps=4", "--set", "eval_every=2",
                        "--set", "methods=('mixmatch',)", "--set", "repeats=1",
                        "--workdir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"))
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert [path.name for path in (tmp_path / "results" / "mixmatch").iterdir()] == ["reduced-seed0-custom.json"]
    assert sorted(path.name for path in (tmp_path / "runs" / "mixmatch").iterdir()) == \
        ["reduced-seed0-custom", "reduced-seed0-custom-rank1"]
    assert finished.stdout.count("run record written") == 1
