"""Conventions every chapter notebook and the book configuration keep."""
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from rfy.notebooks import strip_timing_metadata

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_there_are_chapter_notebooks_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in toc


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_with_the_shared_knobs(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = tagged[0].source
    for line in ('mode = "reduced"', "seed = 0", 'device = "auto"'):
        assert line in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_clean_and_install_from_the_configured_repository(path):
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert "remove-cell" in first.metadata.get("tags", [])
    urls = re.findall(r"git\+(https://[^@\"]+)@(\w+)", first.source)
    assert urls == [(CONFIG["repository"]["url"], CONFIG["repository"]["branch"])]
    assert "papermill" not in notebook.metadata
    for cell in notebook.cells:
        assert all(output.get("output_type") != "error" for output in cell.get("outputs", []))


def test_strip_timing_metadata_drops_run_bookkeeping_only():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    notebook.metadata["papermill"] = {"duration": 3.0}
    notebook.cells[0].metadata.update({"papermill": {"duration": 1.0}, "execution": {}, "tags": ["x"]})
    stripped = strip_timing_metadata(notebook)
    assert "papermill" not in stripped.metadata
    assert stripped.cells[0].metadata == {"tags": ["x"]}


def test_student_copy_drops_solutions_and_outputs_but_keeps_exercises(tmp_path):
    from rfy.notebooks import write_student_copies

    [copy_path] = write_student_copies([NOTEBOOKS[0]], tmp_path)
    original = nbformat.read(NOTEBOOKS[0], as_version=4)
    copy = nbformat.read(copy_path, as_version=4)
    text = "\n".join(cell.source for cell in copy.cells if cell.cell_type == "markdown")
    assert "{solution}" in "".join(cell.source for cell in original.cells)
    assert "{solution}" not in text and text.count("{exercise}") >= 3
    assert all(not cell.outputs for cell in copy.cells if cell.cell_type == "code")
    assert [cell.source for cell in copy.cells if cell.cell_type == "code"] == \
        [cell.source for cell in original.cells if cell.cell_type == "code"]
