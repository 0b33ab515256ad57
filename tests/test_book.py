"""Conventions every chapter notebook and the book configuration keep."""
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from rfy.chapters import all_chapters
from rfy.notebooks import (INSTALL_CELL_TAGS, INSTALL_NOTE, INSTALL_TAG, book_repository, install_cell_source,
                           strip_timing_metadata, sync_install_cell)

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "book" / "_ext")]
from check_book import stray_math  # noqa: E402  (a script beside the tests, not a package)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
EXTRAS = {chapter.notebook: chapter.extras for chapter in all_chapters()}


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
    url, ref = book_repository(ROOT / "_config.yml")
    install = [cell for cell in notebook.cells if INSTALL_TAG in cell.metadata.get("tags", [])]
    assert [cell.cell_type for cell in install] == ["markdown", "code"], "run `sync_install_cells` on the notebook"
    assert install[1].source == install_cell_source(url, ref, EXTRAS.get(path.stem, ""))
    assert notebook.cells.index(install[0]) == 1, "the install note follows the title cell"
    assert install[0].source == INSTALL_NOTE and "\n" not in INSTALL_NOTE  # one visible line on the page
    assert install[1].metadata["tags"] == INSTALL_CELL_TAGS  # the code collapsed in the book
    assert "papermill" not in notebook.metadata
    for cell in notebook.cells:
        assert all(output.get("output_type") != "error" for output in cell.get("outputs", []))


def test_install_cell_fails_with_advice_when_the_repository_cannot_be_reached(tmp_path):
    source = install_cell_source((tmp_path / "no-such-repo").as_uri(), "v0.0.0")
    python_without_rfy = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(python_without_rfy)], check=True)
    result = subprocess.run([str(python_without_rfy / "bin" / "python"), "-c", source], capture_output=True,
                            text=True, env={**os.environ, "HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not install rfy from" in result.stderr and "git failed" in result.stderr
    assert "Running the notebooks" in result.stderr


def test_sync_install_cell_replaces_an_old_install_cell_and_is_idempotent():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('import importlib.util\nif importlib.util.find_spec("rfy") is None: pass'),
        nbformat.v4.new_markdown_cell("# 1 · Title"), nbformat.v4.new_code_cell("x = 1")])
    once = sync_install_cell(notebook, "print('install')")
    assert [cell.source for cell in once.cells][0] == "# 1 · Title"
    assert [cell.source for cell in once.cells][2:] == ["print('install')", "x = 1"]
    twice = sync_install_cell(once, "print('install')")
    assert [cell.source for cell in twice.cells] == [cell.source for cell in once.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_show_package_code_highlighted_not_printed(path):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "print(inspect.getsource" not in code


def test_source_block_is_a_highlighted_python_block_of_the_real_source():
    from rfy.claims import at_least
    from rfy.notebooks import source_block

    block = source_block(at_least).data
    prose, code = block.split("```python\n")
    assert prose.strip() == "The claim `measured ≥ threshold`."
    assert code.startswith("def at_least(") and code.endswith("\n```") and '"""' not in code
    compile(code.removesuffix("```"), "at_least", "exec")  # still valid Python without its docstring


def test_source_block_renders_docstring_math_and_leaves_no_tex_in_the_code():
    from rfy.notebooks import docstring_markdown, split_docstrings

    assert docstring_markdown("Loss :math:`\\mathcal L(x)` of ``x``.") == "Loss $\\mathcal L(x)$ of `x`."
    source = 'class A:\n    """Outer $a$."""\n\n    def f(self):\n        """Inner $b$."""\n\n    def g(self):\n        return 1\n'
    code, docstrings = split_docstrings(source)
    assert docstrings == [("A", "Outer $a$."), ("A.f", "Inner $b$.")]
    assert "$" not in code and "    def f(self):\n        ...\n" in code
    compile(code, "A", "exec")


def test_stray_math_finds_dollars_and_tex_outside_math_and_code():
    assert stray_math('<p>the first \\(|\\mathcal X|</p>')
    assert stray_math("<p>costs $5</p>")
    assert not stray_math('<p>fine <span class="math notranslate">\\(x^2\\)</span></p><pre>$HOME</pre>')
    assert not stray_math("<p>see <code>$RFY_DATA</code></p>")


def test_repeated_head_scripts_are_dropped_once_each():
    from rfy_pages import drop_repeated_scripts

    html = "<head>\n<script>const A = 1;</script>\n<script src=x.js></script>\n<script>const A = 1;</script>\n</head>" \
           "<body><script>const A = 1;</script></body>"
    cleaned = drop_repeated_scripts(html)
    assert cleaned.count("const A = 1;") == 2  # once in the head, and the body is left alone
    assert "x.js" in cleaned


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_numbered_caption_and_alt_text(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code" or not any("image/png" in out.get("data", {}) for out in cell.outputs):
            continue
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        image = cell.metadata.get("mystnb", {}).get("image", {})
        assert figure.get("caption") and figure.get("name", "").startswith("fig-"), cell.source[:80]
        assert len(image.get("alt", "")) > 20, f"no real alt text: {cell.source[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_are_labelled_per_chapter_and_never_referred_to_by_number(path):
    notebook = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert not re.search(r"\b[Ee]xercise \d", text), "refer to exercises by {ref} label, not by number"


def test_docstring_math_is_joined_onto_one_line_so_markdown_cannot_break_it():
    from rfy.notebooks import docstring_markdown

    text = "Loss $a =\n    -b\n    + c$ and $d,\\\n e$.\n\nNext paragraph."
    assert docstring_markdown(text) == "Loss $a = -b + c$ and $d, e$.\n\nNext paragraph."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_source_blocks_are_the_package_code_as_it_is(path):
    import importlib
    import re as regex

    from rfy.notebooks import source_block

    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    alias = dict(regex.findall(r"^import (rfy\.\w+) as (\w+)$", code, regex.M))
    modules = {name: importlib.import_module(module) for module, name in alias.items()}
    for cell in notebook.cells:
        call = regex.fullmatch(r"show_source\(([^)]*)\)", cell.source.strip()) if cell.cell_type == "code" else None
        if call:
            shown = [output["data"]["text/markdown"] for output in cell.outputs]
            objects = []
            for name in call.group(1).split(","):
                head, *rest = name.strip().split(".")
                obj = modules[head]
                for attribute in rest:
                    obj = getattr(obj, attribute)
                objects.append(obj)
            assert shown == [source_block(obj).data for obj in objects], f"re-run {cell.source} in {path.name}"
