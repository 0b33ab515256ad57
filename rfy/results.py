"""Run records: what a run measured, with everything needed to trust and repeat it.

A record is one JSON file ``results/<chapter>/<run>.json`` holding the metrics, the full config,
the seed, the hardware, library versions, the git commit and the wall time. The book's
reproduction table reads these files and nothing else, so every number it shows came from a run.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from rfy.runtime import hardware_info

TRACKED_PACKAGES = ("rfy", "torch", "torchdiffeq", "numpy", "scikit-learn", "gymnasium", "stable-baselines3",
                    "mujoco")


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a chapter's experiment."""

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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class PaperNumber:
    """A number the paper reports, and the metric key our run records store for the same quantity."""

    quantity: str
    metric: str
    paper_value: float | None
    citation: str
    note: str = ""
    higher_is_better: bool = field(default=False)
    #: The dataset both numbers of the row are measured on ("MNIST", "8×8 digits").
    data: str = ""
    #: Which of our runs pair with the row: "full" (the paper's data and protocol) or "reduced"
    #: (our small data; then ``paper_value`` is None, since the paper has no number on it).
    mode: str = "full"
    #: One rounding rule per quantity: the decimals shown for both the paper's value and ours.
    decimals: int = 2


def repository_root(start: Path | None = None) -> Path | None:
    """The checkout that holds ``pyproject.toml`` and ``results/``, searched upwards from ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "results").is_dir():
            return folder
    return None


def results_dir() -> Path:
    """``RFY_RESULTS`` if set, else ``results/`` of the enclosing checkout, else ``./results``."""
    if os.environ.get("RFY_RESULTS"):
        return Path(os.environ["RFY_RESULTS"])
    root = repository_root()
    return root / "results" if root else Path.cwd() / "results"


def git_commit(cwd: Path | None = None) -> str:
    """The checked-out commit, suffixed ``-dirty`` when tracked files changed; ``unknown`` outside git.

    Run records and the table generated from them do not count: writing one record must not mark
    the next run of the same commit as dirty.
    """
    cwd = cwd or repository_root() or Path.cwd()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)book/_generated"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
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
                wall_time_s: float, device: torch.device | None = None) -> RunRecord:
    """Collect a ``RunRecord`` for a run that just finished with ``metrics``."""
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return RunRecord(
        chapter=chapter, run=run, mode=config_dict.get("mode", "unknown"),
        seed=int(config_dict.get("seed", 0)),
        metrics={key: float(value) for key, value in metrics.items()},
        config=config_dict, hardware=hardware_info(device), versions=library_versions(),
        git_commit=git_commit(),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        wall_time_s=round(float(wall_time_s), 1),
    )


def write_record(record: RunRecord, root: Path | None = None) -> Path:
    """Save ``record`` to ``<root>/<chapter>/<run>.json`` and return the path."""
    path = (root or results_dir()) / record.chapter / f"{record.run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.to_json() + "\n")
    return path


def read_records(chapter: str, root: Path | None = None) -> list[RunRecord]:
    """Every record saved for ``chapter``, oldest first (by finish time)."""
    folder = (root or results_dir()) / chapter
    records = [RunRecord.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda record: record.finished_at)


def latest_record(chapter: str, mode: str, root: Path | None = None) -> RunRecord | None:
    """The most recent record of ``chapter`` run in ``mode``, or ``None``."""
    matching = [r for r in read_records(chapter, root) if r.mode == mode]
    return matching[-1] if matching else None


def reproduction_rows(chapter: str, numbers: list[PaperNumber],
                      root: Path | None = None) -> list[dict[str, Any]]:
    """One row per paper number: the paper's value beside the latest full and reduced runs that measured it.

    A chapter can record different settings in different runs (CIFAR-10 with 250 or 4000 labels), so
    each row takes the newest record of each mode that has the row's metric.
    """
    records = read_records(chapter, root)

    def latest_value(mode: str, metric: str) -> float | None:
        values = [r.metrics[metric] for r in records if r.mode == mode and metric in r.metrics]
        return values[-1] if values else None

    return [{
        "chapter": chapter,
        "quantity": number.quantity,
        "paper": number.paper_value,
        "citation": number.citation,
        "full": latest_value("full", number.metric),
        "reduced": latest_value("reduced", number.metric),
        "note": number.note,
    } for number in numbers]


def _cell(value: Any) -> str:
    if value is None:
        return "not run yet"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], *, cite: bool = True) -> str:
    """Render reproduction rows as a Markdown table (missing runs say so instead of a blank).

    With ``cite`` the paper column carries a MyST ``{cite}`` role (for book pages); notebooks,
    whose outputs are plain Markdown, leave it out.
    """
    header = "| Chapter | Quantity | Paper | Our full run | Our reduced run | Note |\n|---|---|---|---|---|---|\n"
    paper = lambda r: _cell(r["paper"]) if r["paper"] is not None else "see note"
    source = lambda r: f" {{cite}}`{r['citation']}`" if cite else ""
    body = "".join(
        f"| {r['chapter']} | {r['quantity']} | {paper(r)}{source(r)} "
        f"| {_cell(r['full'])} | {_cell(r['reduced'])} | {r['note']} |\n" for r in rows)
    return header + body
