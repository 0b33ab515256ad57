"""Checkpoints and resumable runs: a run is a list of named stages, each saved when it finishes.

A long run on Colab can be cut off at any time. ``RunState`` keeps, in one work directory, the
metrics of every finished stage, the wall time spent so far and the run's config; a stage that was
interrupted resumes from the last checkpoint its training loop saved (``save_checkpoint``).

Safety rules, all enforced here once for every chapter:

- checkpoints are loaded with ``torch.load(weights_only=True)``: a file can hold tensors and plain
  Python values (numbers, strings, lists, tuples, dicts), never code, so a crafted ``.pt`` cannot
  run anything when a run resumes;
- a folder is a run folder only when its ``state.json`` carries rfy's marker and a run id; any other
  ``state.json`` (or a run folder that is a symbolic link) is refused, never overwritten;
- one run per folder at a time: ``RunState`` holds an advisory lock on the folder for its lifetime;
- a resume refuses a config that differs from the one the run started with (only the fields in
  ``rfy.config.RESUMABLE_CHANGES`` may change), and torch's global numeric settings other than the
  run's (``rfy.runtime.numeric_settings``: a float64 default dtype), and every checkpoint saved in a run folder carries
  the run id and config fingerprint, so a checkpoint of another run or config is never used;
- starting a run over deletes only the files the run registered as its own (``state.json``, its
  stages' checkpoints and every file saved with ``save_checkpoint`` in its folder);
- every file is written atomically (``rfy.files.atomic_write``); temporary files a killed write
  left behind are removed when the run starts again;
- the elapsed wall time is saved with every checkpoint, so a resumed run's time counts the lost session.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rfy.config import MISSING, RESUMABLE_CHANGES, RunConfig, config_differences, describe_differences, plain
from rfy.errors import ConfigError, CorruptFileError
from rfy.files import (NAME_PATTERN, NAME_RULE, atomic_write, atomic_write_text, check_name, describe_path,
                       read_small_file, remove_stale_partials)
from rfy.runtime import numeric_settings

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one run per folder is then the user's care
    fcntl = None

STATE_FILE = "state.json"
#: The field and value that mark a ``state.json`` as written by rfy (with a ``run_id``).
MARKER_FIELD, MARKER = "written_by", "rfy run state"
#: The largest ``state.json`` read: it holds stage metrics and file names, kilobytes; a larger file is not one.
MAX_STATE_BYTES = 16 << 20
#: The key under which ``save_checkpoint`` stores the run id and config fingerprint in a run's checkpoints.
RUN_TAG = "_rfy_run"


def config_fingerprint(config: dict[str, Any] | None) -> str:
    """The first 16 hex digits of the sha256 of ``config`` as sorted JSON, less ``RESUMABLE_CHANGES``."""
    kept = {key: value for key, value in (config or {}).items() if key not in RESUMABLE_CHANGES}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a crash never leaves a truncated file.

    ``state`` may hold tensors, state dicts and plain Python values (what ``load_checkpoint``
    accepts); use ``rng_state()`` for random streams. In a run folder the file is registered as the
    run's own, tagged with the run id and config fingerprint (``RUN_TAG``), and the run's elapsed
    time is saved. A failed write (a full disk) raises ``OSError`` naming the file.
    """
    path = Path(path)
    owner = _live_run(path.parent)
    if owner is not None:
        owner.register(path.name)
    tag = owner.tag() if owner is not None else _tag_on_disk(path.parent)
    payload = {**state, RUN_TAG: tag} if tag is not None else state
    try:
        atomic_write(path, lambda handle: torch.save(payload, handle))
    except (OSError, RuntimeError) as error:  # torch's writer may report a failed write as a RuntimeError
        free_mb = shutil.disk_usage(path.parent).free / 2**20
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0][:200]
        raise OSError(f"{path} could not be written ({reason}); {free_mb:.0f} MB are free on its disk: free "
                      f"space, or choose a folder on a larger disk, and continue with --resume") from None
    if owner is not None:
        owner.save()


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The state saved at ``path``, or ``None`` when there is none yet.

    Loads with ``weights_only=True``; a file that is truncated, not a checkpoint, or holds anything
    but tensors and plain values raises ``CorruptFileError`` naming it, and nothing in it runs. In a
    run folder, a checkpoint of another run or config (``RUN_TAG``) is refused the same way.
    """
    path = Path(path)
    kind = describe_path(path)
    if kind == "missing":
        return None
    if kind != "a regular file":  # a named pipe would block the load for ever, a device never end
        raise CorruptFileError(f"{path} cannot be loaded as a checkpoint (it is {kind}, not a regular file); "
                               f"nothing from it was used. Move it away, or start the run over without --resume")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError (bad zip), EOFError, …
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in reason or "Unsupported global" in str(error):
            reason = "it holds objects other than tensors and plain values, so it was refused unread"
        raise CorruptFileError(
            f"{path} cannot be loaded as a checkpoint ({reason[:300]}); nothing from it was used. "
            f"Start the run over without --resume, or delete {path}") from None
    tag = saved.pop(RUN_TAG, None) if isinstance(saved, dict) else None
    owner = _live_run(path.parent)
    expected = owner.tag() if owner is not None else _tag_on_disk(path.parent)
    if expected is not None and tag != expected:
        raise CorruptFileError(
            f"{path} was not saved by the run in {path.parent} (its run id or config fingerprint is "
            f"{_describe_tag(tag)}, the run's is {_describe_tag(expected)}); nothing from it was used. "
            f"Move it away, or start the run over without --resume")
    return saved


def _describe_tag(tag: Any) -> str:
    if not isinstance(tag, dict):
        return "missing"
    return f"run {tag.get('run_id')}, config {tag.get('config_fingerprint')}"


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


#: The run state this process holds for each run folder (by its real path).
_LIVE_RUNS: weakref.WeakValueDictionary[str, RunState] = weakref.WeakValueDictionary()


def _live_run(folder: Path) -> RunState | None:
    """The ``RunState`` this process holds for ``folder``, if any."""
    return _LIVE_RUNS.get(os.path.realpath(folder))


def _tag_on_disk(folder: Path) -> dict[str, str] | None:
    """The run tag of the run folder ``folder`` from its ``state.json`` (in a worker process); ``None``
    when ``folder`` is not a run folder."""
    try:
        saved = json.loads(read_state_text(folder / STATE_FILE))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(saved, dict) or saved.get(MARKER_FIELD) != MARKER or not isinstance(saved.get("run_id"), str):
        return None
    return {"run_id": saved["run_id"], "config_fingerprint": config_fingerprint(saved.get("config"))}


class RunState:
    """Finished stages, elapsed time and config of one run, kept as JSON in ``workdir/state.json``.

    The folder is locked for as long as the object lives (another process gets ``ConfigError``
    "in use by pid N"; a new ``RunState`` for the same folder in this process takes the lock over).
    With ``resume=False`` an earlier run in ``workdir`` is cleared: only the files it registered are
    deleted; other files in the folder stay. A folder without ``state.json`` is left as it is, and
    refused if it holds ``.pt`` files (they could be taken for checkpoints); a ``state.json`` that rfy
    did not write is refused. With ``config`` the run's config is stored, and a resume with a
    different config is refused (naming the fields), except for ``RESUMABLE_CHANGES``.
    """

    def __init__(self, workdir: str | Path, *, resume: bool, config: RunConfig | dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self._file = self.workdir / STATE_FILE
        self._lock = self._take_folder()
        try:
            new_config = plain(config.to_dict() if isinstance(config, RunConfig) else config) if config else None
            saved = self._read(resume) if self._file.exists() or self._file.is_symlink() else None
            if saved is not None and resume and new_config is not None:
                self._check_same_config(saved.get("config"), new_config)
            if saved is not None and resume:
                self._check_same_numerics(saved.get("numerics"))
            if saved is not None:
                self._remove_partials(saved)
            if not resume:
                if saved is not None:
                    self._clear(saved)
                elif any(self.workdir.glob("*.pt")):
                    raise ConfigError(
                        f"{self.workdir} holds .pt files but no {STATE_FILE}, so rfy cannot tell whether it made them "
                        f"(it deletes only what it created, and would take them for checkpoints); move them away, "
                        f"or choose another --name or --workdir")
                saved = None
            saved = saved or {}
            # On resume the new config equals the saved one, except RESUMABLE_CHANGES, which take their new value.
            self.config: dict[str, Any] | None = new_config if new_config is not None else saved.get("config")
            self.run_id: str = saved.get("run_id") or uuid.uuid4().hex
            self.stages: dict[str, dict[str, Any]] = saved.get("stages", {})
            self.started: list[str] = list(saved.get("started", list(self.stages)))
            self.files: list[str] = list(saved.get("files", []))
            self._elapsed_before = float(saved.get("elapsed_s", 0.0))
            self.numerics: dict[str, Any] = numeric_settings()
            self._started = time.perf_counter()
        except BaseException:
            self.release()  # a refused start leaves the folder free at once
            raise
        self.save()

    @property
    def elapsed_s(self) -> float:
        """Wall time over every session of this run, the current one included."""
        return self._elapsed_before + time.perf_counter() - self._started

    def tag(self) -> dict[str, str]:
        """What every checkpoint of this run carries (``RUN_TAG``): its run id and config fingerprint."""
        return {"run_id": self.run_id, "config_fingerprint": config_fingerprint(self.config)}

    def checkpoint_path(self, name: str) -> Path:
        """Where stage ``name`` keeps its checkpoint: ``workdir/<name>.pt``, registered as this run's file."""
        check_name("stage name", name)
        self.register(f"{name}.pt")
        return self.workdir / f"{name}.pt"

    def register(self, file_name: str) -> None:
        """Count ``workdir/<file_name>`` as this run's own, so a start-over deletes it (and nothing else)."""
        if not _is_file_name(file_name):
            raise ConfigError(f"a run's file must be one file name ({NAME_RULE}), got {file_name!r}")
        if file_name not in self.files and file_name != STATE_FILE:
            self.files.append(file_name)
            self.save()

    def mark_started(self, names: list[str]) -> None:
        """Note that stages ``names`` are starting, before they run elsewhere (in worker processes), so
        that their checkpoints count as this run's files; record each one's metrics with ``stage``."""
        for name in names:
            check_name("stage name", name)
        self.started += [name for name in names if name not in self.started]
        self.save()

    def stage(self, name: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn(checkpoint_path)`` unless stage ``name`` already finished; return its metrics.

        ``name`` must be one safe file name (``rfy.files.NAME_RULE``); the checkpoint is
        ``workdir/<name>.pt``.
        """
        check_name("stage name", name)
        if name not in self.stages:
            if name not in self.started:
                self.started.append(name)
                self.save()
            self.stages[name] = fn(self.checkpoint_path(name))
            self.save()
        return self.stages[name]

    def save(self) -> None:
        """Write ``state.json``: marker, run id, config, stages, registered files and elapsed time."""
        payload = {MARKER_FIELD: MARKER, "run_id": self.run_id, "pid": os.getpid(), "config": self.config,
                   "numerics": self.numerics, "stages": self.stages, "started": self.started, "files": self.files,
                   "elapsed_s": self.elapsed_s}
        atomic_write_text(self._file, json.dumps(payload, indent=2, allow_nan=False))

    def release(self) -> None:
        """Give up the folder's lock (it is also released when this object is collected or the process ends)."""
        self._lock()
        if _LIVE_RUNS.get(os.path.realpath(self.workdir)) is self:
            del _LIVE_RUNS[os.path.realpath(self.workdir)]

    def _take_folder(self) -> Callable[[], None]:
        """Create the folder and lock it for this object; return the function that releases the lock."""
        if self.workdir.is_symlink():
            raise ConfigError(
                f"the run folder {self.workdir} is a symbolic link (to {os.readlink(self.workdir)}); rfy runs only "
                f"in real folders, so that starting over never deletes files elsewhere; remove the link, or choose "
                f"another --name or --workdir")
        if self.workdir.exists() and not self.workdir.is_dir():
            raise ConfigError(f"the run folder {self.workdir} is a file; move it away, or choose another --name")
        self.workdir.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.workdir)
        earlier = _LIVE_RUNS.pop(key, None)
        if earlier is not None:
            earlier.release()  # this process starts the run again (a notebook cell run twice)
        descriptor = os.open(self.workdir, os.O_RDONLY)
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(descriptor)
                raise ConfigError(
                    f"{self.workdir} is in use by pid {self._holder_pid()} (another rfy run in this folder); wait "
                    f"for it to finish or stop it, or choose another --name") from None
        _LIVE_RUNS[key] = self
        return weakref.finalize(self, os.close, descriptor)

    def _holder_pid(self) -> str:
        try:
            return str(int(json.loads(read_state_text(self._file))["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown"

    def _read(self, resume: bool) -> dict[str, Any]:
        """The saved state after checking it field by field (``run_state_fault``).

        On resume any fault is a ``CorruptFileError``. Starting over needs only rfy's marker and run id
        (the registered files are then deleted); without them the folder is refused as not rfy's.
        """
        try:
            saved = json.loads(read_state_text(self._file))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise self._not_ours(f"it is not readable JSON: {error}") from None
        if saved.get(MARKER_FIELD) != MARKER or not _is_run_id(saved.get("run_id")):
            raise self._not_ours(f"it has no {MARKER_FIELD!r}: {MARKER!r} marker with a run id")
        if resume:
            fault = run_state_fault(saved)
            if fault:
                raise CorruptFileError(
                    f"{self._file} is not a valid run state ({fault}); start the run over without --resume "
                    f"(this deletes the run's checkpoints in {self.workdir})")
        return saved

    def _not_ours(self, why: str) -> CorruptFileError:
        return CorruptFileError(
            f"{self._file} was not written by rfy ({why}), so {self.workdir} is not an rfy run folder and nothing "
            f"in it is used, deleted or overwritten; move the folder away, or choose another --name or --workdir")

    def _check_same_config(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if old is None:
            raise ConfigError(f"{self._file} does not record the config its run started with, so --resume cannot "
                              f"check that the settings match; start the run over without --resume")
        differences = config_differences(old, new, ignore=RESUMABLE_CHANGES)
        added = [name for name, (before, _) in differences.items() if before == MISSING]
        removed = [name for name, (_, now) in differences.items() if now == MISSING]
        if added or removed:
            change = "; ".join(part for part in (
                f"field(s) {', '.join(added)} added to the config since" if added else "",
                f"field(s) {', '.join(removed)} removed from the config since" if removed else "") if part)
            raise ConfigError(
                f"--resume: this run started under another version of rfy ({change}), so this version cannot "
                f"continue it; start it over without --resume (this deletes its checkpoints in {self.workdir}), "
                f"or resume it with the rfy version it started with")
        if differences:
            raise ConfigError(
                f"--resume with a config that differs from the checkpoint's: {describe_differences(differences)}; "
                f"only {', '.join(RESUMABLE_CHANGES)} may change on resume. Resume with the run's settings, "
                f"or start over without --resume (or under another --name)")

    def _check_same_numerics(self, old: Any) -> None:
        """Refuse a resume under other global numeric settings than the run started with (``numeric_settings``):
        a float32 checkpoint continued in float64 would give other numbers than either run, without a word.
        A state saved before the settings were stored is not checked."""
        if not isinstance(old, dict):
            return
        now = numeric_settings()
        changed = {name: (value, now.get(name)) for name, value in old.items() if now.get(name) != value}
        if changed:
            what = ", ".join(f"{name} {before!r} -> {after!r}" for name, (before, after) in changed.items())
            raise ConfigError(
                f"--resume under other torch settings than the run started with ({what}); restore them (e.g. "
                f"torch.set_default_dtype(torch.{old.get('default_dtype', 'float32')})) before resuming, or start "
                f"the run over without --resume")

    def _own_files(self, saved: dict[str, Any]) -> list[Path]:
        """The files an earlier run registered: its stages' ``<stage>.pt`` and its other saved files."""
        stages = [*_list(saved.get("started")), *(saved.get("stages") if isinstance(saved.get("stages"), dict) else {})]
        names = {f"{name}.pt" for name in stages if _is_file_name(name)}
        names |= {name for name in _list(saved.get("files")) if _is_file_name(name)}
        return [self.workdir / name for name in sorted(names - {STATE_FILE})]

    def _remove_partials(self, saved: dict[str, Any]) -> None:
        """Remove the temporary files of writes that were killed (this run holds the folder, so none is live)."""
        for path in [*self._own_files(saved), self._file]:
            remove_stale_partials(path, older_than_s=0)

    def _clear(self, saved: dict[str, Any]) -> None:
        """Delete the files the earlier run registered and its ``state.json``; other files and subfolders stay."""
        for path in self._own_files(saved):
            if path.is_file() or path.is_symlink():
                path.unlink()
        self._file.unlink(missing_ok=True)


def read_state_text(path: Path) -> str:
    """The text of the ``state.json`` at ``path``, read only from a regular file of at most ``MAX_STATE_BYTES``
    (``rfy.files.read_small_file``); ``OSError`` (a ``CorruptFileError`` saying what it is) otherwise."""
    return read_small_file(path, MAX_STATE_BYTES).decode("utf-8")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_file_name(name: Any) -> bool:
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name)) and name not in {".", ".."} and len(name) <= 104


def _is_run_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_state_fault(saved: dict[str, Any]) -> str:
    """What is wrong with a ``state.json`` that carries rfy's marker, or ``""`` when every field is valid.

    ``elapsed_s`` a finite number ≥ 0; ``config`` and ``numerics`` objects or null; ``stages`` an object of
    stage name →
    metrics object; ``started`` and ``files`` lists of file names; ``pid`` an integer.
    """
    elapsed, stages = saved.get("elapsed_s", 0.0), saved.get("stages", {})
    if not _is_real(elapsed) or elapsed < 0:
        return f"elapsed_s must be a finite number of seconds >= 0, got {elapsed!r}"
    if saved.get("config") is not None and not isinstance(saved.get("config"), dict):
        return f"config must be an object, got {type(saved['config']).__name__}"
    if saved.get("numerics") is not None and not isinstance(saved.get("numerics"), dict):
        return f"numerics must be an object, got {type(saved['numerics']).__name__}"
    if not isinstance(stages, dict) or not all(_is_file_name(k) and isinstance(v, dict) for k, v in stages.items()):
        return "stages must be an object of stage name -> metrics object"
    for field in ("started", "files"):
        value = saved.get(field, [])
        if not isinstance(value, list) or not all(_is_file_name(name) for name in value):
            return f"{field} must be a list of file names, got {value!r}"[:200]
    if "pid" in saved and (isinstance(saved["pid"], bool) or not isinstance(saved["pid"], int)):
        return f"pid must be an integer, got {saved['pid']!r}"
    return ""


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
