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

from rfy.errors import CorruptFileError
from rfy.files import atomic_write_text, check_name, remove_stale_partials
from rfy.record_checks import checked_record_fields, json_compatible
from rfy.runtime import hardware_info, select_device

if TYPE_CHECKING:
    from rfy.contract import Chapter

TRACKED_PACKAGES = ("rfy", "torch", "torchdiffeq", "numpy", "scikit-learn", "gymnasium", "stable-baselines3",
                    "mujoco")


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a chapter's experiment.

    ``preset`` says whether the config was the chapter's preset for its mode (seed and device
    aside) when the run was made: the CLI names a record of a modified config ``…-custom`` and
    stores ``preset: false``, and the reproduction table and the robustness page compare each
    record's config with the current preset anyway, so a modified run never passes for the preset.
    ``claims`` holds ``Claim.to_dict()`` of the chapter's claims on these metrics.
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
    preset = config.is_preset() if hasattr(config, "is_preset") else None
    return RunRecord(
        chapter=chapter, run=run, mode=config_dict.get("mode", "unknown"),
        seed=int(config_dict.get("seed", 0)),
        metrics={key: float(value) for key, value in metrics.items()},
        config=config_dict, hardware=hardware_info(device), versions=library_versions(),
        git_commit=git_commit(),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        wall_time_s=round(float(wall_time_s), 1),
        claims=[claim.to_dict() if hasattr(claim, "to_dict") else dict(claim) for claim in claims or []],
        preset=preset,
    )


def record_path(chapter: str, run: str, root: Path | None = None) -> Path:
    """``<root>/<chapter>/<run>.json``; both names must be single safe folder names."""
    check_name("chapter", chapter)
    check_name("run name", run)
    return (root or results_dir()) / chapter / f"{run}.json"


def write_record(record: RunRecord, root: Path | None = None) -> Path:
    """Save ``record`` to ``<root>/<chapter>/<run>.json`` atomically and return the path.

    A reader never sees a half-written record: it is written beside its place and renamed.
    """
    path = record_path(record.chapter, record.run, root)
    remove_stale_partials(path, older_than_s=60)  # left by a run killed while writing this record
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
    """The record at ``path``; ``CorruptFileError`` naming the file if it is not one."""
    try:
        return RunRecord.from_json(Path(path).read_text(), Path(path))
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{path} is not a valid run record ({error}); fix or delete it "
                               f"(run the chapter again to write a new one)") from None


def read_records(chapter: str, root: Path | None = None) -> list[RunRecord]:
    """Every readable record saved for ``chapter``, oldest first (by finish time).

    A file that is not a valid record is skipped with a warning naming it, so one bad file
    cannot break the table or the book build.
    """
    folder = (root or results_dir()) / chapter
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("estimate-"):  # what a preset costs (rfy.cost), not a run
            continue
        try:
            records.append(read_record(path))
        except CorruptFileError as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
    return sorted(records, key=lambda record: record.finished_at)


def latest_record(chapter: str, mode: str, root: Path | None = None) -> RunRecord | None:
    """The most recent record of ``chapter`` run in ``mode``, or ``None``."""
    matching = [r for r in read_records(chapter, root) if r.mode == mode]
    return matching[-1] if matching else None
