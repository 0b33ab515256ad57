"""The chapter contract: what every chapter declares once, in ``rfy/<chapter>/__init__.py``.

A chapter module defines ``CHAPTER = Chapter(...)``. The command line, the reproduction and
robustness tables, the notebook helpers, the book's checks and the tests read a chapter only
through this object, so its slug, number, title, notebook, config, experiment and claims are
written in one place. ``rfy.chapters`` lists the chapter modules in book order.

This module is part of the core: it imports no chapter.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rfy.config import RunConfig
from rfy.errors import ConfigError

if TYPE_CHECKING:
    from rfy.checkpoint import RunState
    from rfy.claims import Claim
    from rfy.tables import PaperNumber

SLUG_RULE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def slug_of(module_name: str) -> str:
    """The slug of a chapter package: its last name with dashes (``rfy.neural_ode`` → ``neural-ode``)."""
    return module_name.rsplit(".", 1)[-1].replace("_", "-")


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book, as the core and the command line see it.

    ``run(config, state)`` is the chapter's experiment and returns its flat metrics (``str -> float``);
    ``claims(metrics)`` what the chapter asserts about them; ``paper_numbers`` the paper's reported
    values beside our metric keys. ``notebook`` is the notebook's file name without ``.ipynb`` and
    starts with the two-digit ``number``. ``citation`` is the paper's key in ``references.bib`` and
    ``summary`` the claim the chapter checks, in a line: the book's landing table is made of them.
    ``study(config, state)``, where a chapter has one, is the same experiment returning everything the
    page's figures need, with ``run``'s metrics as its ``metrics``: the notebook calls it, so the page
    and the command line take their metrics from one path. ``extras`` names the pip extras the notebook's full mode
    needs (``"mujoco"``). The optional ``benchmark(device=…, steps=…, batch_size=…)`` measures
    training speed (``rfy bench``); ``cost_parts(config) -> list[rfy.cost.CostPart]`` lists what a
    preset trains, for ``rfy estimate``.
    """

    slug: str
    number: int
    title: str
    notebook: str
    Config: type[RunConfig]
    run: Callable[[RunConfig, RunState], Mapping[str, float]]
    claims: Callable[[dict[str, float]], list[Claim]]
    paper_numbers: Sequence[PaperNumber]
    citation: str = ""
    summary: str = ""
    study: Callable[[RunConfig, RunState], Any] | None = None
    extras: str = ""
    benchmark: Callable[..., dict[str, Any]] | None = None
    cost_parts: Callable[[Any], list[Any]] | None = None
    #: ``(package, how to install it)`` for each optional package a config needs (MuJoCo, torchvision's trunks),
    #: checked by the command line before a run writes anything.
    optional_packages: Callable[[Any], list[tuple[str, str]]] | None = None

    def __post_init__(self) -> None:
        if not SLUG_RULE.match(self.slug):
            raise ConfigError(f"chapter slug must be lower-case words joined by '-', like 'neural-ode', "
                              f"got {self.slug!r}")
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 1:
            raise ConfigError(f"chapter number must be an integer >= 1, got {self.number!r}")
        if not self.notebook.startswith(f"{self.number:02d}_"):
            raise ConfigError(f"chapter {self.slug!r}: notebook must start with '{self.number:02d}_' (its number), "
                              f"got {self.notebook!r}")
        if not (isinstance(self.Config, type) and issubclass(self.Config, RunConfig)):
            raise ConfigError(f"chapter {self.slug!r}: Config must be a RunConfig subclass, got {self.Config!r}")

    @property
    def heading(self) -> str:
        """``"1. Neural ordinary differential equations"``: how the command line and the tables name it."""
        return f"{self.number}. {self.title}"
