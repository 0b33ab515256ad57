"""Independent training runs side by side, one worker process per CPU core.

Several chapters train a handful of small, independent models (agents, seeds, model kinds). Each
such run pins one torch thread (``rfy.runtime.torch_threads``), so one run cannot use a second
core, and two threads per run on a busy machine spin rather than compute. Running the runs in
separate processes uses every core, and because each run seeds itself and uses one thread, a run
gives the same bits in a worker as in the calling process.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import torch

from rfy.checkpoint import RunState
from rfy.progress import progress

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
Job = TypeVar("Job")
Result = TypeVar("Result")


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers(device: torch.device | str) -> int:
    """One worker per CPU core when the runs train on the CPU; one otherwise (runs sharing one GPU
    would only queue for it)."""
    return cpu_cores() if torch.device(device).type == "cpu" else 1


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when ``parent_pid`` (the process that started it) ends, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
    daemon thread checks every second whether the parent is gone. A worker must never keep training
    and writing checkpoints into a run folder nobody holds any more.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def in_processes(function: Callable[[Job], Result], jobs: Sequence[Job], workers: int, *,
                 desc: str = "runs") -> Iterator[tuple[Job, Result]]:
    """Yield ``(job, function(job))`` for every job, as each finishes, computed on ``workers`` processes.

    With one worker (or one job) everything runs here, in order. ``function`` and the jobs must be
    picklable (a module-level function, plain data), and so must the results. Workers are spawned,
    not forked: forking a process whose torch threads are running (a notebook kernel) can deadlock.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    workers = min(workers, len(jobs))
    if workers <= 1:
        yield from ((job, function(job)) for job in jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(function, job): job for job in jobs}
        for future in progress(as_completed(futures), total=len(futures), desc=desc, unit="run"):
            yield futures[future], future.result()


def stages_in_processes(state: RunState, jobs: dict[str, Job], function: Callable[[Job], Any], workers: int, *,
                        desc: str = "runs", results: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The metrics of every stage of ``jobs`` (stage name → job), in the order of ``jobs``.

    Stages that ``state`` has not finished are computed as ``function(job)`` on ``workers`` processes
    (``in_processes``), and each is saved as soon as it finishes, so an interrupted run resumes
    with the rest. They are marked started first, so a start-over deletes the checkpoints their
    workers wrote. The jobs must be hashable (frozen dataclasses). With ``results`` (a dict),
    ``function`` returns ``(result, metrics)``: the metrics are the stage, and the result (what the
    caller needs beyond them, e.g. a trained agent) goes to ``results[name]`` for each stage computed here.
    """
    missing = {job: name for name, job in jobs.items() if name not in state.stages}
    state.mark_started(list(missing.values()))
    for job, value in in_processes(function, list(missing), workers, desc=desc):
        if results is not None:
            results[missing[job]], value = value
        state.stage(missing[job], lambda _, metrics=value: metrics)
    return {name: state.stages[name] for name in jobs}
