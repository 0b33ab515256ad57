"""Checkpoints and resumable runs: a run is a list of named stages, each saved when it finishes.

A long run on Colab can be cut off at any time. ``RunState`` keeps, in one work directory, the
metrics of every finished stage and the wall time spent so far; a stage that was interrupted
resumes from the last checkpoint its training loop saved (``save_checkpoint``).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a crash never leaves a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The state saved at ``path``, or ``None`` when there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    """Every random stream a training loop draws from, so a resumed run continues the same sequence."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the streams captured by ``rng_state``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunState:
    """Finished stages and elapsed time of one run, kept as JSON in ``workdir/state.json``."""

    def __init__(self, workdir: str | Path, *, resume: bool) -> None:
        self.workdir = Path(workdir)
        if not resume and self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._file = self.workdir / "state.json"
        saved = json.loads(self._file.read_text()) if self._file.exists() else {}
        self.stages: dict[str, dict[str, Any]] = saved.get("stages", {})
        self._elapsed_before = float(saved.get("elapsed_s", 0.0))
        self._started = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        """Wall time over every session of this run, the current one included."""
        return self._elapsed_before + time.perf_counter() - self._started

    def stage(self, name: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn(checkpoint_path)`` unless stage ``name`` already finished; return its metrics."""
        if name not in self.stages:
            self.stages[name] = fn(self.workdir / f"{name}.pt")
            self._save()
        return self.stages[name]

    def _save(self) -> None:
        payload = {"stages": self.stages, "elapsed_s": self.elapsed_s}
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, self._file)
