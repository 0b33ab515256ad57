"""The claim type every chapter uses: verdicts, formatting, records and the assert."""
import math

import pytest

from rfy.claims import Claim, assert_claims, at_least, at_most, claims_markdown, verdicts


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
                      "unit": "", "why": "", "decimals": 2, "holds": False}


def test_assert_claims_names_the_failing_claims_and_refuses_an_empty_list():
    assert_claims([at_least("a", "a", 1, 0)])
    with pytest.raises(AssertionError, match="error: 3.00 ≤ 2.00: FAILS"):
        assert_claims([at_least("a", "a", 1, 0), at_most("err", "error", 3.0, 2.0)])
    with pytest.raises(AssertionError, match="no claims"):
        assert_claims([])
