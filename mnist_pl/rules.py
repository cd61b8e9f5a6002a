"""What a constructor argument may be: its type hint, and the ranges and choices declared beside it.

Each class whose arguments a config feeds declares `CONFIG_RULES = {"dropout": between(0, 1,
high_open=True), ...}` next to its constructor; `check_value` tests a value against the
argument's type hint and those rules, so config.py checks every key before anything is built.
No torch here: the command line reads these without the heavy imports.
"""

from __future__ import annotations

import collections.abc
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'X'?" for the closest of `options`, or "" when none is close."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Range:
    """A number (or each number of a list) between `low` and `high`; `also` are allowed besides."""

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
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v in self.also:
                continue
            too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
            too_high = self.high is not None and (v >= self.high if self.high_open else v > self.high)
            if too_low or too_high:
                return f"must be {'every entry ' if values is value else ''}{self.describe()}"
        return None


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of names."""

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


def declared_rules(cls: type) -> dict[str, tuple[Rule, ...]]:
    """CONFIG_RULES of `cls` and its bases, a subclass's rules replacing its base's for a key."""
    rules: dict[str, tuple[Rule, ...]] = {}
    for klass in reversed(cls.__mro__):
        for key, rule in vars(klass).get("CONFIG_RULES", {}).items():
            rules[key] = rule if isinstance(rule, tuple) else (rule,)
    return rules


def constructor_hints(cls: type) -> dict[str, Any]:
    """The type hints of the constructor arguments of `cls` and its bases (subclass first)."""
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            try:
                found = typing.get_type_hints(klass.__init__)
            except Exception:  # a hint that cannot be resolved here checks nothing
                continue
            for name, hint in found.items():
                hints.setdefault(name, hint)
    hints.pop("return", None)
    return hints


def check_arguments(cls: type, **values: Any) -> None:
    """Raise a UserError for the first of `values` (constructor arguments of `cls`) that its type
    hint or declared rules do not allow: the check for users who build the class in Python."""
    from .errors import UserError

    hints, rules = constructor_hints(cls), declared_rules(cls)
    for name, value in values.items():
        problem = check_value(coerce(value, hints.get(name)), hints.get(name), rules.get(name, ()))
        if problem:
            raise UserError(f"{cls.__name__}({name}={value!r}): {name} {problem}.")


# ---------------------------------------------------------------------------- type hints

UNIONS = (typing.Union, types.UnionType)  # Optional[int] and int | None

_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text",
          type(None): "null"}


def describe_type(hint: Any) -> str:
    """A type hint in words, e.g. "a list of whole numbers"."""
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


def coerce(value: Any, hint: Any) -> Any:
    """`value` as the hint's number type where it is meant as one: YAML reads 1e-3 as text, and a
    user writes 10 for 10.0. Anything else is returned as it is (check_type judges it)."""
    allowed = _flat_types(hint)
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


def _flat_types(hint: Any) -> set[Any]:
    if typing.get_origin(hint) in UNIONS:
        return set().union(*(_flat_types(a) for a in typing.get_args(hint)))
    return {hint}


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` (as YAML gives it) fits the type hint; hints it cannot judge pass."""
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
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
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
    """Why `value` is not allowed (e.g. "must be above 0"), or None when it is."""
    if hint is not None and not matches(value, hint):
        return f"must be {describe_type(hint)}"
    if value is None:
        return None
    for rule in rules:
        problem = rule.problem(value)
        if problem:
            return problem
    return None
