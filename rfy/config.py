"""Chapter configurations: frozen dataclasses with named presets and eager validation.

Every chapter defines ``Config(RunConfig)`` with ``reduced()`` and ``full()`` presets. Fields are
checked when the object is created, so a typo fails at once with the field name and the allowed
values instead of deep inside a training loop.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from rfy.errors import ConfigError
from rfy.runtime import check_device_name, check_seed

MODES = ("reduced", "full")
#: The largest magnitude a float field (or each float in a tuple field) may take unless its class says
#: otherwise (``RunConfig.limits``): far beyond every setting of the papers, far below the float32 range
#: (about 3.4e38) where torch fails with an overflow deep inside a training step.
FLOAT_LIMIT = 1e6
#: The largest magnitude an integer field may take: sizes and counts beyond it fill no machine, and
#: libraries convert integers to C longs (an int of 10**30 is an OverflowError inside torch).
INT_LIMIT = 2**31 - 1
#: Bounds by field name, for fields every chapter calls the same: a learning rate above 10 diverges
#: with every optimizer here.
NAMED_LIMITS = {"lr": (0.0, 10.0)}
#: How many characters of a value an error message shows (a 100 KB ``--set`` value is not echoed whole).
SHOWN_CHARACTERS = 80
#: Fields a resumed run may change (``--resume`` refuses any other difference from the checkpoint):
#: the device, so a run started on one machine can finish on another.
RESUMABLE_CHANGES = ("device",)

C = TypeVar("C", bound="RunConfig")


def brief(value: Any) -> str:
    """``repr(value)``, cut to ``SHOWN_CHARACTERS`` with its full length said, for an error message."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}… ({len(text)} characters)"


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{field} must be one of {allowed}, got {brief(value)}")


