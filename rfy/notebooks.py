"""Executing the book's notebooks: papermill with the defaults of the ``parameters`` cell.

The rendered book shows exactly what this produces, and nbval compares against it, so the
stored outputs are never hand-made. Papermill's timing metadata is dropped afterwards so that
re-running a notebook only changes its real outputs.
"""
from __future__ import annotations

import inspect
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import nbformat

TIMING_KEYS = ("papermill", "execution")
SOLUTION_BLOCK = re.compile(r"\n*```\{solution\}.*?\n```[ \t]*(?=\n|$)", re.DOTALL)


def strip_timing_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove per-run bookkeeping (start times, durations) from the notebook and its cells."""
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in TIMING_KEYS:
            cell.metadata.pop(key, None)
    return notebook


def execute_in_place(path: Path, timeout_s: int = 600) -> float:
    """Run every cell of ``path`` from its folder with papermill, save the outputs, return seconds."""
    import papermill  # a book/test extra, needed only here

    began = time.perf_counter()
    papermill.execute_notebook(str(path), str(path), cwd=str(path.parent), progress_bar=False,
                               execution_timeout=timeout_s)
    notebook = strip_timing_metadata(nbformat.read(path, as_version=4))
    nbformat.write(notebook, path)
    return time.perf_counter() - began


def student_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without outputs and without the ``{solution}`` blocks of its exercises."""
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_BLOCK.sub("", cell.source)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy


def write_student_copies(paths: list[Path], folder: Path) -> list[Path]:
    """Write the student copy of each notebook in ``paths`` into ``folder``; return the new paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        target = folder / path.name
        nbformat.write(student_copy(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def source_block(obj: Any) -> Any:
    """The source of ``obj`` (a function, class or module) as a highlighted Python block.

    Returned as Markdown so that Jupyter and the built book both highlight it; the page shows
    exactly the package's code, so the two cannot drift.
    """
    from IPython.display import Markdown

    return Markdown("```python\n" + textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n```")


def show_source(*objects: Any) -> None:
    """Display the source of each object as a highlighted block (see ``source_block``)."""
    from IPython.display import display

    for obj in objects:
        display(source_block(obj))


def show_claims(claims: list) -> None:
    """Display a chapter's claims as a table of measured value, threshold and verdict."""
    from IPython.display import Markdown, display

    from rfy.claims import claims_markdown

    display(Markdown(claims_markdown(claims)))
