"""The run records a chapter page shows are refreshed from ``results/`` when the book is built, and the
committed notebooks show the records as they are (issue: pages that agree with themselves)."""
import dataclasses

import nbformat
import pytest

from rfy.chapters import all_chapters
from rfy.errors import ConfigError
from rfy.notebooks import RECORDS_TAG, records_output, refresh_records_outputs
from rfy.results import make_record, repository_root, results_dir, write_record
from rfy.tables import PaperNumber, chapter_records_markdown
from test_tables_held_out import ToyConfig, small_error, toy

ROOT = repository_root()


def toy_with_numbers():
    numbers = [PaperNumber("Test error (%)", "error", None, "", data="toy data", mode="reduced", decimals=1)]
    return dataclasses.replace(toy(small_error(3.5)), paper_numbers=numbers)


def write_notebook(folder, cells):
    folder.mkdir(exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "01_toy.ipynb")
    return folder / "01_toy.ipynb"


def records_cell():
    return nbformat.v4.new_code_cell("show_records(toy.CHAPTER)", metadata={"tags": [RECORDS_TAG]})


def test_the_records_cell_shows_the_records_written_after_the_notebook_ran(tmp_path):
    chapter, results = toy_with_numbers(), tmp_path / "results"
    path = write_notebook(tmp_path / "notebooks", [nbformat.v4.new_markdown_cell("# Toy"), records_cell()])
    assert refresh_records_outputs([chapter], path.parent, results) == [path]
    assert "not run yet" in nbformat.read(path, as_version=4).cells[1].outputs[0].data["text/markdown"]
    for seed, error in enumerate([1.0, 2.0]):
        record = make_record("toy", f"reduced-seed{seed}", ToyConfig.reduced(seed=seed), {"error": error},
                             wall_time_s=1.0, claims=small_error(3.5)({"error": error}))
        write_record(record, results)
    assert refresh_records_outputs([chapter], path.parent, results) == [path]
    shown = nbformat.read(path, as_version=4).cells[1].outputs[0].data["text/markdown"]
    assert "| toy | Test error (%) | toy data | — | 1.5 ± 0.7 | 2 |" in shown
    assert "2/2" in shown and "not run yet" in shown  # the tuning seeds counted; held-out seeds not run
    assert refresh_records_outputs([chapter], path.parent, results) == []  # already current: nothing written


def test_a_notebook_without_exactly_one_records_cell_is_named(tmp_path):
    path = write_notebook(tmp_path / "notebooks", [nbformat.v4.new_markdown_cell("# Toy")])
    with pytest.raises(ConfigError, match=f"01_toy.ipynb must have exactly one cell tagged '{RECORDS_TAG}'"):
        refresh_records_outputs([toy_with_numbers()], path.parent, tmp_path)


@pytest.mark.parametrize("chapter", all_chapters(), ids=lambda chapter: chapter.slug)
def test_every_page_shows_the_committed_records_as_they_are(chapter):
    notebook = nbformat.read(ROOT / "notebooks" / f"{chapter.notebook}.ipynb", as_version=4)
    cells = [cell for cell in notebook.cells if RECORDS_TAG in cell.metadata.get("tags", [])]
    assert len(cells) == 1 and "show_records(" in cells[0].source
    assert cells[0].outputs == [records_output(chapter_records_markdown(chapter, results_dir()))], (
        "the page shows older records than results/: run `make table` (python -m rfy notebooks records)")


def test_a_page_ends_with_its_measured_time_and_the_machine_it_ran_on():
    import re
    import time

    from rfy.notebooks import page_time

    sentence = page_time(time.perf_counter() - 2.6, "cpu")
    assert re.fullmatch(r"This page ran in 3 s on \d+ CPU cores \(\w+\)\.", sentence), sentence
