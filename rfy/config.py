"""Chapter configurations: frozen dataclasses with named presets and eager validation.

Every chapter defines ``Config(RunConfig)`` with ``reduced()`` and ``full()`` presets. Fields are
checked when the object is created, so a typo fails at once with the field name and the allowed
values instead of deep inside a training loop.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from rfy.errors import ConfigError
from rfy.runtime import DEVICE_CHOICES

MODES = ("reduced", "full")

C = TypeVar("C", bound="RunConfig")


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{field} must be one of {allowed}, got {value!r}")


def check_positive(field: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise ``ConfigError`` unless ``value`` is a positive (or non-negative) number (an int if asked)."""
    kind = "integer" if integer else "number"
    is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not is_number or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{field} must be a {kind} {bound}, got {value!r}")


def check_fraction(field: str, value: Any) -> None:
    """Raise ``ConfigError`` unless ``0 < value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{field} must be a number strictly between 0 and 1, got {value!r}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Fields every chapter shares: the mode, the seed that drives every random draw, the device."""

    mode: str = "reduced"
    seed: int = 0
    device: str = "auto"

    chapter: ClassVar[str] = ""
    full_preset: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_positive("seed", self.seed, integer=True, allow_zero=True)
        if str(self.device).split(":")[0] not in DEVICE_CHOICES:
            raise ConfigError(f"device must be one of {DEVICE_CHOICES} (or 'cuda:N'), got {self.device!r}")
        self.validate()

    def validate(self) -> None:
        """Chapter-specific checks; override in subclasses."""

    @classmethod
    def reduced(cls: type[C], **overrides: Any) -> C:
        """CPU-sized preset that needs no download and finishes in about a minute (the field defaults)."""
        return cls.for_mode("reduced", **overrides)

    @classmethod
    def full(cls: type[C], **overrides: Any) -> C:
        """The paper's protocol, meant for a GPU: the defaults updated with ``full_preset``."""
        return cls.for_mode("full", **overrides)

    @classmethod
    def for_mode(cls: type[C], mode: str, **overrides: Any) -> C:
        """The preset for ``mode`` (``"reduced"`` or ``"full"``) with ``overrides`` applied."""
        check_choice("mode", mode, MODES)
        names = {f.name for f in dataclasses.fields(cls)} - {"mode"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; {cls.__name__} accepts {sorted(names)}")
        preset = dict(cls.full_preset) if mode == "full" else {}
        return cls(mode=mode, **{**preset, **overrides})

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, for run records."""
        return dataclasses.asdict(self)
