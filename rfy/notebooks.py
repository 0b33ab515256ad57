"""Executing the book's notebooks: papermill with the defaults of the ``parameters`` cell.

The rendered book shows exactly what this produces, and nbval compares against it, so the
stored outputs are never hand-made. Papermill's timing metadata is dropped afterwards so that
re-running a notebook only changes its real outputs.
"""
from __future__ import annotations

import time
from pathlib import Path

import nbformat

TIMING_KEYS = ("papermill", "execution")


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
