"""A bibliography whose labels read like the citations in the text: "Chen et al. 2018".

The text cites author-year (``bibtex_reference_style: author_year``); pybtex's default list labels
are alpha codes ("CRBD18"), so a reader cannot match the two. This registers the pybtex style
``authoryear``: the ``unsrt`` formatting with author-year labels.
"""
from __future__ import annotations

import codecs
from collections.abc import Iterator

import latexcodec  # noqa: F401 - registers the "ulatex" codec (a dependency of pybtex)

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def author_year(entry) -> str:
    """``Last 2018``, ``Last & Other 2018`` or ``Last et al. 2018`` (organisations as written)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(person.last_names) or " ".join(person.first_names) for person in people]
    names = [codecs.decode(name, "ulatex").replace("{", "").replace("}", "") for name in names]
    if not names:
        names = [entry.fields.get("author", entry.key).strip("{}")]
    who = names[0] if len(names) == 1 else f"{names[0]} & {names[1]}" if len(names) == 2 else f"{names[0]} et al."
    return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries) -> Iterator[str]:
        for entry in sorted_entries:
            yield author_year(entry)


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
