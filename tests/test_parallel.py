"""Runs side by side in worker processes: the same results as in order, here, and clear errors."""
import math

import pytest
import torch

from rfy.checkpoint import RunState
from rfy.parallel import cpu_cores, default_workers, in_processes, stages_in_processes


def test_worker_processes_return_every_job_with_its_own_result():
    jobs = [5, 3, 8, 1]
    results = dict(in_processes(math.factorial, jobs, workers=2))
    assert results == {job: math.factorial(job) for job in jobs}


def test_one_worker_runs_the_jobs_here_in_order():
    order = []
    results = list(in_processes(lambda job: order.append(job) or -job, [2, 7, 1], workers=1))
    assert results == [(2, -2), (7, -7), (1, -1)] and order == [2, 7, 1]


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(ValueError, match="factorial"):
        dict(in_processes(math.factorial, [3, -1], workers=2))


@pytest.mark.parametrize("workers", [0, -2, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        list(in_processes(math.factorial, [1, 2], workers=workers))


def test_default_workers_is_one_per_core_on_the_cpu_and_one_on_an_accelerator():
    assert default_workers("cpu") == cpu_cores() >= 1
    assert default_workers("cuda") == 1 and default_workers(torch.device("mps")) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_stages_in_processes_runs_only_unfinished_stages_and_saves_each(tmp_path, workers):
    state = RunState(tmp_path / "run", resume=False)
    state.stage("done", lambda _: {"x": -1.0})  # finished earlier: its job must not run again
    jobs = {"first": (("x", 1.0),), "done": (("x", 2.0),), "last": (("x", 3.0),)}
    metrics = stages_in_processes(state, jobs, dict, workers)
    assert list(metrics) == ["first", "done", "last"]
    assert metrics == {"first": {"x": 1.0}, "done": {"x": -1.0}, "last": {"x": 3.0}}
    assert RunState(tmp_path / "run", resume=True).stages == metrics


def pair_with_metrics(job):
    """A toy job's result (its name upper-cased) and its metrics."""
    return job.upper(), {"length": float(len(job))}


def test_stages_in_processes_hands_back_the_results_of_the_stages_it_computed(tmp_path):
    state = RunState(tmp_path / "run", resume=False)
    state.stage("done", lambda _: {"length": -1.0})
    results = {}
    metrics = stages_in_processes(state, {"done": "old", "new": "abcd"}, pair_with_metrics, 1, results=results)
    assert metrics == {"done": {"length": -1.0}, "new": {"length": 4.0}}
    assert results == {"new": "ABCD"}  # a stage finished earlier brings its metrics only
