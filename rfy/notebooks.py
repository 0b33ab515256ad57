"""Executing the book's notebooks: papermill with the defaults of the ``parameters`` cell.

The rendered book shows exactly what this produces, and nbval compares against it, so the
stored outputs are never hand-made. Papermill's timing metadata is dropped afterwards so that
re-running a notebook only changes its real outputs.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import platform
import re
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import nbformat

from rfy.errors import ConfigError
from rfy.files import atomic_write_text, describe_path

TIMING_KEYS = ("papermill", "execution")
SOLUTION_BLOCK = re.compile(r"\n*```\{solution\}.*?\n```[ \t]*(?=\n|$)", re.DOTALL)


def strip_timing_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove per-run bookkeeping (start times, durations) from the notebook and its cells."""
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in TIMING_KEYS:
            cell.metadata.pop(key, None)
    return notebook


class NotebookFailed(RuntimeError):
    """A notebook's cell raised (or timed out) during ``execute_in_place``; the message names the cell."""


def write_notebook(notebook: nbformat.NotebookNode, path: Path) -> Path:
    """Write ``notebook`` to ``path`` as ``nbformat.write`` would, but atomically (``rfy.files.atomic_write``):
    a process killed meanwhile leaves the old notebook whole, never a truncated one."""
    text = nbformat.writes(notebook)
    return atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``; ``ConfigError`` naming the file when it is not a Jupyter notebook."""
    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:  # NotJSONError is a ValueError
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{path} is not a Jupyter notebook ({reason}); give .ipynb files") from None


def execute_in_place(path: Path, timeout_s: int = 600) -> float:
    """Run every cell of ``path`` from its folder with papermill, save the outputs, return seconds.

    The outputs go to a temporary file beside ``path``, which replaces it only when every cell ran;
    otherwise ``NotebookFailed`` names the failing cell and ``path`` is left as it was.
    """
    import papermill  # a book/test extra, needed only here
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    read_notebook(path)
    began = time.perf_counter()
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part.ipynb")
    os.close(descriptor)
    executed = Path(name)
    try:
        papermill.execute_notebook(str(path), str(executed), cwd=str(path.parent), progress_bar=False,
                                   execution_timeout=timeout_s)
        write_notebook(strip_timing_metadata(nbformat.read(executed, as_version=4)), path)
    except PapermillExecutionError as error:
        first_line = (error.source.strip().splitlines() or [""])[0][:80]
        message = (error.evalue.strip().splitlines() or [""])[0][:200]
        raise NotebookFailed(f"{path}: cell {error.exec_count} ({first_line!r}) raised {error.ename}: {message}; "
                             f"the notebook was left unchanged") from None
    except (CellTimeoutError, DeadKernelError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise NotebookFailed(f"{path}: execution stopped ({reason}); the notebook was left unchanged") from None
    finally:
        executed.unlink(missing_ok=True)
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


#: The notebook metadata key under which a student copy names its source and the digest of its cells.
STUDENT_COPY_KEY = "rfy_student_copy"


def _cells_digest(notebook: nbformat.NotebookNode) -> str:
    """sha256 of the cells' types, sources and outputs: what a student changes by working in the notebook."""
    cells = [[cell.cell_type, cell.source, cell.get("outputs", [])] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()


def is_unchanged_student_copy(path: Path) -> bool:
    """True when ``path`` is a student copy ``write_student_copies`` wrote and nobody changed since (its cells
    still have the digest stored in its metadata), so replacing it loses nothing."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # not a notebook at all: certainly not ours
        return False
    stored = notebook.metadata.get(STUDENT_COPY_KEY)
    return isinstance(stored, dict) and stored.get("cells_sha256") == _cells_digest(notebook)


def write_student_copies(paths: list[Path], folder: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the student copy of each notebook in ``paths`` into ``folder``; return the new paths.

    Everything is checked before anything is written, and a ``ConfigError`` names the first problem: two
    sources of one name; ``folder`` holding a source notebook (a copy would replace it, outputs and
    solutions lost; refused even with ``overwrite``); a notebook in ``folder`` that is not an unchanged
    student copy (``is_unchanged_student_copy``: it may hold a student's answers), unless ``overwrite``;
    each notebook ``overwrite`` replaces is named in a warning.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output must be a folder, but {folder} is {describe_path(folder)}")
    targets: dict[Path, Path] = {}
    for path in paths:
        target = folder / path.name
        if target in targets:
            raise ConfigError(f"{targets[target]} and {path} would both be copied to {target}; give one of them "
                              f"at a time, or rename one")
        if path.parent.resolve() == folder.resolve() or (target.exists() and target.samefile(path)):
            raise ConfigError(f"--output {folder} holds the source notebook {path}, which a student copy would "
                              f"replace (its outputs and solutions lost); choose another --output folder")
        targets[target] = path
    replaced = []
    for target in targets:
        kind = describe_path(target)
        if kind == "missing" or (kind == "a regular file" and is_unchanged_student_copy(target)):
            continue
        if kind != "a regular file":
            raise ConfigError(f"{target} is {kind}, not a notebook a student copy could replace; move it away")
        if not overwrite:
            raise ConfigError(f"{target} exists and is not an unchanged student copy (it may hold a student's "
                              f"answers); move it away, or pass --overwrite to replace it")
        replaced.append(target)
    folder.mkdir(parents=True, exist_ok=True)
    for target, path in targets.items():
        copy = student_copy(read_notebook(path))
        copy.metadata[STUDENT_COPY_KEY] = {"source": path.name, "cells_sha256": _cells_digest(copy)}
        write_notebook(copy, target)
        if target in replaced:
            warnings.warn(f"{target} was replaced by the student copy of {path} (--overwrite); what it held is gone")
    return list(targets)


RST_MATH = re.compile(r":math:`([^`]*)`")
RST_LITERAL = re.compile(r"``([^`]+)``")
#: Inline math ``$…$`` (not ``$$``); its line breaks are joined, since Markdown would read a line that starts
#: with ``+`` as a list item, and a trailing backslash as a hard break, inside the formula.
INLINE_MATH = re.compile(r"(?<!\$)\$(?!\$)[^$]+\$")


def docstring_markdown(text: str) -> str:
    """A docstring as Markdown for the page: ``:math:`x``` becomes ``$x$`` (rendered by MathJax), each
    inline formula is joined onto one line, and reStructuredText's double-backtick literals become
    single-backtick code."""
    text = RST_LITERAL.sub(r"`\1`", RST_MATH.sub(r"$\1$", inspect.cleandoc(text)))
    return INLINE_MATH.sub(lambda match: re.sub(r"\\?\n\s*", " ", match.group(0)), text)


def split_docstrings(source: str) -> tuple[str, list[tuple[str, str]]]:
    """``source`` without the docstrings of its functions and classes, and those docstrings as
    ``(qualified name, text)`` in source order. A body left empty gets ``...``."""
    tree = ast.parse(source)
    lines, found, removed = source.splitlines(), [], set()
    empty_bodies = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                text = ast.get_docstring(child, clean=False)
                if text is not None:
                    first = child.body[0]
                    found.append((name, text))
                    removed.update(range(first.lineno - 1, first.end_lineno))
                    if first.end_lineno < len(lines) and not lines[first.end_lineno].strip():
                        removed.add(first.end_lineno)  # the blank line after the docstring
                    if len(child.body) == 1:
                        empty_bodies[first.lineno - 1] = " " * first.col_offset + "..."
                visit(child, f"{name}.")

    visit(tree, "")
    kept = [empty_bodies[i] if i in empty_bodies else line for i, line in enumerate(lines)
            if i not in removed or i in empty_bodies]
    return "\n".join(kept), found


def source_block(obj: Any) -> Any:
    """The source of ``obj`` (a function, class or module) as a highlighted Python block, its
    docstrings taken out of the code and shown above it as Markdown with their math rendered.

    Returned as Markdown so that Jupyter and the built book both highlight it; the page shows
    exactly the package's code, so the two cannot drift.
    """
    from IPython.display import Markdown

    code, docstrings = split_docstrings(textwrap.dedent(inspect.getsource(obj)))
    own_name = getattr(obj, "__name__", None)
    notes = [docstring_markdown(text) if index == 0 and name == own_name else f"`{name}`: {docstring_markdown(text)}"
             for index, (name, text) in enumerate(docstrings)]
    prose = "\n\n".join(notes)
    return Markdown((prose + "\n\n" if prose else "") + "```python\n" + code.rstrip() + "\n```")


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


INSTALL_TAG = "rfy-install"
INSTALL_NOTE = (
    "**Run this page yourself** on Colab or Binder (the rocket icon above): the collapsed cell below installs "
    "`rfy` when it is missing ({doc}`../book/running` has the other ways).")
#: The install cell's tags: found by ``sync_install_cell``, its code collapsed on the book's page.
INSTALL_CELL_TAGS = [INSTALL_TAG, "hide-input"]


def install_cell_source(repository: str, ref: str, extras: str = "") -> str:
    """The code of every chapter's install cell, for the repository and pinned ref of ``_config.yml``.

    The cell clones the repository at ``ref`` and installs it in editable mode, so the run records
    under ``results/`` sit beside the package, where the chapter tables look for them. ``extras``
    names optional dependencies a chapter's full mode needs (``"mujoco"`` for chapter 4). On failure
    the cell says what to do instead of leaving an ``ImportError`` three cells later.
    """
    target = f'f"{{folder}}[{extras}]"' if extras else "str(folder)"
    return f'''# Install rfy (this book's package) when it is missing: Colab, Binder or a fresh environment.
RFY_REPOSITORY, RFY_REF = "{repository}", "{ref}"
import importlib.util, pathlib, subprocess, sys
if importlib.util.find_spec("rfy") is None:
    folder = pathlib.Path.home() / "rfy"
    clone = ["git", "clone", "--quiet", "--depth", "1", "--branch", RFY_REF, RFY_REPOSITORY, str(folder)]
    install = [sys.executable, "-m", "pip", "install", "--quiet", "-e", {target}]
    for step in ([] if folder.exists() else [clone]) + [install]:
        if subprocess.run(step).returncode != 0:
            raise RuntimeError(
                f"Could not install rfy from {{RFY_REPOSITORY}} at {{RFY_REF}} ({{step[0]}} failed). Check that this "
                "runtime has internet access and run this cell again. Without internet: upload the repository as a "
                "zip, unpack it to ~/rfy and run this cell again; see the book's page 'Running the notebooks'.")
    sys.path.insert(0, str(folder))  # the running kernel sees the editable install without a restart'''


def sync_install_cell(notebook: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """Put the install note and cell right after the title cell, replacing any earlier install cell."""
    cells = [cell for cell in notebook.cells
             if INSTALL_TAG not in cell.metadata.get("tags", [])
             and not (cell.cell_type == "code" and "find_spec(\"rfy\")" in cell.source)]
    note = nbformat.v4.new_markdown_cell(INSTALL_NOTE, metadata={"tags": [INSTALL_TAG]})
    code = nbformat.v4.new_code_cell(source, metadata={"tags": list(INSTALL_CELL_TAGS)})
    title = next(i for i, cell in enumerate(cells) if cell.cell_type == "markdown")
    notebook.cells = cells[:title + 1] + [note, code] + cells[title + 1:]
    return notebook



def book_repository(config_path: Path) -> tuple[str, str]:
    """The repository URL and pinned ref named once in the book's ``_config.yml``."""
    import yaml

    repository = yaml.safe_load(config_path.read_text())["repository"]
    return repository["url"], repository["branch"]


def sync_install_cells(paths: list[Path], config_path: Path, extras: dict[str, str]) -> list[Path]:
    """Rewrite each notebook's install cell from ``_config.yml``; return the notebooks that changed.

    ``extras`` maps a notebook's name to the pip extras its chapter declares (``Chapter.extras``).
    """
    url, ref = book_repository(config_path)
    changed = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        before = [(cell.source, cell.metadata.get("tags")) for cell in notebook.cells]
        source = install_cell_source(url, ref, extras.get(path.stem, ""))
        sync_install_cell(notebook, source)
        if [(cell.source, cell.metadata.get("tags")) for cell in notebook.cells] != before:
            write_notebook(notebook, path)
            changed.append(path)
    return changed


#: The tag of the cell that shows a chapter's run records (``show_records``); ``refresh_records_outputs``
#: rewrites its stored output from the records when the book is built.
RECORDS_TAG = "rfy-records"


def records_output(markdown: str) -> nbformat.NotebookNode:
    """The stored output of a ``show_records`` cell: the Markdown as Jupyter stores ``display(Markdown(…))``."""
    return nbformat.v4.new_output("display_data", data={
        "text/markdown": markdown, "text/plain": "<IPython.core.display.Markdown object>"})


def show_records(chapter: Any, root: Path | None = None) -> None:
    """Display what the chapter's page shows from its run records (``rfy.tables.chapter_records_markdown``)."""
    from IPython.display import Markdown, display

    from rfy.tables import chapter_records_markdown

    display(Markdown(chapter_records_markdown(chapter, root)))


def refresh_records_outputs(chapters: list[Any], folder: Path, root: Path | None = None) -> list[Path]:
    """Rewrite the stored output of every notebook's ``rfy-records`` cell from the run records as they are
    now (no cell is executed), so the built page never shows records older than ``results/``; ``folder``
    holds the notebooks, ``root`` the records (default: ``results/``). Returns the notebooks that changed.
    A chapter's notebook must have exactly one such cell."""
    from rfy.tables import chapter_records_markdown

    changed = []
    for chapter in chapters:
        path = folder / f"{chapter.notebook}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        cells = [cell for cell in notebook.cells if RECORDS_TAG in cell.metadata.get("tags", [])]
        if len(cells) != 1:
            raise ConfigError(f"{path.name} must have exactly one cell tagged {RECORDS_TAG!r} "
                              f"(calling rfy.notebooks.show_records), found {len(cells)}")
        output = records_output(chapter_records_markdown(chapter, root))
        if cells[0].get("outputs") != [output]:
            cells[0].outputs = [output]
            write_notebook(notebook, path)
            changed.append(path)
    return changed


def page_time(started: float, device: Any = None) -> str:
    """The sentence a page ends with: how long it took since ``started`` (``time.perf_counter()``) and on
    what, e.g. ``This page ran in 45 s on 2 CPU cores (x86_64).`` The stored pages are executed on an
    idle 2-core machine, so the number a reader sees is a reader's time, not a hand-typed estimate."""
    import torch

    from rfy.parallel import cpu_cores
    from rfy.runtime import select_device

    seconds = time.perf_counter() - started
    where = f"{cpu_cores()} CPU cores ({platform.machine()})"
    if device is not None and (device := select_device(device)).type == "cuda":
        where = f"a {torch.cuda.get_device_name(device)} GPU and " + where
    return f"This page ran in {seconds:.0f} s on {where}."
