"""The book's tables, built from run records: the paper's numbers beside ours, and each claim over seeds.

Every function receives the chapters (``rfy.contract.Chapter``) it tabulates; this module never
looks a chapter up, so the core imports no chapter.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rfy.claims import HELD_OUT_SEEDS, SYMBOLS, TUNING_SEEDS, Claim, claim_digest, seed_range
from rfy.config import MODES, config_differences
from rfy.cost import cost_table, read_estimates
from rfy.errors import ConfigError
from rfy.results import RunRecord, read_records, record_path, results_dir
from rfy.runtime import DEFAULT_NUMERICS

if TYPE_CHECKING:
    from rfy.contract import Chapter


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



# Preset records ---------------------------------------------------------------------------------

def preset_differences(record: RunRecord, config_class: type | None) -> dict[str, tuple[Any, Any]]:
    """How ``record``'s config differs from the current preset of its mode (seed and device aside).

    ``{}`` means the record is a preset run. Without a config class, only ``preset: false`` counts. A
    global numeric setting other than ``rfy.runtime.DEFAULT_NUMERICS`` (a float64 default dtype) counts as
    a difference too, under its name.
    """
    numerics = {name: (value, DEFAULT_NUMERICS.get(name)) for name, value in (record.numerics or {}).items()
                if value != DEFAULT_NUMERICS.get(name)}
    if config_class is None:
        return {"preset": (False, True), **numerics} if record.preset is False else numerics
    if record.mode not in MODES:
        return {"mode": (record.mode, MODES)}
    preset = config_class.for_mode(record.mode).to_dict()
    return {**config_differences(record.config, preset, ignore=("seed", "device")), **numerics}


def preset_records(chapter: str, mode: str, root: Path | None = None, *, config_class: type | None = None,
                   records: list[RunRecord] | None = None) -> tuple[list[RunRecord], list[tuple[RunRecord, dict]]]:
    """The records of ``mode`` whose config is the chapter's preset, one per seed (the newest); and the others.

    Returns ``(preset records sorted by seed, [(record, differences), …] for the rest of that mode)``.
    Two preset records of one seed under different names are a ``ConfigError`` naming both files: which
    one the tables should count is the reader's choice, not the newest file's.
    """
    records = read_records(chapter, root) if records is None else records
    chosen: dict[int, RunRecord] = {}
    others = []
    for record in records:
        if record.mode != mode:
            continue
        differences = preset_differences(record, config_class)
        if differences:
            others.append((record, differences))
        elif record.seed in chosen:
            first, second = (record_path(chapter, r.run, root) for r in (chosen[record.seed], record))
            raise ConfigError(f"{first} and {second} both record the {mode} preset of {chapter} on seed "
                              f"{record.seed}; the tables count one run per seed: delete or move one of them")
        else:
            chosen[record.seed] = record
    return [chosen[seed] for seed in sorted(chosen)], others


# The reproduction table ---------------------------------------------------------------------------

def reproduction_rows(chapter: Chapter, root: Path | None = None) -> list[dict[str, Any]]:
    """One row per paper number: the paper's value beside our preset runs on the same data.

    A row with ``mode="full"`` pairs the paper's value with our full-mode runs (the paper's data);
    a row with ``mode="reduced"`` has no paper value and shows our reduced runs on our small data.
    Only records whose config is the current preset of that mode count (seed and device aside);
    ``left_out`` says how many others there were and which fields differed. ``ours`` is the mean
    over the seeds' records, ``std`` their standard deviation (``None`` for a single run).
    """
    records = read_records(chapter.slug, root)
    by_mode = {mode: preset_records(chapter.slug, mode, root, config_class=chapter.Config, records=records)
               for mode in MODES}
    rows = []
    for number in chapter.paper_numbers:
        mode = number.mode if number.mode in MODES else "full"
        chosen, others = by_mode[mode]
        values = [r.metrics[number.metric] for r in chosen if number.metric in r.metrics
                  and math.isfinite(r.metrics[number.metric])]
        left_out = [(r, d) for r, d in others if number.metric in r.metrics]
        rows.append({
            "chapter": chapter.slug, "quantity": number.quantity, "data": number.data, "mode": mode,
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


class _Notes:
    """Footnotes numbered in the order they are first marked."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        """The superscript number of ``text`` (added if new); "" for no text."""
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        return str(self.texts.index(text) + 1).translate(SUPERSCRIPTS)

    def markdown(self) -> str:
        """``Notes:`` and the numbered texts, one a line; "" without notes."""
        return "Notes:\n" + "\n".join(f"{i}. {t}" for i, t in enumerate(self.texts, start=1)) if self.texts else ""


def markdown_table(rows: list[dict[str, Any]], *, cite: bool = True) -> str:
    """Render reproduction rows as a Markdown table, notes as numbered footnotes below it.

    Columns: Chapter | Quantity | Data | Paper | Ours | Runs. *Paper* is "—" where the paper has
    no number on that data; *Ours* is the mean ± standard deviation over the runs (seeds) of the
    preset, with the row's ``decimals``, or "not run yet". With ``cite`` the paper's value carries a
    MyST ``{cite}`` role (for book pages); notebooks, whose outputs are plain Markdown, leave it out.
    """
    notes = _Notes()
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
            runs += notes.mark(f"{row['chapter']}, {row['mode']} mode: {row['left_out']} record(s) left out "
                               f"because their config differs from the preset ({', '.join(row['left_out_fields'])}).")
        quantity = row["quantity"] + notes.mark(row.get("note", ""))
        lines.append(f"| {row['chapter']} | {quantity} | {row.get('data') or '—'} | {paper} | {ours} | {runs} |")
    explanation = ("\n*Ours*: mean ± standard deviation over our runs of the chapter's preset (one per seed); "
                   "*Runs*: how many. *Paper*: the paper's value on the same data, — where it reports none.")
    return "\n".join(lines) + "\n" + explanation + (f"\n\n{notes.markdown()}" if notes.texts else "") + "\n"


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


def _claim_value(entry: dict[str, Any], value: float) -> str:
    return "—" if not math.isfinite(value) else _number(value, entry["decimals"]) + entry["unit"]


def _threshold(entry: dict[str, Any]) -> str:
    if entry["threshold"] is None:
        return "—"
    return f"{SYMBOLS.get(entry['comparison'], entry['comparison'])} {_claim_value(entry, float(entry['threshold']))}"


def _sweep_cells(entry: dict[str, Any]) -> list[str]:
    """Seeds passed / run (naming the seeds it fails on), median and range of one ``claim_summary`` entry."""
    failed = f" (fails on seed {', '.join(map(str, entry['failed_seeds']))})" if entry["failed_seeds"] else ""
    return [f"{entry['passed']}/{entry['run']}{failed}", _claim_value(entry, entry["median"]),
            f"{_claim_value(entry, entry['min'])} to {_claim_value(entry, entry['max'])}"]


def claims_sweep_table(summary: list[dict[str, Any]], *, chapter: str | None = None) -> str:
    """Markdown: each claim, its threshold, seeds passed / seeds run (and which failed), median and range."""
    head = "| Chapter " if chapter else ""
    lines = [f"{head}| Claim | Threshold | Seeds passed | Median | Range |",
             "|---" * (6 if chapter else 5) + "|"]
    for entry in summary:
        cells = [entry["statement"], _threshold(entry), *_sweep_cells(entry)]
        lines.append(f"{f'| {chapter} ' if chapter else ''}| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _short_commit(commit: str) -> str:
    return commit[:10] + ("-dirty" if commit.endswith("-dirty") else "") if commit != "unknown" else commit


def _commits(records: list[RunRecord]) -> str:
    commits = sorted({_short_commit(r.git_commit) for r in records})
    return f"commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}"


def _definition(claim: dict[str, Any]) -> str:
    """``“statement” ≥ 0.8 unit``: a stored claim's definition in words."""
    threshold = claim.get("threshold")
    bound = "—" if threshold is None else f"{float(threshold):g}{claim.get('unit', '')}"
    comparison = str(claim.get("comparison", "?"))
    return f"“{claim.get('statement', claim['key'])}” {SYMBOLS.get(comparison, comparison)} {bound}"


