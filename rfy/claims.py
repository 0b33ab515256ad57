"""Claims: what a chapter asserts about its measured numbers, defined once in the package.

Each chapter module exposes ``claims(metrics) -> list[Claim]``. The same list is checked by the
notebook's assert cell, printed by ``python -m rfy run <chapter>``, stored in the run record, and
counted over seeds by ``python -m rfy claims <chapter> --seeds 0-9`` for the book's robustness page.
A claim compares one measured number with a threshold; ``why`` says in one sentence where the
threshold comes from.

Thresholds are set after looking at ``TUNING_SEEDS`` and then frozen; ``HELD_OUT_SEEDS`` are run once
afterwards and never used to change a claim. Each record stores every claim's ``digest`` (a hash of
its definition), so a claim changed after the held-out run is detected (``rfy.tables.definition_changes``).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

COMPARISONS = (">=", "<=", ">", "<")
SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}

#: The seeds every threshold was chosen on (looked at while choosing it).
TUNING_SEEDS = range(0, 10)
#: The seeds run once, after the thresholds were frozen, to check them; never used to change a claim.
HELD_OUT_SEEDS = range(10, 20)
#: The fields that define a claim; its digest is a hash of these (not of ``measured``, ``why``, ``decimals``).
DIGEST_FIELDS = ("key", "statement", "comparison", "threshold", "unit")


def seed_range(seeds: range) -> str:
    """``range(10, 20)`` as the command line's ``10-19``."""
    return f"{seeds.start}-{seeds.stop - 1}"


def claim_digest(claim: Claim | Mapping[str, Any]) -> str:
    """The first 16 hex digits of SHA-256 of the claim's definition.

    The hashed text is the JSON array ``[key, statement, comparison, threshold, unit]`` (UTF-8,
    ``ensure_ascii=False``, compact separators), the threshold as a float (``-0.0`` as ``0.0``).
    Works on a ``Claim`` or on the dict a record stores (a missing field hashes as ``null``), so the
    digest of a claim and of its record form agree.
    """
    fields = asdict(claim) if isinstance(claim, Claim) else dict(claim)
    values = [fields.get(name) for name in DIGEST_FIELDS]
    threshold = values[3]
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        values[3] = float(threshold) + 0.0
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Claim:
    """``measured <comparison> threshold``, with the words a reader needs to judge it."""

    key: str
    statement: str
    measured: float
    comparison: str
    threshold: float
    unit: str = ""
    why: str = ""
    decimals: int = 2

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {COMPARISONS}, got {self.comparison!r}")

    @property
    def holds(self) -> bool:
        """Whether the measured value satisfies the comparison (a NaN never does)."""
        value, bound = float(self.measured), float(self.threshold)
        if math.isnan(value):
            return False
        return {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound}[self.comparison]

    @property
    def digest(self) -> str:
        """The hash of the claim's definition: ``claim_digest(self)``."""
        return claim_digest(self)

    def format_value(self, value: float) -> str:
        return f"{value:.{self.decimals}f}{self.unit}"

    def __str__(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        return (f"{self.statement}: {self.format_value(self.measured)} {SYMBOLS[self.comparison]} "
                f"{self.format_value(self.threshold)}: {verdict}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types for a run record, with the verdict and the digest of the definition."""
        return {**asdict(self), "measured": float(self.measured), "threshold": float(self.threshold),
                "holds": self.holds, "digest": self.digest}


def at_least(key: str, statement: str, measured: float, threshold: float, **details: Any) -> Claim:
    """The claim ``measured ≥ threshold``."""
    return Claim(key, statement, float(measured), ">=", float(threshold), **details)


def at_most(key: str, statement: str, measured: float, threshold: float, **details: Any) -> Claim:
    """The claim ``measured ≤ threshold``."""
    return Claim(key, statement, float(measured), "<=", float(threshold), **details)


def claims_markdown(claims: list[Claim]) -> str:
    """A Markdown table: claim, measured value, threshold, verdict, and why the threshold."""
    rows = "".join(
        f"| {c.statement} | {c.format_value(c.measured)} | {SYMBOLS[c.comparison]} {c.format_value(c.threshold)} "
        f"| {'holds' if c.holds else '**fails**'} | {c.why} |\n" for c in claims)
    return "| Claim | Measured | Threshold | Verdict | Why this threshold |\n|---|---|---|---|---|\n" + rows


def verdicts(claims: list[Claim]) -> str:
    """One line per claim, ``key: holds`` or ``key: fails`` (stable text for nbval to compare)."""
    return "\n".join(f"{c.key}: {'holds' if c.holds else 'fails'}" for c in claims)


def assert_claims(claims: list[Claim]) -> None:
    """Raise ``AssertionError`` naming every claim that does not hold (and when there are none)."""
    if not claims:
        raise AssertionError("no claims were measured")
    failing = [str(c) for c in claims if not c.holds]
    if failing:
        raise AssertionError("claims that do not hold:\n" + "\n".join(failing))
