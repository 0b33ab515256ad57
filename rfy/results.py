"""Run records: what a run measured, with everything needed to trust and repeat it.

A record is one JSON file ``results/<chapter>/<run>.json`` holding the metrics, the full config,
the seed, the hardware, library versions, the git commit and the wall time. The book's
reproduction table reads these files and nothing else, so every number it shows came from a run.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from rfy.config import MODES, config_differences
from rfy.errors import CorruptFileError
from rfy.files import atomic_write_text, check_name, remove_stale_partials
from rfy.record_checks import checked_record_fields, json_compatible
from rfy.runtime import hardware_info

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


# Preset records ---------------------------------------------------------------------------------

def chapter_config_class(chapter: str) -> type | None:
    """The ``Config`` class of a registered chapter, or ``None`` for another name."""
    from rfy.chapters import CHAPTER_MODULES, chapter_module

    return chapter_module(chapter).Config if chapter in CHAPTER_MODULES else None


def preset_differences(record: RunRecord, config_class: type | None) -> dict[str, tuple[Any, Any]]:
    """How ``record``'s config differs from the current preset of its mode (seed and device aside).

    ``{}`` means the record is a preset run. Without a config class, only ``preset: false`` counts.
    """
    if config_class is None:
        return {"preset": (False, True)} if record.preset is False else {}
    if record.mode not in MODES:
        return {"mode": (record.mode, MODES)}
    preset = config_class.for_mode(record.mode).to_dict()
    return config_differences(record.config, preset, ignore=("seed", "device"))


def preset_records(chapter: str, mode: str, root: Path | None = None, *, config_class: type | None = None,
                   records: list[RunRecord] | None = None) -> tuple[list[RunRecord], list[tuple[RunRecord, dict]]]:
    """The records of ``mode`` whose config is the chapter's preset, one per seed (the newest); and the others.

    Returns ``(preset records sorted by seed, [(record, differences), …] for the rest of that mode)``.
    """
    if config_class is None:
        config_class = chapter_config_class(chapter)
    records = read_records(chapter, root) if records is None else records
    chosen: dict[int, RunRecord] = {}
    others = []
    for record in records:  # oldest first, so a newer record of a seed replaces an older one
        if record.mode != mode:
            continue
        differences = preset_differences(record, config_class)
        if differences:
            others.append((record, differences))
        else:
            chosen[record.seed] = record
    return [chosen[seed] for seed in sorted(chosen)], others


# The reproduction table ---------------------------------------------------------------------------

def reproduction_rows(chapter: str, numbers: list[PaperNumber], root: Path | None = None, *,
                      config_class: type | None = None) -> list[dict[str, Any]]:
    """One row per paper number: the paper's value beside our preset runs on the same data.

    A row with ``mode="full"`` pairs the paper's value with our full-mode runs (the paper's data);
    a row with ``mode="reduced"`` has no paper value and shows our reduced runs on our small data.
    Only records whose config is the current preset of that mode count (seed and device aside);
    ``left_out`` says how many others there were and which fields differed. ``ours`` is the mean
    over the seeds' records, ``std`` their standard deviation (``None`` for a single run).
    """
    if config_class is None:
        config_class = chapter_config_class(chapter)
    records = read_records(chapter, root)
    by_mode = {mode: preset_records(chapter, mode, config_class=config_class, records=records) for mode in MODES}
    rows = []
    for number in numbers:
        mode = number.mode if number.mode in MODES else "full"
        chosen, others = by_mode[mode]
        values = [r.metrics[number.metric] for r in chosen if number.metric in r.metrics
                  and math.isfinite(r.metrics[number.metric])]
        left_out = [(r, d) for r, d in others if number.metric in r.metrics]
        rows.append({
            "chapter": chapter, "quantity": number.quantity, "data": number.data, "mode": mode,
            "paper": number.paper_value, "citation": number.citation, "decimals": number.decimals,
            "ours": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "runs": len(values), "seeds": [r.seed for r in chosen if number.metric in r.metrics],
            "note": number.note,
            "left_out": len(left_out),
            "left_out_fields": sorted({name for _, d in left_out for name in d}),
        })
    return rows


SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text.replace("-", "−")


def markdown_table(rows: list[dict[str, Any]], *, cite: bool = True) -> str:
    """Render reproduction rows as a Markdown table, notes as numbered footnotes below it.

    Columns: Chapter | Quantity | Data | Paper | Ours | Runs. *Paper* is "—" where the paper has
    no number on that data; *Ours* is the mean ± standard deviation over the runs (seeds) of the
    preset, with the row's ``decimals``, or "not run yet". With ``cite`` the paper's value carries a
    MyST ``{cite}`` role (for book pages); notebooks, whose outputs are plain Markdown, leave it out.
    """
    notes: list[str] = []

    def mark(text: str) -> str:
        if not text:
            return ""
        if text not in notes:
            notes.append(text)
        return str(notes.index(text) + 1).translate(SUPERSCRIPTS)

    lines = ["| Chapter | Quantity | Data | Paper | Ours | Runs |", "|---|---|---|---|---|---|"]
    for row in rows:
        digits = int(row.get("decimals", 2))
        source = f" {{cite}}`{row['citation']}`" if cite and row.get("citation") and row.get("paper") is not None else ""
        paper = (_number(row["paper"], digits) if row.get("paper") is not None else "—") + source
        if row.get("ours") is None:
            ours = "not run yet"
        elif row.get("std") is not None:
            ours = f"{_number(row['ours'], digits)} ± {_number(row['std'], digits)}"
        else:
            ours = _number(row["ours"], digits)
        runs = str(row.get("runs", 0) or "—")
        if row.get("left_out"):
            runs += mark(f"{row['chapter']}, {row['mode']} mode: {row['left_out']} record(s) left out because "
                         f"their config differs from the preset ({', '.join(row['left_out_fields'])}).")
        quantity = row["quantity"] + mark(row.get("note", ""))
        lines.append(f"| {row['chapter']} | {quantity} | {row.get('data') or '—'} | {paper} | {ours} | {runs} |")
    footer = "".join(f"\n{index}. {text}" for index, text in enumerate(notes, start=1))
    explanation = ("\n*Ours*: mean ± standard deviation over our runs of the chapter's preset (one per seed); "
                   "*Runs*: how many. *Paper*: the paper's value on the same data, — where it reports none.")
    return "\n".join(lines) + "\n" + explanation + ("\n\nNotes:\n" + footer.lstrip("\n") if notes else "") + "\n"


# Claims over seeds -------------------------------------------------------------------------------

def record_claims(record: RunRecord, claims_fn: Any = None) -> list[dict[str, Any]]:
    """The claims of ``record``: recomputed from its metrics by the chapter's current ``claims``
    function when that works, else those stored in the record."""
    if claims_fn is not None:
        try:
            return [claim.to_dict() for claim in claims_fn(dict(record.metrics))]
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            pass
    return list(record.claims)


def claim_summary(records: list[RunRecord], claims_fn: Any = None) -> list[dict[str, Any]]:
    """Per claim (by key, in the chapter's order): statement, threshold, seeds passed / run, median and range."""
    summary: dict[str, dict[str, Any]] = {}
    for record in records:
        for claim in record_claims(record, claims_fn):
            entry = summary.setdefault(claim["key"], {
                "key": claim["key"], "statement": claim.get("statement", claim["key"]),
                "comparison": claim.get("comparison", ">="), "threshold": claim.get("threshold"),
                "unit": claim.get("unit", ""), "decimals": int(claim.get("decimals", 2)),
                "values": [], "seeds": [], "failed_seeds": []})
            entry["values"].append(float(claim["measured"]))
            entry["seeds"].append(record.seed)
            if not claim.get("holds", False):
                entry["failed_seeds"].append(record.seed)
    for entry in summary.values():
        finite = [v for v in entry["values"] if math.isfinite(v)]
        entry["run"] = len(entry["values"])
        entry["passed"] = entry["run"] - len(entry["failed_seeds"])
        entry["median"] = statistics.median(finite) if finite else math.nan
        entry["min"], entry["max"] = (min(finite), max(finite)) if finite else (math.nan, math.nan)
    return list(summary.values())


SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _claim_value(entry: dict[str, Any], value: float) -> str:
    return "—" if not math.isfinite(value) else _number(value, entry["decimals"]) + entry["unit"]


def claims_sweep_table(summary: list[dict[str, Any]], *, chapter: str | None = None) -> str:
    """Markdown: each claim, its threshold, seeds passed / seeds run (and which failed), median and range."""
    head = "| Chapter " if chapter else ""
    lines = [f"{head}| Claim | Threshold | Seeds passed | Median | Range |",
             "|---" * (6 if chapter else 5) + "|"]
    for entry in summary:
        failed = f" (fails on seed {', '.join(map(str, entry['failed_seeds']))})" if entry["failed_seeds"] else ""
        threshold = (f"{SYMBOLS.get(entry['comparison'], entry['comparison'])} "
                     f"{_claim_value(entry, float(entry['threshold']))}" if entry["threshold"] is not None else "—")
        lines.append(f"{f'| {chapter} ' if chapter else ''}| {entry['statement']} | {threshold} "
                     f"| {entry['passed']}/{entry['run']}{failed} | {_claim_value(entry, entry['median'])} "
                     f"| {_claim_value(entry, entry['min'])} to {_claim_value(entry, entry['max'])} |")
    return "\n".join(lines) + "\n"


def _short_commit(commit: str) -> str:
    return commit[:10] + ("-dirty" if commit.endswith("-dirty") else "") if commit != "unknown" else commit


def robustness_table(root: Path | None = None, chapters: list[str] | None = None) -> str:
    """The book's "How robust is each claim?" table, from the preset reduced-mode records of every chapter.

    One row per claim: seeds passed / seeds run (naming the seeds it fails on), the median and the
    range of the measured value; below it, the seeds and the commit(s) the records came from. A
    chapter without records says how to make them. Only real records count: each config must equal
    the chapter's current preset (``preset_records``).
    """
    from rfy.chapters import CHAPTER_MODULES, CHAPTER_TITLES, chapter_module

    lines = ["| Chapter | Claim | Threshold | Seeds passed | Median | Range |", "|---|---|---|---|---|---|"]
    provenance = []
    for slug in chapters or list(CHAPTER_MODULES):
        module = chapter_module(slug)
        records, _ = preset_records(slug, "reduced", root, config_class=module.Config)
        summary = claim_summary(records, getattr(module, "claims", None))
        if not records:
            lines.append(f"| {slug} | no seed sweep recorded yet (`python -m rfy claims {slug} --seeds 0-9`) "
                         f"| — | — | — | — |")
            continue
        if not summary:
            lines.append(f"| {slug} | no claims recorded | — | 0/{len(records)} | — | — |")
        else:
            lines.extend(claims_sweep_table(summary, chapter=slug).splitlines()[2:])
        commits = sorted({_short_commit(r.git_commit) for r in records})
        seeds = ", ".join(str(r.seed) for r in records)
        provenance.append(f"- {CHAPTER_TITLES.get(slug, slug)}: seeds {seeds}; "
                          f"commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}")
    table = "\n".join(lines) + "\n"
    if provenance:
        table += "\nRecords (reduced mode, the chapter's preset):\n\n" + "\n".join(provenance) + "\n"
    return table