def definition_changes(record: RunRecord, claims_fn: Callable[[dict[str, float]], list[Claim]]) -> dict[str, str]:
    """Each claim whose definition in ``record`` (as stored when it ran) differs from ``claims_fn`` on its metrics.

    Two definitions are the same when their digests (``rfy.claims.claim_digest`` of key, statement,
    comparison, threshold and unit) are equal. Returns ``{key: what changed}`` for a claim stored with
    another definition, one stored but not made now, and one made now but not stored (added after the
    run); ``{}`` when no claim changed. A ``claims_fn`` that cannot be computed on the metrics makes no claim.
    """
    stored = {claim["key"]: claim for claim in record.claims}
    try:
        current = {claim.key: claim.to_dict() for claim in claims_fn(dict(record.metrics))}
    except (KeyError, ValueError, TypeError, ZeroDivisionError):
        current = {}
    changes = {}
    for key in [*stored, *(key for key in current if key not in stored)]:
        old, new = stored.get(key), current.get(key)
        if new is None:
            changes[key] = f"run as {_definition(old)}, not made by the current claims"
        elif old is None:
            changes[key] = f"added after the run, as {_definition(new)}"
        elif old.get("digest", claim_digest(old)) != new["digest"]:
            changes[key] = f"run as {_definition(old)}, now {_definition(new)}"
    return changes


