"""The method diagrams in book/diagrams: one per chapter, with caption and alt text, well-formed,
laid out without overlaps, and reproducible from book/diagrams/draw.py byte for byte."""
import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from rfy.chapters import slugs

DIAGRAMS = Path(__file__).resolve().parents[1] / "book" / "diagrams"
_spec = importlib.util.spec_from_file_location("rfy_diagrams", DIAGRAMS / "draw.py")
draw = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = draw  # dataclasses look their module up there
_spec.loader.exec_module(draw)


def test_every_chapter_has_a_diagram_and_no_diagram_lacks_a_chapter():
    assert set(draw.DIAGRAMS) == set(slugs())
    assert sorted(path.stem for path in DIAGRAMS.glob("*.svg")) == sorted(slugs())


@pytest.mark.parametrize("slug", slugs())
def test_caption_and_alt_text_are_written(slug):
    entry = draw.captions()[slug]
    assert set(entry) == {"caption", "alt"}
    assert len(entry["caption"]) >= 100 and len(entry["alt"]) >= 200
    assert entry["alt"] != entry["caption"]
    assert "$" not in entry["alt"], "alt text is read aloud: no LaTeX"


@pytest.mark.parametrize("slug", slugs())
def test_svg_is_well_formed_with_a_view_box_at_column_width(slug):
    root = ET.parse(DIAGRAMS / f"{slug}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    x, y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0)
    assert width == pytest.approx(72 * (draw.COLUMN_WIDTH_IN + 2 * draw.MARGIN / draw.UNIT))
    assert 0.3 * width < height < width


@pytest.mark.parametrize("slug", slugs())
def test_layout_has_no_overlaps(slug):
    with draw.style():
        fig = draw.DIAGRAMS[slug]()
        problems = draw.layout_problems(fig)
        plt.close(fig)
    assert problems == []


def test_layout_check_finds_overlaps_and_overflowing_text():
    with draw.style():
        fig, ax = draw.canvas(1.0)
        draw.box(ax, 100, 50, 30, 20, "far too long for this box")
        draw.note(ax, 300, 50, "one")
        draw.note(ax, 305, 52, "two")
        draw.arrow(ax, (250, 30), (350, 70))
        draw.note(ax, 640, 50, "off the edge")
        problems = draw.layout_problems(fig)
        plt.close(fig)
    text = "\n".join(problems)
    assert "does not fit its box" in text
    assert "'one' overlaps text 'two'" in text
    assert "crosses text 'one'" in text
    assert "reaches the canvas's edge" in text


def test_redrawing_reproduces_the_committed_file(tmp_path):
    from rfy.plotting import BOOK_STYLE
    with plt.rc_context(BOOK_STYLE):  # a notebook's settings must not leak into the diagram
        path = draw.draw("voters", tmp_path)
    assert path.read_bytes() == (DIAGRAMS / "voters.svg").read_bytes(), "run `python book/diagrams/draw.py`"


def test_myst_figure_block_renders_with_its_alt_text_and_name():
    from docutils.core import publish_string
    from myst_parser.parsers.docutils_ import Parser

    slug = "preferences"
    html = publish_string(draw.myst_figure(slug), parser=Parser(), writer_name="html5",
                          settings_overrides={"myst_enable_extensions": ["dollarmath"], "report_level": 2}).decode()
    alt = draw.captions()[slug]["alt"].replace('"', "&quot;")
    assert f'<img alt="{alt}" id="fig-{slug}-method" src="../book/diagrams/{slug}.svg"' in html
    assert "system-message" not in html.split("<body", 1)[1]


def test_unknown_slug_names_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="neural-ode"):
        draw.draw("no-such-chapter", tmp_path)
