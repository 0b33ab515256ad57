"""Chapter 7's full preset at its true size (``rfy.mixmatch.cost``), and the step count of the reduced one.

The full preset's step is cheap enough for 2 cores (WRN-28-2, batch 64 and K = 2 views: a few seconds on
the run's one CPU thread), so it takes a real step; its evaluation batch of 1,000 CIFAR-10 images is the
slow part (about 10 s)."""
from __future__ import annotations

import inspect
import math
from collections import Counter

import pytest
import torch

from full_size import take_real_steps
from probe_checks import keeping_evaluations, optimiser_steps
from rfy.checkpoint import RunState
from rfy.mixmatch import MIXMATCH, SUPERVISED, Config, Trainer, run_experiment
from rfy.mixmatch.cost import EVALUATION_BATCH, cost_parts, synthetic_split


@pytest.mark.full_size
def test_the_full_preset_takes_a_real_step_on_cifar_sized_data():
    config = Config.full()
    data = synthetic_split(config)
    assert data.labelled_images.shape == (250, 3, 32, 32) and data.labelled_images.dtype == torch.uint8
    assert data.unlabelled_images.shape == (50_000, 3, 32, 32) and data.labels.bincount().tolist() == [25] * 10
    parts, errors = keeping_evaluations(cost_parts(config))
    assert [part.name for part in parts] == [MIXMATCH]
    with optimiser_steps() as changes:
        take_real_steps(parts)
    assert len(changes) == 1 and changes[0] > 0  # the step moved WRN-28-2's parameters
    assert len(errors) == 1 and 0 <= errors[0] <= 100  # test error (%) of the EMA model on one batch


def test_the_cost_counts_the_steps_and_evaluations_the_reduced_run_takes(tmp_path, monkeypatch):
    config = Config.reduced(steps=12, eval_every=5, repeats=2, methods=(SUPERVISED, MIXMATCH))
    steps, evaluations = Counter(), Counter()
    step, test_error = Trainer.step, Trainer.test_error
    assert inspect.signature(test_error).parameters["batch_size"].default == EVALUATION_BATCH

    def counted_step(self, index):
        steps[self.method] += 1
        return step(self, index)

    def counted_error(self, batch_size=EVALUATION_BATCH):
        evaluations[self.method] += math.ceil(len(self.data.test_labels) / batch_size)
        return test_error(self, batch_size)

    monkeypatch.setattr(Trainer, "step", counted_step)
    monkeypatch.setattr(Trainer, "test_error", counted_error)
    run_experiment(config, RunState(tmp_path, resume=False))
    parts = cost_parts(config)
    assert {part.name: part.steps for part in parts} == dict(steps)
    assert {part.name: part.evaluations for part in parts} == dict(evaluations)
