"""What a constructor argument may be, declared once in its type hint, and how that is checked.

Each argument of mnist-pl's constructors says what it allows in its annotation: its type, the
choices as a `Literal`, and ranges or lengths as `typing.Annotated` metadata, e.g.

    lr: Annotated[float, positive()] = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"

The constructor checks every argument against these (`check_arguments`), and config.py checks
every config key against the same hints before anything is built (`check_value`), so Python
and the command line give the same message. No torch here: the command line reads these
without the heavy imports.
"""

from __future__ import annotations

import collections.abc
import difflib
import functools
import inspect
import math
import numbers
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterable, Mapping

from .errors import ArgumentTypeError, ArgumentValueError


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'X'?" for the closest of `options`, or "" when none is close."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Range:
    """A finite number (or each number of a list) between `low` and `high`; `also` are allowed
    besides."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[Any, ...] = ()
    why: str = ""

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"above {self.low}" if self.low_open else f"at least {self.low}"
        else:
            text = f"below {self.high}" if self.high_open else f"at most {self.high}"
        if self.also:
            text += " (or " + " or ".join(map(str, self.also)) + ")"
        return text + (f": {self.why}" if self.why else "")

    def problem(self, value: Any) -> str | None:
        values = value if isinstance(value, (list, tuple)) else [value]
        must = "must have every entry" if values is value else "must be"
        for v in values:
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or v in self.also:
                continue
            v = float(v)
            if not math.isfinite(v):
                return f"{must} a finite number {self.describe()}"
            too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
            too_high = self.high is not None and (v >= self.high if self.high_open else v > self.high)
            if too_low or too_high:
                return f"{must} {self.describe()}"
        return None


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of names (for arguments of other libraries' classes; mnist-pl's own
    declare their choices as a Literal)."""

    options: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.options:
            return None
        return f"must be one of {', '.join(map(str, self.options))}{did_you_mean(value, self.options)}"


@dataclass(frozen=True)
class Length:
    """A list of exactly `size` entries."""

    size: int
    why: str = ""

    def problem(self, value: Any) -> str | None:
        if isinstance(value, (list, tuple)) and len(value) != self.size:
            return f"must have {self.size} entries{f' ({self.why})' if self.why else ''}, not {len(value)}"
        return None


Rule = typing.Union[Range, Choice, Length]


def at_least(low: float, **kwargs: Any) -> Range:
    return Range(low=low, **kwargs)


def positive(**kwargs: Any) -> Range:
    return Range(low=0, low_open=True, **kwargs)


def between(low: float, high: float, **kwargs: Any) -> Range:
    return Range(low=low, high=high, **kwargs)


def one_of(options: Iterable[str]) -> Choice:
    return Choice(tuple(options))


# a random seed: what torch.Generator and numpy accept alike
Seed = Annotated[int, between(0, 2**32 - 1)]


# ---------------------------------------------------------------------------- type hints

UNIONS = (typing.Union, types.UnionType)  # Optional[int] and int | None

_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text",
          type(None): "null", Path: "a path"}


def _unannotated(hint: Any) -> tuple[Any, tuple[Rule, ...]]:
    """(the hint without its Annotated wrapper, the rules that wrapper declares)."""
    if typing.get_origin(hint) is Annotated:
        inner, *metadata = typing.get_args(hint)
        return inner, tuple(m for m in metadata if isinstance(m, (Range, Choice, Length)))
    return hint, ()


def bare(hint: Any) -> Any:
    """`hint` with every Annotated wrapper (at the top and in a union) taken off."""
    hint, _ = _unannotated(hint)
    if typing.get_origin(hint) in UNIONS:
        return typing.Union[tuple(bare(a) for a in typing.get_args(hint))]
    return hint


def _members(hint: Any) -> list[Any]:
    return list(typing.get_args(hint)) if typing.get_origin(hint) in UNIONS else [hint]


