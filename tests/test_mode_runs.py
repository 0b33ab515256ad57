"""The chapter pages' table of every run of one mode, shortened and changed runs included."""
from __future__ import annotations

from pathlib import Path


def test_mode_runs_table_shows_shortened_runs_with_what_they_changed(tmp_path: Path) -> None:
    from rfy import chapters
    from rfy.results import make_record, write_record
    from rfy.tables import mode_runs_table

    chapter = chapters.chapter("semi-unsupervised")
    config = chapter.Config.full(epochs=25)
    write_record(make_record("semi-unsupervised", "full-seed0-custom", config, {"gmdgm_overall_accuracy": 61.234},
                             wall_time_s=7200), tmp_path)
    table = mode_runs_table(chapter, "full", [("GM-DGM (%)", "gmdgm_overall_accuracy", 1),
                                              ("M2 (%)", "m2_overall_accuracy", 1)], tmp_path)
    row = table.splitlines()[2]
    assert "full-seed0-custom" in row and "epochs 25 (preset 300)" in row and "| 61.2 | — |" in row
    assert "2.0 h" in row
    assert "no reduced-mode record yet" in mode_runs_table(chapter, "reduced", [], tmp_path)
