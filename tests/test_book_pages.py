"""The book's pages as a reader meets them: the checker catches what it promises to, links and
references lead somewhere, and the text agrees with the chapter registry.

The browser tests need Debian's Chromium and MathJax unpacked by ``make html`` (``_mathjax/``); where
either is missing they are skipped with the reason. ``make check-book`` runs the planted-defect test
first, after ``make html``, so in CI it always runs (about 15 s).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import nbformat
import pybtex.database
import pytest
import yaml

from rfy.chapters import all_chapters

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "book" / "_ext")]
from check_book import browser_problems, doubled_words, dot_segment_links, static_problems  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
CHROMIUM = "/usr/bin/chromium"
MATHJAX = ROOT / "_mathjax" / "mathjax"
needs_browser = pytest.mark.skipif(not (Path(CHROMIUM).exists() and (MATHJAX / "tex-mml-chtml.js").exists()),
                                   reason="needs /usr/bin/chromium and _mathjax/ (make html unpacks it)")

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<script defer src="../mathjax/tex-mml-chtml.js"></script>
<style>body {{ margin: 0; color: #222; }} main {{ max-width: 600px; margin: 0 auto; padding: 0 16px; }}
{style}</style></head>
<body><main><article class="bd-article">{body}</article></main></body></html>"""
PIXEL = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='40' height='20'/%3E"
WIDE_TEX = " + ".join(f"\\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(40))
MID_TEX = " + ".join(f"a_{{{i}}}" for i in range(12))  # narrower than the column, wider than beside its number
WIDE_CELLS = "".join(f"<td>cell{i}_unbreakable_text_of_a_wide_table</td>" for i in range(12))

#: Each defect the checker must report, and a page that must pass: the same things done right.
DEFECTS = PAGE.format(style="mjx-container { overflow: visible !important; } .clip { overflow: hidden; } "
                            "#equation-planted-crowded mjx-container { display: block; overflow-x: auto !important; }",
                      body=f"""
<p>Prose, and a reference written after its own name: see exercise Exercise 1.2 for more.</p>
<p><a href="https://colab.research.google.com/github/o/r/blob/main/./notebooks/x.ipynb">Colab</a></p>
<div class="math clip" id="equation-planted-wide"><span class="eqno">(9.1)</span>\\[ {WIDE_TEX} \\]</div>
<div class="math" id="equation-planted-crowded"><span class="eqno" style="float: right; width: 300px">(9.3)</span>\\[ {MID_TEX} \\]</div>
<div class="clip"><table><tr>{WIDE_CELLS}</tr></table></div>
<figure><img src="{PIXEL}" alt="a blank"><figcaption style="color: #bbb; font-weight: 300">A pale caption.</figcaption></figure>
<img src="{PIXEL}" alt="a squashed blank" style="width: 900px; height: 450px; max-width: 100%">
""")
FINE = PAGE.format(style="table, mjx-container { display: block; overflow-x: auto; }", body=f"""
<p>Prose that refers to Exercise 1.2 once, and a short equation:</p>
<div class="math" id="equation-planted-short"><span class="eqno">(9.2)</span>\\[ a + b = c \\]</div>
<table><tr>{WIDE_CELLS}</tr></table>
<figure><img src="{PIXEL}" alt="a blank"><figcaption>A caption as dark as the text.</figcaption></figure>
<img src="{PIXEL}" alt="a wide blank kept in shape" style="width: 900px; height: 450px; max-width: 100%; height: auto">
""")


@pytest.fixture
def planted_book(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!DOCTYPE html><html><body>index</body></html>")
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "defects.html").write_text(DEFECTS)
    (tmp_path / "planted" / "fine.html").write_text(FINE)
    (tmp_path / "mathjax").symlink_to(MATHJAX, target_is_directory=True)
    return tmp_path


@needs_browser
def test_checker_reports_each_planted_defect_and_passes_the_fine_page(planted_book):
    problems = static_problems(planted_book) + browser_problems(planted_book, CHROMIUM)
    defects = [p for p in problems if p.startswith("planted/defects.html")]
    assert not [p for p in problems if p.startswith("planted/fine.html")]
    expected = [
        "doubled word: …",
        "link with a /./ segment: https://colab.research.google.com/github/o/r/blob/main/./notebooks/x.ipynb",
        "equation wider than the column at desktop width: equation (9.1) planted-wide",
        "equation clipped at phone width: equation (9.1) planted-wide",
        "equation wider than the space beside its number at desktop width",
        "table clipped at desktop width: cell0_unbreakable",
        "table clipped at phone width: cell0_unbreakable",
        "caption text in a light font (weight 300): A pale caption.",
        "caption text with contrast 1.9",
        "image distorted at desktop width (drawn 600×450 px, its own shape 40×20): a squashed blank",
        "image distorted at phone width",
    ]
    for text in expected:
        assert any(f"planted/defects.html: {text}" in p for p in defects), (text, defects)
    assert any("see exercise Exercise 1.2" in p for p in defects if "doubled word" in p)


@needs_browser
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (Debian's poppler-utils)")
def test_pdf_is_a_book_with_contents_bookmarks_and_links_inside_it(planted_book, tmp_path):
    """Title and contents sheets, each page of the book from a new sheet with its number in the contents,
    bookmarks, math typeset, toggles not printed, and links between pages kept inside the PDF."""
    from check_book import pdf_problems
    from rfy_pdf import build_pdf

    (planted_book / "planted" / "fine.html").write_text(FINE.replace(
        "<p>Prose", '<h1>The fine page</h1><details class="hide"><summary>Show code cell source</summary>x</details>'
                    '<p>See <a href="defects.html#equation-planted-wide">the wide equation</a>. Prose'))
    output = tmp_path / "book.pdf"
    count = build_pdf(planted_book, output, CHROMIUM, ["planted/fine.html", "planted/defects.html"], title="Planted")
    data = output.read_bytes()
    assert count == 2 and data.startswith(b"%PDF") and not pdf_problems(output)
    text = subprocess.run(["pdftotext", "-layout", str(output), "-"], capture_output=True, text=True,
                          check=True).stdout.split("\f")
    assert "Planted" in text[0] and "Contents" in text[1]
    assert re.search(r"The fine page\s*\.*\s*3\b", text[1])  # cover, contents, then the first page on sheet 3
    assert "Show code cell source" not in "".join(text) and "rfy-pdf-part" not in "".join(text)
    assert b"/Dest /planted-defects-html--equation-planted-wide" in data  # the link stays inside the PDF
    assert b"MathJax_" in data  # the equations are typeset in MathJax's fonts, not left as TeX


@needs_browser
def test_pdf_checker_reports_no_bookmarks_and_links_to_the_printing_server(tmp_path):
    from check_book import pdf_problems
    from playwright.sync_api import sync_playwright

    output = tmp_path / "bad.pdf"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content('<h1>Title</h1><a href="http://127.0.0.1:8000/book/references.html#id3">[1]</a>'
                         '<a href="#nowhere">a dangling link</a>')
        page.pdf(path=str(output))  # no outline
        browser.close()
    problems = pdf_problems(output)
    assert "no bookmarks (the PDF has no outline)" in problems
    assert "link to the local server the book was printed from: http://127.0.0.1:8000/book/references.html#id3" \
        in problems


def test_doubled_words_are_found_in_sentences_not_across_table_cells():
    assert doubled_words("<p>see exercise <a href='#x'><span>Exercise 1.2</span></a></p>")
    assert not doubled_words("<table><tr><td>mixmatch</td><td>MixMatch</td></tr></table>")
    assert not doubled_words("<ul><li>as in the paper</li><li>paper: TRPO</li></ul>")
    assert not doubled_words("<p>neural-ode ODE-Net</p>")


def test_dot_segment_links_are_found():
    assert dot_segment_links('<a href="https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/./x.ipynb">')
    assert not dot_segment_links('<a href="https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/notebooks/x.ipynb">')


def test_pinned_ref_resolves_in_the_repository():
    """The ref the install cells and launch buttons use is a branch or tag this repository has.

    A fresh clone has the default branch locally and others only as ``origin/<ref>``; a CI checkout
    may be detached with no branch at all, and then there is nothing to resolve against.
    """
    ref = CONFIG["repository"]["branch"]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def resolves(name: str) -> bool:
        return subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], cwd=ROOT,
                              capture_output=True).returncode == 0

    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes", "refs/tags"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not refs:
        pytest.skip("a detached checkout with no branches or tags to resolve the ref against")
    assert any(resolves(name) for name in (ref, f"origin/{ref}", f"refs/tags/{ref}")), \
        f"_config.yml pins repository.branch = {ref!r}, which is no branch or tag here; have: {refs}"


