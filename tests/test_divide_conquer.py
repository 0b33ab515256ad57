"""Properties of the divide-and-conquer chapter: slices, the margin loss and its samplers, clustering, metrics, runs."""
import io
import sys
import math
import tarfile

import numpy as np
import pytest
import torch
from torch import nn

from rfy.checkpoint import RunState
from rfy.errors import ConfigError
from rfy.divide_conquer import (ClusterBatches, Config, batch_margin_loss, claims, cluster_features, clustering_nmi,
                                comparison_metrics, distance_weights, domain_digits, full_embedding, margin_loss,
                                match_clusters, nmi, pairwise_distances, read_cub, recall_at_k, run_experiment,
                                sample_negatives, split_embedding, train)
from rfy.divide_conquer import data as dc_data
from rfy.divide_conquer import models as dc_models

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(epochs=2, model="mlp", repeats=1)


def test_slices_are_normalised_independently_and_concatenate_to_the_embedding():
    embedding = torch.randn(5, 12)
    slices = split_embedding(embedding, 3)
    assert slices.shape == (3, 5, 4)
    assert torch.allclose(slices.norm(dim=-1), torch.ones(3, 5), atol=1e-6)
    for k in range(3):
        part = embedding[:, 4 * k:4 * (k + 1)]
        assert torch.allclose(slices[k], part / part.norm(dim=-1, keepdim=True), atol=1e-6)
    whole = full_embedding(embedding, 3)
    assert torch.allclose(whole * math.sqrt(3), torch.cat(list(slices), dim=1), atol=1e-6)
    assert torch.allclose(whole.norm(dim=-1), torch.ones(5), atol=1e-6)
    squared = pairwise_distances(whole).pow(2)  # D² is the mean of the learners' D_k²
    assert torch.allclose(squared, pairwise_distances(slices).pow(2).mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="divide"):
        split_embedding(embedding, 5)


def test_margin_loss_matches_its_formula_on_hand_made_pairs():
    d_ap, d_an = torch.tensor([0.5, 1.1, 1.5]), torch.tensor([1.6, 1.2, 0.9])
    # positives: [0.5-1.0]+ = 0, [1.1-1.0]+ = 0.1, [1.5-1.0]+ = 0.5; negatives: [1.4-1.6]+ = 0, [1.4-1.2]+ = 0.2, 0.5
    expected = (0.1 + 0.5 + 0.2 + 0.5) / 4  # averaged over the 4 non-zero terms
    assert margin_loss(d_ap, d_an, beta=1.2, alpha=0.2).item() == pytest.approx(expected, abs=1e-6)
    assert margin_loss(torch.tensor([0.1]), torch.tensor([2.0])).item() == 0.0


def test_distance_weighted_sampling_draws_from_one_over_q():
    n = 8
    distances = torch.tensor([[0.0, 0.3, 0.7, 1.0, 1.3, 1.5]])
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    d = distances[0, 1:].clamp_min(0.5)
    w = d.pow(-(n - 2)) * (1 - d.pow(2) / 4).pow(-(n - 3) / 2) * (distances[0, 1:] < 1.4)
    expected = w / w.sum()
    weights = distance_weights(distances, torch.ones(1, 6, dtype=torch.bool).index_fill(1, torch.tensor([0]), False),
                               n)[0, 1:]
    assert torch.allclose(weights / weights.sum(), expected, atol=1e-5)
    generator = torch.Generator().manual_seed(0)
    drawn = sample_negatives(distances.expand(6, 6), labels, 50_000, sampler="distance-weighted", dim=n,
                             generator=generator)[0]
    frequency = torch.bincount(drawn, minlength=6)[1:].float() / 50_000
    assert torch.allclose(frequency, expected, atol=0.01)
    assert int(torch.bincount(drawn, minlength=6)[5]) == 0  # beyond β + α the loss is zero: never drawn