def robustness_table(chapters: list[Chapter], root: Path | None = None) -> str:
    """The book's "How robust is each claim?" table, from the preset reduced-mode records of every chapter.

    One row per claim, with two groups of columns: the seeds the thresholds were set on
    (``TUNING_SEEDS``), each claim recomputed from the record's metrics by the chapter's current
    ``claims``; and the held-out seeds (``HELD_OUT_SEEDS``), each claim as stored in the record when
    it ran (its threshold then). Each group gives seeds passed / seeds run (naming the seeds it fails
    on), the median and the range of the measured value. A claim whose definition changed after the
    held-out run (``definition_changes``) carries a note saying how. Below the table: the seeds and
    commit(s) of each group. Only records whose config is the chapter's current preset count
    (``preset_records``); seeds in neither group are listed, not counted.
    """
    tuning_seeds, held_out_seeds = seed_range(TUNING_SEEDS), seed_range(HELD_OUT_SEEDS)
    lines = [f"| Chapter | Claim | Threshold | Set on seeds {tuning_seeds}: passed | Median | Range "
             f"| Held out, seeds {held_out_seeds}: passed | Median | Range |", "|---" * 9 + "|"]
    notes, provenance = _Notes(), []
    for chapter in chapters:
        slug = chapter.slug
        records, others = preset_records(slug, "reduced", root, config_class=chapter.Config)
        tuning = [r for r in records if r.seed in TUNING_SEEDS]
        held_out = [r for r in records if r.seed in HELD_OUT_SEEDS]
        command = f"`python -m rfy claims {slug} --seeds {{}}`"
        if not tuning and not held_out:
            lines.append(f"| {slug} | no seed sweep recorded yet ({command.format(tuning_seeds)}) |" + " — |" * 7)
            continue
        tuned = {entry["key"]: entry for entry in claim_summary(tuning, chapter.claims)}
        checked = {entry["key"]: entry for entry in claim_summary(held_out, None)}
        changes: dict[str, list[str]] = {}
        for record in held_out:
            for key, change in definition_changes(record, chapter.claims).items():
                changes.setdefault(key, [])
                if change not in changes[key]:
                    changes[key].append(change)
        keys = [*tuned, *(key for key in checked if key not in tuned), *(key for key in changes
                                                                         if key not in tuned and key not in checked)]
        if not keys:
            lines.append(f"| {slug} | no claims recorded |" + " — |" * 7)
        for key in keys:
            entry = tuned.get(key) or checked.get(key) or {"statement": key, "threshold": None}
            if not tuning:
                first = [f"not run yet: {command.format(tuning_seeds)}", "—", "—"]
            else:
                first = _sweep_cells(tuned[key]) if key in tuned else ["not made on these seeds", "—", "—"]
            if not held_out:
                second = [f"not run yet: {command.format(held_out_seeds)}", "—", "—"]
            else:
                second = _sweep_cells(checked[key]) if key in checked else ["not in the held-out records", "—", "—"]
            if key in changes:
                second[0] += notes.mark(f"{slug}, claim `{key}` changed after the held-out run: "
                                        f"{'; '.join(changes[key])}. The held-out columns check it as it was run.")
            cells = [slug, entry["statement"], _threshold(tuned[key]) if key in tuned else "—", *first, *second]
            lines.append("| " + " | ".join(cells) + " |")
        parts = [f"set on seeds {', '.join(str(r.seed) for r in tuning)}; {_commits(tuning)}" if tuning
                 else f"seeds {tuning_seeds} not run yet"]
        parts.append(f"held out: seeds {', '.join(str(r.seed) for r in held_out)}, run at {_commits(held_out)}"
                     if held_out else "held out: not run yet")
        extra = [r.seed for r in records if r.seed not in TUNING_SEEDS and r.seed not in HELD_OUT_SEEDS]
        if extra:
            parts.append(f"also recorded, counted in neither group: seed{'s' if len(extra) > 1 else ''} "
                         f"{', '.join(map(str, extra))}")
        if others:
            fields = sorted({name for _, differences in others for name in differences})
            parts.append(f"{len(others)} record(s) left out, their config differs from the current preset "
                         f"({', '.join(fields)})")
        provenance.append(f"- {chapter.heading}: " + "; ".join(parts))
    table = "\n".join(lines) + "\n" + (f"\n{notes.markdown()}\n" if notes.texts else "")
    if provenance:
        table += "\nRecords (reduced mode, the chapter's preset):\n\n" + "\n".join(provenance) + "\n"
    return table


