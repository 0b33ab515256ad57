"""The robustness table's two groups of columns: seeds the thresholds were set on, and held-out seeds.

Tiny fake records written to ``tmp_path``: a toy chapter whose one claim is "error ≤ threshold".
"""
import dataclasses
import json

import pytest

from rfy.claims import at_least, at_most
from rfy.config import RunConfig
from rfy.contract import Chapter
from rfy.results import make_record, read_records, write_record
from rfy.tables import definition_changes, robustness_table

HELD_OUT_CELL = "not run yet: `python -m rfy claims toy --seeds 10-19`"


@dataclasses.dataclass(frozen=True)
class ToyConfig(RunConfig):
    width: int = 8


def small_error(threshold: float):
    """The toy chapter's claims with ``threshold``: ``error ≤ threshold``."""
    return lambda metrics: [at_most("small", "error is small", metrics["error"], threshold, decimals=1)]


def toy(claims) -> Chapter:
    return Chapter("toy", 1, "Toy", "01_toy", ToyConfig, run=lambda config, state: {}, claims=claims,
                   paper_numbers=[])


def write(root, seed: int, error: float, claims, commit: str = "a" * 40) -> None:
    """A preset reduced record of ``seed`` measuring ``error``, its claims made by ``claims`` when it ran."""
    record = make_record("toy", f"reduced-seed{seed}", ToyConfig.reduced(seed=seed), {"error": error},
                         wall_time_s=1.0, claims=claims({"error": error}))
    write_record(dataclasses.replace(record, git_commit=commit), root)


def rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| toy")]


def test_without_held_out_records_the_held_out_cells_say_how_to_run_them(tmp_path):
    for seed, error in enumerate([1.0, 2.0, 3.0, 4.0]):
        write(tmp_path, seed, error, small_error(3.5))
    table = robustness_table([toy(small_error(3.5))], tmp_path)
    assert "| Set on seeds 0-9: passed | Median | Range | Held out, seeds 10-19: passed | Median | Range |" in table
    assert rows(table) == [["toy", "error is small", "≤ 3.5", "3/4 (fails on seed 3)", "2.5", "1.0 to 4.0",
                            HELD_OUT_CELL, "—", "—"]]
    assert "set on seeds 0, 1, 2, 3; commit `aaaaaaaaaa`; held out: not run yet" in table


def test_held_out_seeds_are_counted_apart_and_a_failure_is_shown_with_its_numbers(tmp_path):
    for seed in range(10):
        write(tmp_path, seed, 1.0, small_error(3.5))
    for seed, error in [(10, 2.0), (11, 5.0), (12, 3.0)]:
        write(tmp_path, seed, error, small_error(3.5), commit="b" * 40)
    write(tmp_path, 25, 9.0, small_error(3.5))  # in neither group: listed, not counted
    table = robustness_table([toy(small_error(3.5))], tmp_path)
    assert rows(table) == [["toy", "error is small", "≤ 3.5", "10/10", "1.0", "1.0 to 1.0",
                            "2/3 (fails on seed 11)", "3.0", "2.0 to 5.0"]]
    assert "held out: seeds 10, 11, 12, run at commit `bbbbbbbbbb`" in table
    assert "counted in neither group: seed 25" in table
    assert "Notes:" not in table  # no claim changed after the held-out run


def test_held_out_cells_use_the_threshold_stored_then_and_mark_a_claim_changed_since(tmp_path):
    for seed in range(2):
        write(tmp_path, seed, 3.0, small_error(3.5))
    for seed in (10, 11):
        write(tmp_path, seed, 3.0, small_error(2.5))  # held out with the old, stricter threshold: fails
    table = robustness_table([toy(small_error(3.5))], tmp_path)  # re-tuned to 3.5 afterwards
    [row] = rows(table)
    assert row[:4] == ["toy", "error is small", "≤ 3.5", "2/2"]
    assert row[6] == "0/2 (fails on seed 10, 11)¹" and row[7:] == ["3.0", "3.0 to 3.0"]
    assert ("1. toy, claim `small` changed after the held-out run: run as “error is small” ≤ 2.5, "
            "now “error is small” ≤ 3.5. The held-out columns check it as it was run.") in table


def test_a_claim_added_after_the_held_out_run_is_marked_and_not_counted_there(tmp_path):
    def two_claims(metrics):
        return [*small_error(3.5)(metrics), at_least("big", "error is big", metrics["error"], 0.5)]
    write(tmp_path, 0, 1.0, two_claims)
    write(tmp_path, 10, 1.0, small_error(3.5))
    [small, big] = rows(robustness_table([toy(two_claims)], tmp_path))
    assert small[6] == "1/1"
    assert big[6] == "not in the held-out records¹" and big[3] == "1/1"


def test_definition_changes_compares_digests_of_stored_and_current_claims(tmp_path):
    write(tmp_path, 10, 1.0, small_error(3.5))
    [record] = read_records("toy", tmp_path)
    assert definition_changes(record, small_error(3.5)) == {}
    assert definition_changes(record, lambda m: [dataclasses.replace(c, why="reworded", measured=0.0)
                                                 for c in small_error(3.5)(m)]) == {}
    assert set(definition_changes(record, small_error(3.4))) == {"small"}
    assert definition_changes(record, lambda m: [])["small"].endswith("not made by the current claims")
    assert definition_changes(record, lambda m: m["missing"])["small"].endswith("not made by the current claims")


def test_a_record_whose_threshold_was_edited_after_the_run_is_skipped(tmp_path):
    write(tmp_path, 10, 3.0, small_error(2.5))
    path = tmp_path / "toy" / "reduced-seed10.json"
    data = json.loads(path.read_text())
    data["claims"][0].update(threshold=3.5, holds=True)  # made to pass by hand
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="digest .* is not that of its key, statement, comparison, threshold"):
        assert read_records("toy", tmp_path) == []
