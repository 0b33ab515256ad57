"""No claim's definition changed after its held-out run.

Thresholds are set on seeds 0-9 (``TUNING_SEEDS``); seeds 10-19 (``HELD_OUT_SEEDS``) are run once
afterwards. Every committed record of a held-out seed stores the digest of each claim as it was
then; the chapter's current claims, computed on that record's metrics, must have the same digests,
so a threshold, statement, comparison or unit changed after seeing the held-out seeds fails here.
"""
from pathlib import Path

import pytest

from rfy import chapters
from rfy.claims import HELD_OUT_SEEDS, seed_range
from rfy.results import read_records
from rfy.tables import definition_changes

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_no_claim_changed_after_the_held_out_run():
    held_out = [(chapter, record) for chapter in chapters.all_chapters()
                for record in read_records(chapter.slug, RESULTS) if record.seed in HELD_OUT_SEEDS]
    if not held_out:
        pytest.skip(f"no held-out records (seeds {seed_range(HELD_OUT_SEEDS)}) under {RESULTS} yet, so there is "
                    f"no claim to compare")
    changed = {f"{record.chapter}/{record.run}.json": changes for chapter, record in held_out
               if (changes := definition_changes(record, chapter.claims))}
    assert not changed, ("claims changed after their held-out run (set thresholds on seeds 0-9 only; "
                         f"re-running the held-out seeds after a change is re-tuning on them): {changed}")
