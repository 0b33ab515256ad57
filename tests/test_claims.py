"""The claim type every chapter uses: verdicts, formatting, records, digests and the assert."""
import dataclasses
import hashlib
import json
import math

import pytest

from rfy.claims import (HELD_OUT_SEEDS, TUNING_SEEDS, Claim, assert_claims, at_least, at_most, claim_digest,
                        claims_markdown, seed_range, verdicts)


def test_at_least_and_at_most_compare_measured_with_threshold():
    assert at_least("gain", "gain", 5.0, 5.0).holds
    assert not at_least("gain", "gain", 4.99, 5.0).holds
    assert at_most("loss", "loss", 0.1, 0.2).holds
    assert not at_most("loss", "loss", 0.3, 0.2).holds


def test_nan_never_holds():
    assert not at_least("k", "s", math.nan, 0.0).holds
    assert not at_most("k", "s", math.nan, 0.0).holds


def test_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="comparison must be one of"):
        Claim("k", "s", 1.0, "==", 1.0)


def test_text_shows_measured_value_threshold_and_verdict():
    claim = at_least("gain", "rare-group gain", 12.43, 5, unit=" points", decimals=1)
    assert str(claim) == "rare-group gain: 12.4 points ≥ 5.0 points: holds"
    table = claims_markdown([claim, at_most("err", "error", 3.0, 2.0, why="two sigma")])
    assert "| rare-group gain | 12.4 points | ≥ 5.0 points | holds |" in table
    assert "**fails** | two sigma |" in table
    assert verdicts([claim]) == "gain: holds"


def test_record_form_is_plain_and_carries_the_verdict():
    record = at_most("err", "error", 3.0, 2.0).to_dict()
    assert record == {"key": "err", "statement": "error", "measured": 3.0, "comparison": "<=", "threshold": 2.0,
                      "unit": "", "why": "", "decimals": 2, "holds": False, "digest": claim_digest(record)}


def test_assert_claims_names_the_failing_claims_and_refuses_an_empty_list():
    assert_claims([at_least("a", "a", 1, 0)])
    with pytest.raises(AssertionError, match="error: 3.00 ≤ 2.00: FAILS"):
        assert_claims([at_least("a", "a", 1, 0), at_most("err", "error", 3.0, 2.0)])
    with pytest.raises(AssertionError, match="no claims"):
        assert_claims([])


def test_digest_is_sha256_of_the_definition_as_documented():
    claim = at_least("gain", "rare-group gain", 12.4, 5, unit=" points")
    text = json.dumps(["gain", "rare-group gain", ">=", 5.0, " points"], ensure_ascii=False, separators=(",", ":"))
    assert claim.digest == hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    assert claim.to_dict()["digest"] == claim.digest


def test_digest_ignores_the_measurement_and_the_words_and_changes_with_each_defining_field():
    claim = at_least("gain", "rare-group gain", 12.4, 5.0, unit=" points", why="noise", decimals=1)
    same = [dataclasses.replace(claim, measured=-3.0), dataclasses.replace(claim, why="other words"),
            dataclasses.replace(claim, decimals=3), dataclasses.replace(claim, threshold=5)]
    assert {c.digest for c in same} == {claim.digest}
    changed = [dataclasses.replace(claim, key="gain2"), dataclasses.replace(claim, statement="gain"),
               dataclasses.replace(claim, comparison=">"), dataclasses.replace(claim, threshold=5.01),
               dataclasses.replace(claim, unit="%")]
    assert len({c.digest for c in changed} | {claim.digest}) == len(changed) + 1


def test_digest_of_the_record_form_survives_json_and_equals_the_claims():
    claim = at_most("err", "error (ü, ≤)", 0.1, 0.1 + 0.2, unit=" ppm")
    stored = json.loads(json.dumps(claim.to_dict()))
    assert claim_digest(stored) == stored["digest"] == claim.digest
    assert claim_digest({**stored, "threshold": 0.3}) != claim.digest  # 0.1 + 0.2 is not 0.3 in floats


def test_the_seed_split_is_disjoint_and_written_as_the_command_line_takes_it():
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS)
    assert (seed_range(TUNING_SEEDS), seed_range(HELD_OUT_SEEDS)) == ("0-9", "10-19")