def check_positive(field: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise ``ConfigError`` unless ``value`` is a positive (or non-negative) number (an int if asked)."""
    kind = "an integer" if integer else "a number"
    is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not is_number or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{field} must be {kind} {bound}, got {brief(value)}")


def check_fraction(field: str, value: Any) -> None:
    """Raise ``ConfigError`` unless ``0 < value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{field} must be a number strictly between 0 and 1, got {brief(value)}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Fields every chapter shares: the mode, the seed that drives every random draw, the device."""

    mode: str = "reduced"
    seed: int = 0
    device: str = "auto"

    full_preset: ClassVar[dict[str, Any]] = {}
    #: ``{field: (lowest, highest)}`` for a numeric field (or each number of a tuple field) whose sane range
    #: differs from the default (``field_limits``).
    limits: ClassVar[dict[str, tuple[float, float]]] = {}

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_seed(self.seed)
        check_device_name(self.device)
        for name, annotation in _field_types(type(self)).items():
            value = check_type(name, getattr(self, name), annotation)
            if value is not getattr(self, name):  # a list given for a tuple field (papermill, JSON)
                object.__setattr__(self, name, value)
            check_limits(name, value, self.field_limits(name))
        self.validate()

    @classmethod
    def field_limits(cls, name: str) -> tuple[float, float] | None:
        """The range every number of field ``name`` must lie in: ``limits[name]``, else ``NAMED_LIMITS``
        for a field called ``lr`` or ``…_lr``, else ``None`` (the defaults ``FLOAT_LIMIT``, ``INT_LIMIT``)."""
        if name in cls.limits:
            return cls.limits[name]
        return NAMED_LIMITS.get("lr" if name == "lr" or name.endswith("_lr") else name)

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
            raise ConfigError(f"unknown config field(s) {brief(unknown)}; {cls.__name__} accepts {sorted(names)}")
        preset = dict(cls.full_preset) if mode == "full" else {}
        return cls(mode=mode, **{**preset, **overrides})

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, for run records."""
        return dataclasses.asdict(self)

    def differences(self, other: dict[str, Any], *, ignore: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
        """Fields whose value in the plain dict ``other`` (a record's or checkpoint's config) differs.

        Returns ``{field: (value in other, value here)}``; a field missing from ``other`` counts as
        different (``"<missing>"``), and so does a field of ``other`` this class does not have.
        Tuples compare equal to the lists JSON turns them into.
        """
        return config_differences(other, self.to_dict(), ignore=ignore)

    def preset(self: C) -> C:
        """The chapter's preset for this config's mode, with this seed and device."""
        return type(self).for_mode(self.mode, seed=self.seed, device=self.device)

    def is_preset(self) -> bool:
        """True when every field equals the preset of this mode (the seed and device may differ)."""
        return not self.differences(self.preset().to_dict())

    def run_seeds(self, count: int | None = None) -> tuple[int, ...]:
        """The seeds of ``count`` independent inner runs (repeats, agents): ``seed·count + i`` for ``i < count``.

        Run seeds 0, 1, 2, … draw disjoint blocks (seed 1 with three repeats: 3, 4, 5), so a sweep over
        run seeds never trains the same inner run twice. ``count`` defaults to the config's ``repeats``
        field, or 1 for a config without one. Seeds wrap below 2**31, the bound every seed keeps.
        """
        count = getattr(self, "repeats", 1) if count is None else count
        return tuple((self.seed * count + i) % 2**31 for i in range(count))

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the run's repeats: ``run_seeds()``."""
        return self.run_seeds()


MISSING = "<missing>"


def plain(value: Any) -> Any:
    """``value`` as JSON would give it back: tuples become lists, dict keys strings."""
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value


def config_differences(old: dict[str, Any], new: dict[str, Any], *,
                       ignore: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """``{field: (old value, new value)}`` for every field that differs between two config dicts."""
    skip = set(ignore)
    names = (set(old) | set(new)) - skip
    return {name: (old.get(name, MISSING), new.get(name, MISSING)) for name in sorted(names)
            if plain(old.get(name, MISSING)) != plain(new.get(name, MISSING))}


def describe_differences(differences: dict[str, tuple[Any, Any]]) -> str:
    """``lr 0.002 -> 0.5, steps 500 -> 10`` for a message."""
    return ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in differences.items())


# Generic checks from the field annotations ---------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every dataclass field of ``cls`` (``{}`` if they cannot be resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that names something not importable: skip the generic checks
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name in hints}


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {bool: "True/False values", int: "integers", float: "finite numbers", str: "strings"}
            return f"a tuple of {plural.get(args[0], _type_name(args[0]))}, e.g. ({_example(args[0])},)"
        return f"a tuple ({', '.join(_type_name(a) for a in args)})"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    return {bool: "True or False", int: "an integer", float: "a finite number", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def _example(annotation: Any) -> str:
    return {int: "1", float: "0.5", str: "'a'", bool: "True"}.get(annotation, "…")


def check_type(name: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against the field annotation (bool, int, float, str, tuple[...], X | None).

    Returns the value, with a list turned into a tuple where a tuple is expected. Floats must be
    finite everywhere (``1e999`` reads as infinity). Other annotations are left to ``validate``.
    """
    if not _matches(value, annotation):
        raise ConfigError(f"{name} must be {_type_name(annotation)}, got {brief(value)}")
    if _has_non_finite(value):
        raise ConfigError(f"{name} must be finite (no NaN or infinity), got {brief(value)}")
    return _as_tuples(value, annotation)


def check_limits(name: str, value: Any, limits: tuple[float, float] | None = None) -> None:
    """Raise ``ConfigError`` unless every number in ``value`` (a number, or a tuple or list of them) lies in
    ``limits`` (lowest, highest), or, without ``limits``, within ``FLOAT_LIMIT`` (a float) or ``INT_LIMIT``
    (an int) of zero. Other values (strings, None) are not checked here."""
    each = " each" if isinstance(value, (tuple, list)) else ""
    for number in _numbers(value):
        if limits is not None and not limits[0] <= number <= limits[1]:
            raise ConfigError(f"{name}{each} must be from {_bound(limits[0])} to {_bound(limits[1])}, "
                              f"got {brief(value)}")
        bound = INT_LIMIT if isinstance(number, int) else FLOAT_LIMIT
        if limits is None and abs(number) > bound:
            raise ConfigError(f"{name}{each} must be at most {_bound(bound)} in magnitude (a larger value is no "
                              f"sane setting), got {brief(value)}")


def _bound(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (tuple, list)):
        return [number for item in value for number in _numbers(item)]
    return []


def _matches(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, (str, TypeVar)):
        return True
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        if args == ((),) or not args:
            return not args or len(value) == 0
        return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args))
    return True  # a type the generic check does not know: the chapter's validate() decides


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return any(_has_non_finite(item) for item in value)
    return False


def _as_tuples(value: Any, annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        matching = [arg for arg in args if _matches(value, arg)]
        return _as_tuples(value, matching[0]) if matching else value
    if origin is tuple and isinstance(value, (tuple, list)):
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        converted = tuple(_as_tuples(item, arg) for item, arg in zip(value, items)) if items else tuple(value)
        return value if isinstance(value, tuple) and all(a is b for a, b in zip(converted, value)) else converted
    return value