def test_launch_links_start_at_the_repository_root_without_dot_segments():
    """sphinx-book-theme builds ``…/blob/<branch>/<path_to_book>/<page>.ipynb``: the path must name
    the folder of ``_config.yml`` inside the repository with no ``.`` segment (empty: the root)."""
    path = CONFIG["repository"].get("path_to_book", "").strip("/")
    parts = PurePosixPath(path).parts if path else ()
    assert "." not in parts and ".." not in parts, f"path_to_book {path!r} puts a dot segment into launch links"
    assert (ROOT.joinpath(*parts) / "_config.yml").exists()


def test_every_chapter_paper_and_the_review_have_a_link():
    entries = pybtex.database.parse_file(ROOT / "references.bib").entries
    keys = ["ods2019review"] + [chapter.citation for chapter in all_chapters()]
    assert len(keys) == 9 and all(keys)
    unlinked = [key for key in keys if not {"url", "eprint", "doi"} & {name.lower() for name in entries[key].fields}]
    assert not unlinked, f"give these references.bib entries a url, eprint or doi: {unlinked}"


def test_running_page_describes_every_chapters_full_mode():
    """The full-mode list names every chapter of the registry with its full preset's data."""
    text = (ROOT / "book" / "running.md").read_text()
    paragraph = text[text.index("- **full**"):text.index("A bad value fails at once")]
    squashed = re.sub(r"[^a-z0-9]", "", paragraph.lower())
    for chapter in all_chapters():
        assert re.search(rf"\bchapter {chapter.number}\b", paragraph), f"chapter {chapter.number} is not listed"
        config = chapter.Config.for_mode("full")
        data = getattr(config, "dataset", None) or getattr(config, "env_id", "")
        name = re.sub(r"[^a-z0-9]", "", re.sub(r"-v\d+$", "", data.lower()))  # HalfCheetah-v5 -> halfcheetah
        assert name and name in squashed, f"chapter {chapter.number}'s full data {data!r} is not named"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_prose_does_not_name_an_exercise_before_a_reference_that_names_it(path):
    """``{ref}`` to an exercise renders as "Exercise 1.2", so "exercise {ref}`…`" reads "exercise Exercise 1.2"."""
    notebook = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    doubled = re.findall(r"[^\n]{0,40}\b[Ee]xercises?\s+\{(?:ref|numref)\}`[^`]+`", text)
    assert not doubled, f"drop the word before the reference: {doubled}"
