"""A sweep's search space: config keys, each a range of numbers or a list of choices.

A space is a YAML file whose keys are config keys, as `--set` writes them:

    model.lr: {low: 0.0005, high: 0.01, log: true}   # a range; log: sampled on a log scale
    model.hidden_size: {low: 64, high: 256, step: 64}   # whole numbers, for a whole-number key
    model.optimizer: [adam, adamw, sgd]               # choices

Shipped spaces (mnist_pl/spaces/NAME.yaml) are chosen by name, as shipped configs are. Every
key, every end of a range and every choice is checked by the config's own rules (config.py)
before anything runs, so a space cannot ask for what a config could not hold. No torch here
until a space is checked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .registry import SPACE_DIR
from .rules import did_you_mean


@dataclass(frozen=True)
class Dimension:
    """One searched config key: a range from `low` to `high` (whole numbers if `integer`; on a
    log scale if `log`; in steps of `step` if given), or one of `choices`."""

    key: str
    low: float = 0.0  # (a dimension of choices has no range)
    high: float = 0.0
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """This key's value for an Optuna trial (the trial's own, if it has one already)."""
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether `value` (a config's own value) is one this dimension can take."""
        if self.choices:
            return any(value == choice and type(value) is type(choice) for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high or (self.integer and value != int(value)):
            return False
        return self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))

    def describe(self) -> str:
        """The dimension as the table's header note writes it: "[0.0005, 0.01] log", "adam|sgd"."""
        if self.choices:
            return "|".join(_as_typed(c) for c in self.choices)
        text = f"[{_as_typed(self.low)}, {_as_typed(self.high)}]"
        return text + (" log" if self.log else "") + (f" step {_as_typed(self.step)}" if self.step else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dimension:
        return cls(**{**data, "choices": tuple(data.get("choices", ()))})


@dataclass(frozen=True)
class Space:
    """A search space: its name (a shipped space's, or the file's stem), file, and dimensions."""

    name: str
    path: Path
    dimensions: tuple[Dimension, ...]

    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def values_of(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """The config's own value of each key, if every one lies in the space (else None):
        the sweep's first trial, so that it is never worse than the config it starts from."""
        values = {d.key: config_value(config, d.key) for d in self.dimensions}
        return values if all(d.contains(values[d.key]) for d in self.dimensions) else None


def _as_typed(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else f"{value:g}" \
        if isinstance(value, float) else str(value)


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value of "section.name" (or a top-level key) in a loaded config."""
    section, _, name = key.rpartition(".")
    return config[section].get(name) if section else config.get(name)


def set_config_value(config: dict[str, Any], key: str, value: Any) -> None:
    section, _, name = key.rpartition(".")
    if section:
        config[section][name] = value
    else:
        config[name] = value


def shipped_space_names() -> list[str]:
    return sorted(path.stem for path in SPACE_DIR.glob("*.yaml"))


def resolve_space_path(space: str | Path) -> Path:
    """A space file, or a shipped space by name ("cnn"), or a UserError saying what exists."""
    path = Path(space)
    if path.is_file():
        return path
    shipped = SPACE_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = shipped_space_names()
    close = did_you_mean(path.name.removesuffix(".yaml"), names) if path.parent == Path(".") else ""
    raise UserError(f"--space {space}: no such search space{close} (shipped spaces: {', '.join(names)}; "
                    "or a YAML file of config keys, each a {low, high} range or a list of choices: "
                    "see docs/sweeps.md).")


def read_space(space: str | Path) -> tuple[Path, dict[str, Any]]:
    """The file of `space` and its mapping of keys to ranges or choices, unchecked."""
    path = resolve_space_path(space)
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"search space {path}{at}: not valid YAML ({err.problem or err.context}).") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"search space {path} cannot be read as YAML: {err}".splitlines()[0]) from None
    if not isinstance(loaded, dict) or not loaded:
        raise UserError(f"search space {path} must map config keys to ranges or choices, e.g. "
                        "'model.lr: {low: 0.0005, high: 0.01, log: true}'; it holds "
                        f"{'nothing' if not loaded else type(loaded).__name__}.")
    return path, loaded


def _parse(key: str, spec: Any, where: str) -> Dimension:
    """The Dimension `spec` describes, with its shape checked (not yet what the key accepts)."""
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        spec = spec["choices"]
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{key} in {where}: no choices; list at least one value, e.g. {key}: [a, b].")
        for choice in spec:
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                raise UserError(f"{key} in {where}: the choice {choice!r} is not a single value; a search "
                                "space chooses among numbers, texts, true/false or null.")
        if len(set(map(repr, spec))) != len(spec):
            raise UserError(f"{key} in {where}: the choices {spec} repeat a value; list each once.")
        return Dimension(key, choices=tuple(spec))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec):
        raise UserError(f"{key} in {where}: give a range {{low: A, high: B}} (optionally log: true or step: S) "
                        f"or a list of choices [A, B, ...], not {spec!r}.")
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown:
        word = sorted(unknown)[0]
        raise UserError(f"{key} in {where}: unknown range setting {word!r}"
                        f"{did_you_mean(word, ['low', 'high', 'log', 'step'])} (a range has low, high, log, step).")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"{key} in {where}: {name} must be a number, not {value!r}.")
    if not isinstance(log, bool):
        raise UserError(f"{key} in {where}: log must be true or false, not {log!r}.")
    if not low < high:
        raise UserError(f"{key} in {where}: the range [{low}, {high}] is empty; low must be below high.")
    if log and low <= 0:
        raise UserError(f"{key} in {where}: a log range must start above 0, not at {low}.")
    if log and step is not None:
        raise UserError(f"{key} in {where}: a range is either on a log scale or in steps, not both.")
    if step is not None and not 0 < step <= high - low:
        raise UserError(f"{key} in {where}: step {step} must be above 0 and at most high - low.")
    return Dimension(key, float(low), float(high), log, float(step) if step is not None else None)


def load_space(model: str, space: str | Path, config: str | Path | None = None,
               overrides: dict[str, Any] | None = None, origins: dict[str, str] | None = None) -> Space:
    """The search space `space` (a file, or a shipped space's name) for `model`, checked.

    Each key must be a config key of `model`, and each end of a range and each choice a value
    the key accepts, by the same rules and messages as a config (see load_config: `config`,
    `overrides` and `origins` are the sweep's own, so a check sees the config the trials
    start from). A range is of whole numbers when its key takes whole numbers only.
    """
    from .config import load_config  # imports Lightning: only when a space is checked

    path, loaded = read_space(space)
    overrides, origins = dict(overrides or {}), dict(origins or {})

    def check(key: str, value: Any) -> None:
        load_config(model, config, {**overrides, key: value}, {**origins, key: f"the search space {path}"})

    dimensions = []
    for key, spec in loaded.items():
        dimension = _parse(str(key), spec, f"the search space {path}")
        if dimension.choices:
            for choice in dimension.choices:
                check(dimension.key, choice)
        else:
            low, high = dimension.low, dimension.high
            whole = low.is_integer() and high.is_integer() and (dimension.step is None or dimension.step.is_integer())
            check(dimension.key, int(low) if whole else low)
            check(dimension.key, int(high) if whole else high)
            if whole:
                try:  # a key of whole numbers refuses a value between two of them
                    check(dimension.key, low + 0.5)
                except UserError:
                    dimension = Dimension(dimension.key, low, high, dimension.log, dimension.step, integer=True)
        dimensions.append(dimension)
    name = path.stem
    return Space(name, path.resolve(), tuple(dimensions))
