"""Field-by-field checks of a run record read from disk, so that a tampered file is skipped, never counted.

A record's numbers feed the reproduction table and the claims-over-seeds table; a string metric, a
seed of ``"3"`` or ``holds: "false"`` would be averaged, counted or shown as if it were measured.
``checked_record_fields`` accepts exactly what ``rfy.results.make_record`` writes and names the
first field that differs. Non-finite measurements are written as JSON ``null`` (records are written
with ``allow_nan=False``, so every file is standard JSON) and read back as NaN.
"""
from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from rfy.claims import claim_digest
from rfy.config import MODES
from rfy.errors import CorruptFileError
from rfy.runtime import MAX_SEED

#: The version of the record format this rfy writes and the newest it reads (``RunRecord.schema_version``).
RECORD_SCHEMA = 1
#: The largest magnitude a metric may have: the mean and spread of ten such values stay finite in floats.
MAX_METRIC_MAGNITUDE = 1e100
REQUIRED_FIELDS = {"chapter": str, "run": str, "mode": str, "seed": int, "metrics": dict, "config": dict,
                   "hardware": dict, "versions": dict, "git_commit": str, "finished_at": str, "wall_time_s": float}


class NewerRecordError(CorruptFileError):
    """A record of a newer format (``schema_version`` above ``RECORD_SCHEMA``): sound, but not for this rfy."""


def json_compatible(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by ``None``, in nested lists and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_compatible(item) for item in value]
    return value


def is_real(value: Any) -> bool:
    """True for an int or float that is not a bool (JSON ``true`` is not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked_record_fields(data: Any, path: Path | None = None) -> dict[str, Any]:
    """``data`` (a parsed record) if every field has the type and range ``make_record`` gives it.

    The rules: ``schema_version`` (1 when absent) is at most ``RECORD_SCHEMA``; ``chapter`` and ``run``
    match the record's place ``<chapter>/<run>.json`` (when ``path`` is given); ``mode`` is one of
    ``MODES``; ``seed`` an integer in ``[0, MAX_SEED]`` equal to the config's; every metric a real number
    of magnitude at most ``MAX_METRIC_MAGNITUDE`` or null; ``finished_at`` an ISO 8601 time;
    ``wall_time_s`` a finite number ≥ 0; ``preset`` a boolean or null; ``numerics`` an object or null; each
    claim an object with a string ``key``, a boolean ``holds``, a real (or null)
    ``measured`` and, where it has a ``digest``, the digest of its stored definition
    (``rfy.claims.claim_digest``: a threshold edited after the run no longer matches). Returns the
    fields with null measurements as NaN; raises ``CorruptFileError`` with a one-line reason otherwise.
    """
    if not isinstance(data, dict):
        raise CorruptFileError("a run record is a JSON object")
    version = data.get("schema_version", 1)  # records made before the field existed are of version 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CorruptFileError(f"schema_version must be an integer >= 1, got {version!r}"[:200])
    if version > RECORD_SCHEMA:
        raise NewerRecordError(f"it is of record format {version} (schema_version), newer than the {RECORD_SCHEMA} "
                               f"this rfy reads, so it was not used; update rfy (git pull, or pip install -U)")
    for name, kind in REQUIRED_FIELDS.items():
        if name not in data:
            raise CorruptFileError(f"field {name!r} is missing")
        if not (is_real(data[name]) if kind is float else isinstance(data[name], kind) and not isinstance(data[name], bool)):
            raise CorruptFileError(f"{name} must be {'a number' if kind is float else kind.__name__}, got {data[name]!r}"[:200])
    if path is not None and (data["chapter"], data["run"]) != (path.parent.name, path.stem):
        raise CorruptFileError(f"it says chapter {data['chapter']!r}, run {data['run']!r}, but it is stored as "
                               f"{path.parent.name}/{path.name}"[:300])
    if data["mode"] not in MODES:
        raise CorruptFileError(f"mode must be one of {MODES}, got {data['mode']!r}"[:200])
    if not 0 <= data["seed"] <= MAX_SEED or data["config"].get("seed", data["seed"]) != data["seed"]:
        raise CorruptFileError(f"seed must be an integer from 0 to {MAX_SEED} equal to the config's, got {data['seed']!r}")
    metrics = {key: _measured(f"metric {key!r}", value) for key, value in data["metrics"].items()}
    _check_time(data["finished_at"])
    if not math.isfinite(data["wall_time_s"]) or data["wall_time_s"] < 0:
        raise CorruptFileError(f"wall_time_s must be a finite number of seconds >= 0, got {data['wall_time_s']!r}")
    if data.get("numerics") is not None and not isinstance(data["numerics"], dict):
        raise CorruptFileError(f"numerics must be an object or null, got {data['numerics']!r}"[:200])
    if data.get("preset") is not None and not isinstance(data["preset"], bool):
        raise CorruptFileError(f"preset must be true, false or null, got {data['preset']!r}"[:200])
    claims = data.get("claims", [])
    if not isinstance(claims, list):
        raise CorruptFileError(f"claims must be a list, got {claims!r}"[:200])
    return {**data, "metrics": metrics, "claims": [_checked_claim(claim) for claim in claims]}


def _measured(what: str, value: Any) -> float:
    """A measured value as a float (null → NaN); ``CorruptFileError`` unless it is a real number in range."""
    if value is None:
        return math.nan
    if not is_real(value) or not abs(value) <= MAX_METRIC_MAGNITUDE:
        raise CorruptFileError(f"{what} must be a number of magnitude at most {MAX_METRIC_MAGNITUDE:g} "
                               f"(or null), got {value!r}"[:200])
    return float(value)


def _checked_claim(claim: Any) -> dict[str, Any]:
    if not isinstance(claim, dict) or not isinstance(claim.get("key"), str):
        raise CorruptFileError(f"each claim must be an object with a string 'key', got {claim!r}"[:200])
    if not isinstance(claim.get("holds"), bool):
        raise CorruptFileError(f"claim {claim['key']!r}: holds must be true or false, got {claim.get('holds')!r}"[:200])
    checked = {**claim, "measured": _measured(f"claim {claim['key']!r}: measured", claim.get("measured"))}
    if claim.get("threshold") is not None:
        checked["threshold"] = _measured(f"claim {claim['key']!r}: threshold", claim["threshold"])
    if "digest" in claim and claim["digest"] != claim_digest(checked):
        raise CorruptFileError(f"claim {claim['key']!r}: digest {claim['digest']!r} is not that of its key, statement, "
                               f"comparison, threshold and unit (they were changed after the run)"[:300])
    return checked


def _check_time(text: str) -> None:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise CorruptFileError(f"finished_at must be an ISO 8601 time like 2026-01-31T12:00:00+00:00, "
                               f"got {text!r}"[:200]) from None
