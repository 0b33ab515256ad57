"""Checkpoints and resumable runs: a run is a list of named stages, each saved when it finishes.

A long run on Colab can be cut off at any time. ``RunState`` keeps, in one work directory, the
metrics of every finished stage, the wall time spent so far and the run's config; a stage that was
interrupted resumes from the last checkpoint its training loop saved (``save_checkpoint``).

Safety rules, all enforced here once for every chapter:

- checkpoints are loaded with ``torch.load(weights_only=True)``: a file can hold tensors and plain
  Python values (numbers, strings, lists, tuples, dicts), never code, so a crafted ``.pt`` cannot
  run anything when a run resumes;
- a resume refuses a config that differs from the one the run started with (only the fields in
  ``rfy.config.RESUMABLE_CHANGES`` may change);
- starting a run over deletes only the files this run created in its own folder;
- every file is written atomically (``rfy.files.atomic_write``).
"""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rfy.config import RESUMABLE_CHANGES, RunConfig, config_differences, describe_differences, plain
from rfy.errors import ConfigError, CorruptFileError
from rfy.files import atomic_write, atomic_write_text, check_name, remove_stale_partials

STATE_FILE = "state.json"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a crash never leaves a truncated file.

    ``state`` may hold tensors, state dicts and plain Python values (what ``load_checkpoint``
    accepts); use ``rng_state()`` for random streams.
    """
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The state saved at ``path``, or ``None`` when there is none yet.

    Loads with ``weights_only=True``; a file that is truncated, not a checkpoint, or holds anything
    but tensors and plain values raises ``CorruptFileError`` naming it, and nothing in it runs.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError (bad zip), EOFError, …
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in reason or "Unsupported global" in str(error):
            reason = "it holds objects other than tensors and plain values, so it was refused unread"
        raise CorruptFileError(
            f"{path} cannot be loaded as a checkpoint ({reason[:300]}); nothing from it was used. "
            f"Start the run over without --resume, or delete {path}") from None


def rng_state() -> dict[str, Any]:
    """Every random stream a training loop draws from, so a resumed run continues the same sequence.

    Stored as tensors and plain values only (NumPy's state as a tensor of its key), so it loads
    with ``weights_only=True``.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position),
                       int(has_gauss), float(cached_gaussian)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the streams captured by ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunState:
    """Finished stages, elapsed time and config of one run, kept as JSON in ``workdir/state.json``.

    With ``resume=False`` an earlier run in ``workdir`` is cleared: only the files it created
    (``state.json`` and its ``.pt`` checkpoints) are deleted; other files in the folder stay. A
    folder without ``state.json`` is left as it is, and refused if it holds ``.pt`` files (they
    could be taken for checkpoints). With ``config`` the run's config is stored, and a resume with
    a different config is refused (naming the fields), except for ``RESUMABLE_CHANGES``.
    """

    def __init__(self, workdir: str | Path, *, resume: bool, config: RunConfig | dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self._file = self.workdir / STATE_FILE
        new_config = plain(config.to_dict() if isinstance(config, RunConfig) else config) if config else None
        saved = self._read(resume) if self._file.exists() else None
        if saved is not None and resume and new_config is not None:
            self._check_same_config(saved.get("config"), new_config)
        if not resume:
            if saved is not None:
                self._clear(saved)
            elif self.workdir.is_dir() and any(self.workdir.glob("*.pt")):
                raise ConfigError(
                    f"{self.workdir} holds .pt files but no {STATE_FILE}, so rfy cannot tell whether it made them "
                    f"(it deletes only what it created, and would take them for checkpoints); move them away, "
                    f"or choose another --name or --workdir")
            saved = None
        saved = saved or {}
        self.workdir.mkdir(parents=True, exist_ok=True)
        # On resume the new config equals the saved one, except RESUMABLE_CHANGES, which take their new value.
        self.config: dict[str, Any] | None = new_config if new_config is not None else saved.get("config")
        self.stages: dict[str, dict[str, Any]] = saved.get("stages", {})
        self.started: list[str] = list(saved.get("started", list(self.stages)))
        self._elapsed_before = float(saved.get("elapsed_s", 0.0))
        self._started = time.perf_counter()
        if not self._file.exists() or new_config is not None:
            self._save()

    @property
    def elapsed_s(self) -> float:
        """Wall time over every session of this run, the current one included."""
        return self._elapsed_before + time.perf_counter() - self._started

    def checkpoint_path(self, name: str) -> Path:
        """Where stage ``name`` keeps its checkpoint: ``workdir/<name>.pt``."""
        check_name("stage name", name)
        return self.workdir / f"{name}.pt"

    def mark_started(self, names: list[str]) -> None:
        """Note that stages ``names`` are starting, before they run elsewhere (in worker processes), so
        that their checkpoints count as this run's files; record each one's metrics with ``stage``."""
        for name in names:
            check_name("stage name", name)
        self.started += [name for name in names if name not in self.started]
        self._save()

    def stage(self, name: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn(checkpoint_path)`` unless stage ``name`` already finished; return its metrics.

        ``name`` must be one safe file name (``rfy.files.NAME_RULE``); the checkpoint is
        ``workdir/<name>.pt``.
        """
        check_name("stage name", name)
        if name not in self.stages:
            if name not in self.started:
                self.started.append(name)
                self._save()
            self.stages[name] = fn(self.checkpoint_path(name))
            self._save()
        return self.stages[name]

    def _read(self, resume: bool) -> dict[str, Any]:
        """The saved state; a corrupt one is an error on resume, and is cleared when starting over."""
        try:
            saved = json.loads(self._file.read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("stages", {}), dict):
                raise ValueError("not a JSON object with a 'stages' object")
            return saved
        except (OSError, ValueError, UnicodeDecodeError) as error:
            if resume:
                raise CorruptFileError(
                    f"{self._file} is not a readable run state ({error}); start the run over without --resume "
                    f"(this deletes the run's checkpoints in {self.workdir})") from None
        # Starting over: the folder holds a state.json, so it is a run folder; its checkpoints are
        # the *.pt files RunState names after its stages.
        return {"started": [path.stem for path in self.workdir.glob("*.pt")]}

    def _check_same_config(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if old is None:
            raise ConfigError(f"{self._file} does not record the config its run started with (an older rfy made it), "
                              f"so --resume cannot check that the settings match; start the run over without --resume")
        differences = config_differences(old, new, ignore=RESUMABLE_CHANGES)
        if differences:
            raise ConfigError(
                f"--resume with a config that differs from the checkpoint's: {describe_differences(differences)}; "
                f"only {', '.join(RESUMABLE_CHANGES)} may change on resume. Resume with the run's settings, "
                f"or start over without --resume (or under another --name)")

    def _clear(self, saved: dict[str, Any]) -> None:
        """Delete the files an earlier run created here: its checkpoints and ``state.json``.

        The checkpoints are its stages' ``<stage>.pt`` and any other ``.pt`` file at the top of the
        folder (a stage may keep several, e.g. one per model, via ``state.workdir``), with the
        temporary files of a write that was killed. Other files and subfolders stay.
        """
        names = {name for name in [*saved.get("started", []), *saved.get("stages", {})]
                 if isinstance(name, str) and name not in {".", ".."} and "/" not in name and "\\" not in name}
        checkpoints = {self.workdir / f"{name}.pt" for name in names} | set(self.workdir.glob("*.pt"))
        for checkpoint in checkpoints:
            if checkpoint.is_file() or not checkpoint.exists():
                checkpoint.unlink(missing_ok=True)
                remove_stale_partials(checkpoint, older_than_s=0)
        self._file.unlink(missing_ok=True)
        remove_stale_partials(self._file, older_than_s=0)

    def _save(self) -> None:
        payload = {"config": self.config, "stages": self.stages, "started": self.started,
                   "elapsed_s": self.elapsed_s}
        atomic_write_text(self._file, json.dumps(payload, indent=2))


class ResumableLoop:
    """The resume-and-checkpoint plumbing of a training loop, written once for every chapter.

    ``parts`` are what the loop trains, saved and restored under their names: anything with
    ``state_dict``/``load_state_dict`` (modules, optimizers, schedulers, a chapter's learner) or a
    ``torch.Generator``. With ``rng`` the global random streams (``rng_state``) are saved too. The
    loop's own progress (step, history, seconds) goes in as keyword values. Without a ``path`` the
    loop runs unsaved: ``resume`` finds nothing and ``save`` does nothing.

        loop = ResumableLoop(checkpoint, {"model": model, "optimizer": optimizer}, rng=True)
        progress = loop.resume() or {"epoch": 0, "history": []}
        for epoch in range(progress["epoch"], epochs):
            ...
            loop.save(epoch=epoch + 1, history=history)
    """

    def __init__(self, path: str | Path | None, parts: dict[str, Any], *, rng: bool = False) -> None:
        reserved = {"rng"} & set(parts)
        if reserved:
            raise ValueError(f"part names {sorted(reserved)} are reserved for the random streams; rename them")
        self.path, self.parts, self.rng = (Path(path) if path else None), parts, rng

    def resume(self) -> dict[str, Any] | None:
        """Load the checkpoint into the parts (and the random streams); return its loop values, or ``None``."""
        saved = load_checkpoint(self.path) if self.path else None
        if saved is None:
            return None
        for name, part in self.parts.items():
            if isinstance(part, torch.Generator):
                part.set_state(saved[name])
            else:
                part.load_state_dict(saved[name])
        if self.rng:
            set_rng_state(saved["rng"])
        return {key: value for key, value in saved.items() if key not in self.parts and key != "rng"}

    def save(self, **values: Any) -> None:
        """Checkpoint the parts, the random streams (with ``rng``) and ``values`` atomically."""
        if self.path is None:
            return
        state = {name: part.get_state() if isinstance(part, torch.Generator) else part.state_dict()
                 for name, part in self.parts.items()}
        if self.rng:
            state["rng"] = rng_state()
        save_checkpoint(self.path, {**state, **values})