def test_distance_weights_scale_by_the_largest_negative_not_by_the_anchor_or_its_positives():
    # a 256-d anchor with a close positive (0.3) and negatives at 0.9, 1.1, 1.3 and 1.5 (beyond β + α = 1.4)
    n = 256
    distances = torch.tensor([0.0, 0.3, 0.9, 1.1, 1.3, 1.5])
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    table = (distances.unsqueeze(0) - distances.unsqueeze(1)).abs()  # points on a line: row 0 is the anchor
    negatives = labels.unsqueeze(0) != labels.unsqueeze(1)
    d = distances[2:5].double()
    log_w = -(n - 2) * d.log() - (n - 3) / 2 * (1 - d.pow(2) / 4).log()
    expected = (log_w - log_w.max()).exp()
    drawn = sample_negatives(table, labels, 2_000, sampler="distance-weighted", dim=n,
                             generator=torch.Generator().manual_seed(0))[0]
    frequency = torch.bincount(drawn, minlength=6).double() / 2_000
    assert frequency[5] == 0  # scaled by the anchor's weight, all negatives underflowed: drawn uniformly
    assert torch.allclose(frequency[2:5], expected / expected.sum(), atol=0.01)
    weights = distance_weights(table, negatives, n)[0]
    assert weights[:2].tolist() == [0.0, 0.0] and weights[5] == 0.0  # not negatives, or beyond β + α
    assert torch.allclose(weights[2:5].double(), expected, rtol=1e-4) and weights.max() == 1.0


