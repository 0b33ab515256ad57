"""The registry: the book's chapter packages, in book order.

Each package defines ``CHAPTER`` (``rfy.contract.Chapter``); its slug is the package's name with
dashes (``rfy.neural_ode`` → ``neural-ode``), which the command line and the run records use.
Adding a chapter adds one line here. A chapter is imported only when it is asked for, so
``python -m rfy run neural-ode`` does not import the other seven.
"""
from __future__ import annotations

import importlib

from rfy.contract import Chapter, slug_of
from rfy.errors import ConfigError

CHAPTER_MODULES = [
    "rfy.neural_ode",
    "rfy.semi_unsupervised",
    "rfy.debiasing",
    "rfy.preferences",
    "rfy.randwire",
    "rfy.voters",
    "rfy.mixmatch",
    "rfy.divide_conquer",
]


def slugs() -> tuple[str, ...]:
    """Every chapter's slug, in book order (no chapter is imported)."""
    return tuple(slug_of(name) for name in CHAPTER_MODULES)


def chapter(slug: str) -> Chapter:
    """The ``CHAPTER`` of chapter ``slug``; an unknown slug names the allowed ones."""
    modules = {slug_of(name): name for name in CHAPTER_MODULES}
    if slug not in modules:
        raise ConfigError(f"chapter must be one of {tuple(modules)}, got {slug!r}")
    found = importlib.import_module(modules[slug]).CHAPTER
    if found.slug != slug:
        raise ConfigError(f"{modules[slug]}.CHAPTER.slug is {found.slug!r}, but the package's name makes it {slug!r}")
    return found


def all_chapters() -> list[Chapter]:
    """Every chapter, in book order."""
    return [chapter(slug) for slug in slugs()]