def chapters_table(chapters: list[Chapter]) -> str:
    """The landing page's table: each chapter's number, page (with the paper's citation) and the claim it checks."""
    lines = ["| # | Chapter | The claim we check |", "|---|---|---|"]
    lines += [f"| {c.number} | {{doc}}`../notebooks/{c.notebook}` {{cite:p}}`{c.citation}` | {c.summary} |"
              for c in chapters]
    return "\n".join(lines) + "\n"


# Every run of one mode ---------------------------------------------------------------------------

def _ran_on(record: RunRecord) -> str:
    """``NVIDIA H200`` or ``CPU, 2 cores``: where a record's run computed."""
    hardware = record.hardware
    return str(hardware["gpu"]) if hardware.get("gpu") else f"CPU, {hardware.get('cpu_count', '?')} cores"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def mode_runs_table(chapter: Chapter, mode: str, columns: list[tuple[str, str, int]],
                    root: Path | None = None) -> str:
    """Markdown: every ``mode`` record of ``chapter``, the preset's and the others', one row each: the run's
    name and seed, how its config differs from the preset, where it ran, its wall time and its commit,
    then one column per ``(heading, metric key, decimals)`` of ``columns``. Unlike the reproduction table,
    which counts preset runs only, this shows shortened or changed runs too, saying what they changed."""
    header = ["Run", "Differs from the preset", "Ran on", "Wall time", "Commit", *(c[0] for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in read_records(chapter.slug, root):
        if record.mode != mode:
            continue
        differences = preset_differences(record, chapter.Config)
        changed = ", ".join(f"{name} {ours!r} (preset {preset!r})" for name, (ours, preset) in differences.items()) or "—"
        values = [_number(record.metrics[key], digits) if key in record.metrics else "—" for _, key, digits in columns]
        lines.append(f"| {record.run} | {changed} | {_ran_on(record)} | {_duration(record.wall_time_s)} | "
                     f"`{_short_commit(record.git_commit)}` | " + " | ".join(values) + " |")
    if len(lines) == 2:
        lines.append(f"| no {mode}-mode record yet | | | | | " + " | ".join("" for _ in columns) + " |")
    return "\n".join(lines) + "\n"


def chapter_records_markdown(chapter: Chapter, root: Path | None = None) -> str:
    """What a chapter's page shows from its run records, as they are now: the paper's numbers beside
    our preset runs (``reproduction_rows``), every full-mode run with its changes from the preset when
    there is one (``mode_runs_table``, one column per full-mode paper number), what the full preset
    costs where it was estimated (``rfy.cost.cost_table``), and the chapter's rows of the robustness
    table (``robustness_table``). ``root`` holds the records (default: ``results/``)."""
    root = root if root is not None else results_dir()
    parts = ["**The paper's numbers beside ours** (means over the recorded seeds of each preset):\n",
             markdown_table(reproduction_rows(chapter, root), cite=False)]
    full_columns = [(number.quantity, number.metric, number.decimals)
                    for number in chapter.paper_numbers if number.mode == "full"]
    if full_columns and any(record.mode == "full" for record in read_records(chapter.slug, root)):
        parts += ["\n**Every full-mode run recorded**, shortened or changed runs included:\n",
                  mode_runs_table(chapter, "full", full_columns, root)]
    if any(item.mode == "full" for item in read_estimates(root, chapter.slug)):
        parts += ["\n**What the full preset costs**, timed at its true size with `python -m rfy estimate` on the "
                  "devices named:\n", cost_table(root, [chapter])]
    parts += ["\n**How robust are this chapter's claims?** Each claim over the seeds the thresholds were set on "
              "and over held-out seeds (the book's robustness page explains both):\n",
              robustness_table([chapter], root)]
    return "\n".join(parts)