def test_official_sampler_takes_the_closest_negatives_beyond_the_cutoff():
    distances = torch.tensor([[0.0, 0.2, 0.3, 0.9, 0.6], [0.2, 0.0, 0.5, 0.5, 0.5],
                              [0.3, 0.5, 0.0, 0.1, 0.8], [0.9, 0.5, 0.1, 0.0, 0.7], [0.6, 0.5, 0.8, 0.7, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    chosen = sample_negatives(distances, labels, 2, sampler="official", dim=8)
    assert chosen[0].tolist() == [4, 3]  # 0.3 is under the cutoff 0.5; then 0.6, 0.9
    assert (labels[chosen] != labels.unsqueeze(1)).all()


def test_batch_margin_loss_has_gradients_and_falls_when_classes_separate():
    labels = torch.arange(4).repeat_interleave(3)
    mixed = torch.nn.functional.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    separated = torch.nn.functional.normalize(torch.eye(8)[labels] + 0.01 * mixed, dim=-1)
    mixed.requires_grad_(True)
    kwargs = dict(sampler="distance-weighted", beta=1.2, alpha=0.2, cutoff=0.5, nonzero_loss_cutoff=1.4)
    loss = batch_margin_loss(mixed, labels, **kwargs)
    loss.backward()
    assert mixed.grad.abs().sum() > 0
    assert batch_margin_loss(separated, labels, **kwargs) < loss


def test_batches_come_from_one_cluster_with_at_least_two_images_per_class():
    torch.manual_seed(0)
    labels = torch.arange(60) % 12
    assignment = (labels >= 6).long()  # classes 0–5 in cluster 0, 6–11 in cluster 1
    assignment[labels == 5] = torch.tensor([0, 0, 0, 0, 1])  # class 5 is split; class 5 has 1 image in cluster 1
    batches = ClusterBatches(labels, assignment, 2, classes_per_batch=4, images_per_class=3)
    for cluster in (0, 1):
        for _ in range(20):
            index = batches.draw(cluster)
            assert len(index) == 12 and (assignment[index] == cluster).all()
            counts = torch.bincount(labels[index], minlength=12)
            assert set(counts[counts > 0].tolist()) == {3} and int((counts > 0).sum()) == 4
    assert batches.classes_in(1) == 6  # the lone image of class 5 gives no positive pair
    with pytest.raises(ConfigError, match="no cluster"):
        ClusterBatches(labels[:4], torch.zeros(4, dtype=torch.long), 1, 2, 2)  # four classes of one image each
    one_class = ClusterBatches(labels, torch.where(labels == 0, 1, 0), 2, 2, 2)
    assert one_class.usable == [0]  # cluster 1 holds one class only: its learner sits out


def test_sampling_repeats_images_only_when_a_class_has_too_few():
    labels = torch.tensor([0] * 6 + [1] * 2)
    batches = ClusterBatches(labels, torch.zeros(8, dtype=torch.long), 1, classes_per_batch=2, images_per_class=4)
    for _ in range(20):
        index = batches.draw(0)
        first = index[labels[index] == 0]
        assert len(set(first.tolist())) == 4  # 6 images available: drawn without replacement


def test_hungarian_matching_keeps_each_learners_cluster_under_a_permutation():
    previous = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3])
    permuted = torch.tensor([2, 0, 3, 1])[previous]
    assert torch.equal(match_clusters(previous, permuted, 4), previous)
    noisy = permuted.clone()
    noisy[0] = 1  # one point moves; the majority still decides
    assert torch.equal(match_clusters(previous, noisy, 4)[1:], previous[1:])


def test_kmeans_on_normalised_features_finds_directions():
    generator = torch.Generator().manual_seed(0)
    directions = torch.eye(3)[torch.arange(30) % 3]
    features = directions * torch.rand(30, 1, generator=generator) * 10 + 0.01 * torch.randn(30, 3, generator=generator)
    clusters = cluster_features(features, 3, seed=0)
    assert nmi(clusters, torch.arange(30) % 3) == pytest.approx(100.0)


def test_recall_at_k_and_nmi_on_hand_checked_examples():
    points = torch.tensor([[0.0], [0.1], [1.0], [1.15], [5.0], [3.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # neighbours (self excluded): 0→1 ✓, 1→0 ✓, 2→3 ✓, 3→2 ✓, 4→5 ✓, 5→3 ✗ then 2 ✗ then 4 ✓
    recall = recall_at_k(points, labels, (1, 2, 4), batch_size=4)
    assert recall[1] == pytest.approx(500 / 6) and recall[2] == pytest.approx(500 / 6) and recall[4] == 100.0
    assert nmi(torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1])) == pytest.approx(100.0)
    assert nmi(torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-9)
    assert clustering_nmi(torch.tensor([[0.0], [0.1], [5.0], [5.1]]), torch.tensor([0, 0, 1, 1]), seed=0) == \
        pytest.approx(100.0)


def test_domain_digits_split_classes_and_domains():
    data = domain_digits(seed=0)
    train_classes, test_classes = set(data.train_labels.tolist()), set(data.test_labels.tolist())
    assert len(train_classes) == 20 and len(test_classes) == 20 and not train_classes & test_classes
    assert torch.equal(data.train_labels % 4, data.train_domains)
    assert data.train_images.shape[1] == 144 and len(data.train_labels) + len(data.test_labels) == 1797
    assert not torch.equal(domain_digits(seed=1).train_domains, data.train_domains)


def test_config_errors_name_the_field_and_allowed_values():
    with pytest.raises(ConfigError, match="sampler must be one of"):
        Config(sampler="semi-hard")
    with pytest.raises(ConfigError, match="learners must divide"):
        Config(learners=5)
    with pytest.raises(ConfigError, match="images_per_class"):
        Config(images_per_class=1)
    with pytest.raises(ConfigError, match="finetune_from"):
        Config(full_embedding_from=0.6, finetune_from=0.5)
    with pytest.raises(ConfigError, match="recall_ks"):
        Config(recall_ks=(0,))
    full = Config.full()
    assert (full.embedding_dim, full.classes_per_batch, full.images_per_class, full.lr, full.epochs) == \
        (128, 20, 4, 1e-5, 200)
    schedule = Config(epochs=10, full_embedding_from=0.5, finetune_from=0.8)
    assert [schedule.phase(e) for e in (0, 4, 5, 7, 8, 9)] == ["slices"] * 2 + ["full"] * 2 + ["finetune"] * 2


def test_training_improves_recall_and_resumes_from_its_checkpoint(tmp_path):
    config = Config(epochs=2, model="mlp", eval_every=1, recluster_every=1)
    data = domain_digits(seed=0)
    first = train(data, config, 4, 0, checkpoint_path=tmp_path / "run.pt")
    assert [entry["epoch"] for entry in first.history] == [1, 2]
    assert 0 <= first.final["recall@1"] <= first.final["recall@8"] <= 100 and "nmi" in first.final
    assert len(first.assignments) == 2 and 0 <= first.final["cluster_domain_nmi"] <= 100
    longer = train(data, config.replace(epochs=3), 4, 0, checkpoint_path=tmp_path / "run.pt")
    assert [entry["epoch"] for entry in longer.history] == [1, 2, 3]
    assert longer.history[0] == first.history[0] and len(longer.assignments) == 3
    assert longer.initial == first.initial and set(first.initial) == {"recall@1", "recall@2", "recall@4", "recall@8"}


def test_run_experiment_end_to_end_metric_names_and_claims(tmp_path):
    config = Config(epochs=2, model="mlp")
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    for k in (4, 1):
        assert 0 <= metrics[f"k{k}_recall@1"] <= 100 and f"k{k}_epoch2_recall@1" in metrics
    assert metrics["gain_recall@1"] == pytest.approx(metrics["k4_recall@1"] - metrics["k1_recall@1"])
    paired = metrics["k4_seed0_recall@1"] - metrics["k1_seed0_recall@1"]  # one repeat: the only pair
    assert metrics["min_paired_gain_recall@1"] == pytest.approx(paired)
    assert 0 <= metrics["k4_initial_recall@1"] <= 100
    assert {claim.key for claim in claims(metrics)} == {"recall1-gain", "training-transfers"}


def test_claims_fail_when_the_learners_do_not_help():
    metrics = {"k4_recall@1": 60.0, "k1_recall@1": 63.0, "gain_recall@1": -3.0, "min_paired_gain_recall@1": -3.0,
               "k4_initial_recall@1": 55.0}
    verdict = {claim.key: claim.holds for claim in claims(metrics)}
    assert verdict == {"recall1-gain": False, "training-transfers": False}
    assert claims({"k1_recall@1": 60.0}) == []  # a run without the K = 4 arm has nothing to claim


def test_the_gain_claim_fails_when_one_run_loses_although_the_mean_gains():
    config = Config(repeats=3)
    per_run = {4: (70.0, 72.0, 60.0), 1: (60.0, 61.0, 62.0)}  # paired gains 10, 11, -2: mean gain +6.3
    runs = {(k, seed): {**{f"recall@{r}": value for r in config.recall_ks}, "nmi": 50.0, "initial_recall@1": 20.0,
                        "mean_recall@1_over_epochs": value}
            for k, values in per_run.items() for seed, value in zip(config.seeds, values)}
    metrics = comparison_metrics(config, runs)
    assert metrics["gain_recall@1"] == pytest.approx(19 / 3) and metrics["min_paired_gain_recall@1"] == -2.0
    verdict = {claim.key: claim.holds for claim in claims(metrics)}
    assert verdict == {"recall1-gain": False, "training-transfers": True}
    runs[4, config.seeds[2]] = {**runs[4, config.seeds[2]], "recall@1": 64.0}  # the last run gains 2 as well
    assert {claim.key: claim.holds for claim in claims(comparison_metrics(config, runs))}["recall1-gain"]


def tiny_trunk() -> nn.Module:
    """A random-weights stand-in with ResNet-50's interface: RGB images in, 2048 pooled features out."""
    return nn.Sequential(nn.Conv2d(3, 8, 7, stride=8), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 2048))


def write_fake_cub(path, classes=(1, 2, 3, 101, 102, 103), per_class=4):
    """A CUB_200_2011.tgz in the real layout (images.txt, image_class_labels.txt, images/<folder>/<file>.jpg)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images, labels = [], []
    with tarfile.open(path, "w:gz") as archive:
        def add(name, payload):
            info = tarfile.TarInfo(f"CUB_200_2011/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        for number, label in enumerate(c for c in classes for _ in range(per_class)):
            relative = f"{label:03d}.Bird_{label}/Bird_{label}_{number:04d}.jpg"
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (30 + number, 40, 3), dtype=np.uint8)).save(buffer, "JPEG")
            add(f"images/{relative}", buffer.getvalue())
            images.append(f"{number + 1} {relative}")
            labels.append(f"{number + 1} {label}")
        add("images.txt", ("\n".join(images) + "\n").encode())
        add("image_class_labels.txt", ("\n".join(labels) + "\n").encode())


def test_cub_reader_keeps_order_classes_and_size(tmp_path):
    write_fake_cub(tmp_path / "CUB_200_2011.tgz")
    images, classes = read_cub(tmp_path / "CUB_200_2011.tgz", size=32)
    assert images.shape == (24, 3, 32, 32) and images.dtype == torch.uint8
    assert classes.tolist() == [c for c in (1, 2, 3, 101, 102, 103) for _ in range(4)]


def test_full_mode_runs_on_tiny_cub_format_files(monkeypatch, tmp_path):
    archive = tmp_path / "CUB_200_2011.tgz"
    write_fake_cub(archive)
    monkeypatch.setattr(dc_data, "fetch_dataset", lambda name, download=True: {"CUB_200_2011.tgz": archive})
    monkeypatch.setitem(dc_models.TRUNKS, "resnet-50", tiny_trunk)
    config = Config.full(epochs=2, learners=2, classes_per_batch=2, images_per_class=2, recluster_every=1,
                         device="cpu", batch_size_eval=8)
    metrics = run_experiment(config, RunState(tmp_path / "run", resume=False))
    assert 0 <= metrics["k2_recall@1"] <= 100 and 0 <= metrics["k1_nmi"] <= 100
    model = dc_models.make_embedder("resnet-50", 0, 0, 128).train()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.training and not m.weight.requires_grad for m in norms)  # frozen batch norm


def test_full_mode_without_cub_explains_what_to_download():
    with pytest.raises(Exception, match="CUB_200_2011.tgz"):
        dc_data.load_cub(download=False)


def test_full_mode_without_torchvision_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were not installed: import fails
    with pytest.raises(ImportError, match="pip install torchvision"):
        dc_models.resnet50_trunk()
