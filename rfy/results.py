"""Run records: what a run measured, with everything needed to trust and repeat it.

A record is one JSON file ``results/<chapter>/<run>.json`` holding the metrics, the full config,
the seed, the hardware, library versions, the git commit and the wall time. The book's tables
(``rfy.tables``) read these files and nothing else, so every number they show came from a run.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rfy.errors import ConfigError, CorruptFileError
from rfy.files import atomic_write_text, check_name, describe_path, folder_lock, read_small_file, remove_stale_partials
from rfy.record_checks import RECORD_SCHEMA, NewerRecordError, checked_record_fields, json_compatible
from rfy.runtime import DEFAULT_NUMERICS, hardware_info, numeric_settings, select_device

if TYPE_CHECKING:
    from rfy.contract import Chapter

#: The largest file read as a run record: a record is a few kilobytes; a larger file is not one.
MAX_RECORD_BYTES = 1 << 20
TRACKED_PACKAGES = ("rfy", "torch", "torchdiffeq", "numpy", "scikit-learn", "gymnasium", "stable-baselines3",
                    "mujoco")


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a chapter's experiment.

    ``preset`` says whether the config was the chapter's preset for its mode (seed and device
    aside) when the run was made: the CLI names a record of a modified config ``…-custom`` and
    stores ``preset: false``, and the reproduction table and the robustness page compare each
    record's config with the current preset anyway, so a modified run never passes for the preset.
    ``claims`` holds ``Claim.to_dict()`` of the chapter's claims on these metrics. ``numerics`` holds the
    torch settings that change results (default dtype, …); the tables count a record made under other
    settings than ``rfy.runtime.DEFAULT_NUMERICS`` as a changed config.
    """

    chapter: str
    run: str
    mode: str
    seed: int
    metrics: dict[str, float]
    config: dict[str, Any]
    hardware: dict[str, Any]
    versions: dict[str, str]
    git_commit: str
    finished_at: str
    wall_time_s: float
    claims: list[dict[str, Any]] = field(default_factory=list)
    preset: bool | None = None
    #: The global numeric settings the run computed under (``rfy.runtime.numeric_settings``); ``None`` in
    #: records made before they were stored.
    numerics: dict[str, Any] | None = None
    #: The record format (``RECORD_SCHEMA``); a record of a newer format is refused, not half understood.
    schema_version: int = RECORD_SCHEMA

    def to_json(self) -> str:
        return json.dumps(json_compatible(dataclasses.asdict(self)), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> RunRecord:
        """Parse a record; fields added since (``claims``, ``preset``) take their defaults, unknown ones are ignored."""
        data = checked_record_fields(json.loads(text), path)
        if not isinstance(data, dict):
            raise ValueError("a run record is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in data and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ValueError(f"fields {missing} are missing")
        return cls(**{key: value for key, value in data.items() if key in names})


def repository_root(start: Path | None = None) -> Path | None:
    """The checkout that holds ``pyproject.toml`` and ``results/``, searched upwards from ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "results").is_dir():
            return folder
    return None


def package_results_dir() -> Path | None:
    """``results/`` beside the installed ``rfy`` package (the checkout, for an editable or git install)."""
    folder = Path(__file__).resolve().parent.parent / "results"
    return folder if folder.is_dir() else None


def results_dir() -> Path:
    """Where run records live.

    ``RFY_RESULTS`` if set; else ``results/`` of the checkout enclosing the working directory; else
    ``results/`` beside the installed package (so a notebook run from anywhere, e.g. on Colab, finds
    the book's records); else ``./results``.
    """
    if os.environ.get("RFY_RESULTS"):
        return Path(os.environ["RFY_RESULTS"]).expanduser()
    root = repository_root()
    if root:
        return root / "results"
    return package_results_dir() or Path.cwd() / "results"


def git_commit(cwd: Path | None = None) -> str:
    """The checked-out commit, suffixed ``-dirty`` when tracked files changed.

    Run records and the table generated from them do not count: writing one record must not mark
    the next run of the same commit as dirty. Outside git (a tree copied to another machine) it is
    the commit named by ``RFY_GIT_COMMIT``, suffixed ``-copy`` since git could not check the tree,
    else ``unknown``.
    """
    cwd = cwd or repository_root() or Path.cwd()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)book/_generated"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        named = os.environ.get("RFY_GIT_COMMIT", "").strip()
        return f"{named}-copy" if named else "unknown"
    return commit + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["cuda"] = torch.version.cuda or "none"
    return versions


def make_record(chapter: str, run: str, config: Any, metrics: dict[str, float], *,
                wall_time_s: float, device: torch.device | None = None,
                claims: list[Any] | None = None) -> RunRecord:
    """Collect a ``RunRecord`` for a run that just finished with ``metrics`` (and its ``claims``)."""
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    numerics = numeric_settings()
    preset = config.is_preset() and numerics == DEFAULT_NUMERICS if hasattr(config, "is_preset") else None
    return RunRecord(
        chapter=chapter, run=run, mode=config_dict.get("mode", "unknown"),
        seed=int(config_dict.get("seed", 0)),
        metrics={key: float(value) for key, value in metrics.items()},
        config=config_dict, hardware=hardware_info(device), versions=library_versions(),
        git_commit=git_commit(),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        wall_time_s=round(float(wall_time_s), 1),
        claims=[claim.to_dict() if hasattr(claim, "to_dict") else dict(claim) for claim in claims or []],
        preset=preset, numerics=numerics,
    )


def record_path(chapter: str, run: str, root: Path | None = None) -> Path:
    """``<root>/<chapter>/<run>.json``; both names must be single safe folder names."""
    check_name("chapter", chapter)
    check_name("run name", run)
    return (root or results_dir()) / chapter / f"{run}.json"


def write_record(record: RunRecord, root: Path | None = None) -> Path:
    """Save ``record`` to ``<root>/<chapter>/<run>.json`` atomically and return the path.

    A reader never sees a half-written record: it is written beside its place and renamed. Writers of
    one chapter's records take turns (``rfy.files.folder_lock``), so a temporary file of this record
    found by the writer holding the lock was left by a killed process, and is removed at once.
    """
    path = record_path(record.chapter, record.run, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path.parent) as locked:
        remove_stale_partials(path, older_than_s=0 if locked else 60)  # left by a run killed while writing it
        return atomic_write_text(path, record.to_json() + "\n")


def record_run(chapter: Chapter, run: str, config: Any, metrics: dict[str, float], *, wall_time_s: float,
               root: Path | None = None) -> tuple[RunRecord, Path]:
    """Write the record of a finished run of ``chapter``, always with its claims on ``metrics``.

    The one way a run becomes a record, for the command line and the notebooks alike; returns the
    record and its path.
    """
    record = make_record(chapter.slug, run, config, metrics, wall_time_s=wall_time_s,
                         device=select_device(config.device), claims=chapter.claims(dict(metrics)))
    return record, write_record(record, root)


def read_record(path: Path) -> RunRecord:
    """The record at ``path``; ``CorruptFileError`` naming the file if it is not one.

    Only a regular file of at most ``MAX_RECORD_BYTES`` is read (``rfy.files.read_small_file``): a named
    pipe or a link to a device is refused unread instead of blocking or filling the memory.
    """
    try:
        return RunRecord.from_json(read_small_file(path, MAX_RECORD_BYTES).decode("utf-8"), Path(path))
    except NewerRecordError as error:
        raise CorruptFileError(f"{path}: {error}") from None
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{path} is not a valid run record ({error}); fix or delete it "
                               f"(run the chapter again to write a new one)") from None


def read_records(chapter: str, root: Path | None = None) -> list[RunRecord]:
    """Every readable record saved for ``chapter``, oldest first (by finish time).

    A file that is not a valid record is skipped with a warning naming it, so one bad file
    cannot break the table or the book build. A ``<chapter>`` entry that is not a folder (a file, a
    link loop) is a ``ConfigError``: an empty table would pass for "not run yet".
    """
    folder = (root or results_dir()) / chapter
    kind = describe_path(folder)
    if kind not in ("a folder", "missing"):
        raise ConfigError(f"{folder} must be the folder of the run records of {chapter}, but it is {kind}; move "
                          f"it away or fix it (records are read from {folder}/*.json)")
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("estimate-"):  # what a preset costs (rfy.cost), not a run
            continue
        try:
            records.append(read_record(path))
        except CorruptFileError as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
    return sorted(records, key=lambda record: record.finished_at)


def check_results_root(root: Path, what: str, chapters: list[str] = ()) -> Path:
    """``root`` if it is a folder of run records; ``ConfigError`` naming ``what`` (where it came from) if it is
    missing or not a folder, or if the entry of one of ``chapters`` in it is there but not a folder, so a
    wrong path never passes for a book with no runs yet."""
    kind = describe_path(root)
    if kind != "a folder":
        raise ConfigError(f"{what} must be the folder of run records, but {root} is {kind}; point {what} at the "
                          f"results folder (results/ of the checkout), and nothing was written")
    for chapter in chapters:
        kind = describe_path(root / chapter)
        if kind not in ("a folder", "missing"):
            raise ConfigError(f"{root / chapter} must be the folder of the run records of {chapter}, but it is "
                              f"{kind}; move it away or fix it, and nothing was written")
    return root


def results_source() -> str:
    """Where ``results_dir()`` comes from, for a message: ``"RFY_RESULTS"`` or ``"the results folder"``."""
    return "RFY_RESULTS" if os.environ.get("RFY_RESULTS") else "the results folder"


def latest_record(chapter: str, mode: str, root: Path | None = None) -> RunRecord | None:
    """The most recent record of ``chapter`` run in ``mode``, or ``None``."""
    matching = [r for r in read_records(chapter, root) if r.mode == mode]
    return matching[-1] if matching else None
