"""Chapter 8's full preset at its true size (``rfy.divide_conquer.cost``), and the step count of the reduced one.

The full preset's trunk is torchvision's ResNet-50 (random weights: nothing is downloaded), and it takes
real steps at its true size. A second test runs everything around the trunk with a stand-in of the
trunk's interface (224×224 crops in, frozen batch norm, 2,048 features out), so a failure there points
at our code rather than at the trunk: CUB-sized uint8 photographs cropped and mirrored on the device, batches of 20 classes × 4
images drawn per cluster, the 128-d embedding in K = 4 slices and whole, the margin loss with
distance-weighted sampling, Adam, and an evaluation batch of 256 test images.

The k-means re-clustering runs at its true size (5,864 training images × 2,048 features, K = 4, up to
100 iterations) but with one restart in place of the preset's five: the five took about 30 s on 2 busy
cores, and a restart changes no shape.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from full_size import take_real_steps
from probe_checks import keeping_evaluations, optimiser_steps
from rfy.checkpoint import RunState
from rfy.cost import Probe
from rfy.divide_conquer import Config, Learner, arms, run_experiment
from rfy.divide_conquer.cost import CUB_SIZES, cost_parts, kmeans_probe, learner_probe, shared_data
from rfy.divide_conquer.models import RESNET_FEATURES
from rfy.divide_conquer.train import CROP

dc_train = importlib.import_module("rfy.divide_conquer.train")  # the package's name ``train`` is the function

class StandInTrunk(nn.Module):
    """The trunk's interface without torchvision: normalised CROP × CROP images in, batch norm (frozen by the
    embedder, as ResNet-50's is), ``RESNET_FEATURES`` features out."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3)
        self.project = nn.Linear(3 * 4 * 4, RESNET_FEATURES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[1:] == (3, CROP, CROP) and images.dtype == torch.float32
        return self.project(F.adaptive_avg_pool2d(self.norm(images), 4).flatten(1))


def learner_parts(config: Config, trunks: list[nn.Module]) -> list:
    """The parts of ``config`` that train an arm (not the k-means), arm ``i`` built on ``trunks[i]``."""
    parts = [part for part in cost_parts(config) if part.unit == "step"]
    assert len(parts) == len(arms(config)) == len(trunks)
    data_for = shared_data(config)
    return [dataclasses.replace(part, build=functools.partial(learner_probe, config, learners, data_for, trunk=trunk))
            for part, learners, trunk in zip(parts, arms(config), trunks)]


@pytest.mark.full_size
def test_the_full_preset_takes_real_steps_with_resnet_50():
    take_real_steps([part for part in cost_parts(Config.full()) if part.unit == "step"])


@pytest.mark.full_size
def test_everything_around_the_trunk_runs_at_the_full_size():
    config = Config.full()
    trunks = [StandInTrunk() for _ in arms(config)]
    parts, embeddings = keeping_evaluations(learner_parts(config, trunks))
    frozen = [trunk.norm.weight.detach().clone() for trunk in trunks]
    with optimiser_steps() as changes:
        take_real_steps(parts)
    assert len(changes) == len(arms(config)) and min(changes) > 0  # each arm's step moved its parameters
    for trunk, weight in zip(trunks, frozen):  # frozen batch norm: no update, no running statistics
        assert torch.equal(trunk.norm.weight, weight) and int(trunk.norm.num_batches_tracked) == 0
    for embedding in embeddings:  # one unit-length 128-d embedding per image of the evaluation batch
        assert embedding.shape == (config.batch_size_eval, config.embedding_dim)
        torch.testing.assert_close(embedding.norm(dim=1), torch.ones(config.batch_size_eval))


@pytest.mark.full_size
def test_a_re_clustering_runs_at_the_full_size():
    config = Config.full()
    parts = [part for part in cost_parts(config) if part.unit == "re-clustering"]
    assert [part.name for part in parts] == [f"K = {config.learners}: k-means"]
    quick = config.replace(kmeans_restarts=1)  # see the module docstring
    probe, assignments = kmeans_probe(quick, config.learners, CUB_SIZES[0], torch.device("cpu")), []
    recording = Probe(step=lambda: assignments.append(probe.step()), evaluate=probe.evaluate)
    take_real_steps([dataclasses.replace(parts[0], build=lambda device: recording)])
    (assignment,) = assignments
    assert assignment.shape == (CUB_SIZES[0],) and set(assignment.tolist()) == set(range(config.learners))


def test_the_cost_counts_the_steps_and_evaluations_the_reduced_run_takes(tmp_path, monkeypatch):
    config = Config.reduced(model="mlp", epochs=6, eval_every=4, repeats=2, finetune_from=0.6)  # epoch 4 fine-tunes
    steps, encodings, clusterings = Counter(), Counter(), Counter()
    step, inputs, cluster_features = Learner.step, Learner.inputs, dc_train.cluster_features

    def counted_step(self, cluster, phase):
        steps[f"K = {self.learners}"] += 1
        return step(self, cluster, phase)

    def counted_inputs(self, images, train):
        if not train:  # a batch of Learner.encode (an evaluation or a re-clustering)
            encodings[f"K = {self.learners}"] += 1
        return inputs(self, images, train)

    def counted_clustering(features, clusters, **options):
        clusterings[f"K = {clusters}: k-means"] += 1
        return cluster_features(features, clusters, **options)

    monkeypatch.setattr(Learner, "step", counted_step)
    monkeypatch.setattr(Learner, "inputs", counted_inputs)
    monkeypatch.setattr(dc_train, "cluster_features", counted_clustering)
    run_experiment(config, RunState(tmp_path, resume=False))
    parts = cost_parts(config)
    assert {part.name: part.steps for part in parts if part.unit == "step"} == dict(steps)
    assert {part.name: part.evaluations for part in parts if part.unit == "step"} == dict(encodings)
    assert {part.name: part.steps for part in parts if part.unit == "re-clustering"} == dict(clusterings)
