"""Chapter 6's full preset at its true size (``rfy.voters.cost``), and the step count of the reduced one."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

import rfy.voters.train as voters_train
from full_size import take_real_steps
from probe_checks import keeping_evaluations, optimiser_steps
from rfy.checkpoint import RunState
from rfy.voters import HEADS, Config, run_experiment
from rfy.voters.cost import SCUT_IMAGES, TRUNK_FEATURES, cost_parts
from rfy.voters.scut import FEATURE_BATCH

SCUT_TEST_FACES = SCUT_IMAGES // 5


@pytest.mark.full_size
def test_every_head_of_the_full_preset_trains_on_scut_sized_folds():
    config = Config.full()
    heads = [part for part in cost_parts(config) if part.name.endswith(" head")]
    assert [part.name for part in heads] == [f"{head} head" for head in config.heads]
    parts, scores = keeping_evaluations(heads)
    with optimiser_steps() as changes:
        take_real_steps(parts)
    assert len(changes) == len(HEADS) and min(changes) > 0  # every step moved the head's parameters
    for score in scores:  # one score per test face of a fold and trait (one trait: beauty)
        assert score.shape == (SCUT_TEST_FACES, 1) and score.dtype == torch.float32 and score.isfinite().all()


@pytest.mark.full_size
def test_the_frozen_trunk_runs_on_a_batch_of_full_size_faces():
    config = Config.full()
    parts = [part for part in cost_parts(config) if part.name.startswith("features")]
    assert len(parts) == 1
    take_real_steps(parts)
    step_output = parts[0].build(torch.device("cpu")).step()
    assert step_output.shape == (FEATURE_BATCH, TRUNK_FEATURES[config.trunk]) and step_output.isfinite().all()


def test_the_cost_counts_the_steps_and_evaluations_the_reduced_run_takes(tmp_path, monkeypatch):
    config = Config.reduced(n_items=600, test_items=100, steps=7, repeats=2, permutations=2, heldout_votes=5)
    steps, evaluations = Counter(), Counter()
    train_step, score_test_photos = voters_train.train_step, voters_train.score_test_photos

    def counted_step(model, *args, **kwargs):
        steps[f"{model.kind} head"] += 1
        return train_step(model, *args, **kwargs)

    def counted_scores(model, *args, **kwargs):
        evaluations[f"{model.kind} head"] += 1
        return score_test_photos(model, *args, **kwargs)

    monkeypatch.setattr(voters_train, "train_step", counted_step)
    monkeypatch.setattr(voters_train, "score_test_photos", counted_scores)
    run_experiment(config, RunState(tmp_path, resume=False))
    parts = cost_parts(config)
    assert {part.name: part.steps for part in parts} == dict(steps)
    assert {part.name: part.evaluations for part in parts} == dict(evaluations)