def describe_type(hint: Any) -> str:
    """A type hint in words, e.g. "a list of whole numbers"."""
    hint = bare(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _NAMES:
        return _NAMES[hint]
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in UNIONS:
        literals = [v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        others = [describe_type(a) for a in args if typing.get_origin(a) is not typing.Literal]
        if literals:  # Lightning's precision: several Literals of ints and strings
            others.insert(0, "one of " + ", ".join(dict.fromkeys(map(str, literals))))
        if "a number" in others and "a whole number" in others:
            others.remove("a whole number")
        return " or ".join(dict.fromkeys(others))
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        inner = describe_type(args[0]) if args else "values"
        inner = {"a whole number": "whole numbers", "a number": "numbers", "a text": "texts"}.get(inner, inner)
        return f"a list of {inner}"
    if origin is dict or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _choices(hint: Any) -> list[Any]:
    """The values of the Literals in `hint`."""
    return [v for a in _members(bare(hint)) if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]


def coerce(value: Any, hint: Any) -> Any:
    """`value` as the hint's number type where it is meant as one: YAML reads 1e-3 as text, and a
    user writes 10 for 10.0. Anything else is returned as it is (check_value judges it)."""
    hint = bare(hint)
    allowed = set(_members(hint))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and int not in allowed and float in allowed:
        return float(value)
    if isinstance(value, str) and str not in allowed and (int in allowed or float in allowed):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if int in allowed and number.is_integer() else number
    if isinstance(value, (list, tuple)) and typing.get_origin(hint) not in UNIONS:
        args = typing.get_args(hint)
        if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence) and args:
            return [coerce(v, args[0]) for v in value]
    return value


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` (as Python or YAML gives it) fits the type hint; hints it cannot judge pass."""
    hint = bare(hint)
    if hint is Any or hint is typing.Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in UNIONS:
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args and type(value) in {type(a) for a in args}
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # numpy's integers too
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        return not args or all(matches(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_value(value: Any, hint: Any, rules: tuple[Rule, ...] = ()) -> str | None:
    """Why `value` is not allowed by the type hint (with its Annotated rules) and `rules` (e.g.
    "must be above 0"), or None when it is. In a union, the first member whose type the value
    has judges it with its own rules: `Annotated[int, at_least(1)] | Annotated[float, ...]`."""
    outer, outer_rules = _unannotated(hint)
    if hint is None:
        members: list[Any] = [Any]
    else:
        members = _members(outer)
    for member in members:
        inner, member_rules = _unannotated(member)
        if matches(value, inner):
            if value is None:
                return None
            for rule in (*outer_rules, *member_rules, *rules):
                problem = rule.problem(value)
                if problem:
                    return problem
            return None
    choices = _choices(hint)
    close = did_you_mean(value, choices) if isinstance(value, str) and choices else ""
    return f"must be {describe_type(hint)}{close}"


def is_wrong_type(value: Any, hint: Any) -> bool:
    """Whether `value` is not even of a type `hint` allows (a Literal's choices count as their type)."""
    widened = [type(c) for c in _choices(hint)]
    return not (matches(value, hint) or any(isinstance(value, t) and not isinstance(value, bool) for t in widened))


# ---------------------------------------------------------------------------- constructors


# read once per class: resolving string hints (eval) on every construction is slow
@functools.lru_cache(maxsize=None)
def _parameters(cls: type) -> tuple[str, ...]:
    """The named arguments of `cls.__init__` itself (not of its bases)."""
    return tuple(name for name, p in inspect.signature(vars(cls)["__init__"]).parameters.items()
                 if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


@functools.lru_cache(maxsize=None)
def _hints(klass: type) -> types.MappingProxyType[str, Any]:
    """The type hints of `klass`'s own __init__ (Annotated kept)."""
    try:
        return types.MappingProxyType(typing.get_type_hints(vars(klass)["__init__"], include_extras=True))
    except Exception:  # a hint that cannot be resolved here checks nothing
        return types.MappingProxyType({})


def argument_hints(cls: type) -> dict[str, Any]:
    """The declared type hints (Annotated rules included) of the constructor arguments of `cls`
    and its bases, the subclass's first."""
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            for name, hint in _hints(klass).items():
                hints.setdefault(name, hint)
    hints.pop("return", None)
    return hints


def check_arguments(cls: type, values: Mapping[str, Any], shown_as: str | None = None) -> None:
    """Check every argument of `cls.__init__` found in `values` (the constructor's `locals()`)
    against its declaration: an ArgumentTypeError or ArgumentValueError (both UserErrors) for
    the first that is not allowed, naming the class (`shown_as`, e.g. the subclass being
    built) and the argument."""
    hints = _hints(cls)
    for name in _parameters(cls):
        if name not in values or name not in hints:
            continue
        value = values[name]
        problem = check_value(value, hints[name])
        if problem:
            error = ArgumentTypeError if is_wrong_type(value, hints[name]) else ArgumentValueError
            raise error(shown_as or cls.__name__, {name: value},
                        f"{name} {problem}{'' if problem.endswith('?') else '.'}")


def arguments_of(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of `cls.__init__` among `values`: a subclass's `locals()` passed on to its
    base, `super().__init__(**arguments_of(Base, locals()))`."""
    return {name: values[name] for name in _parameters(cls) if name in values}
