"""Run configuration: YAML files whose sections mirror the constructors they feed.

A config has four parts: `seed`, `logdir`, `checkpoint_every_n_steps`, `compile` and `profile`
at the top, then `data` (MNISTDataModule's
arguments), `model` (the chosen LightningModule's arguments) and `trainer` (lightning.Trainer's
arguments). The valid keys are read off those signatures, so the check can never drift from
the code.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from .data import MNISTDataModule
from .errors import UserError
from .registry import MODEL_CLASSES, model_class

# the model classes by name (registry.py says where each lives)
MODELS: dict[str, type[L.LightningModule]] = {name: model_class(name) for name in MODEL_CLASSES}
# inside the package, so that an installed wheel has them too (`configs/` at the top of the
# repository is a symlink to this folder)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# keys outside the sections: what train() itself does (see training.py)
TOP_LEVEL = {"seed": 42, "logdir": "runs", "compile": False, "profile": False,
             "checkpoint_every_n_steps": 0}
# Trainer arguments that mnist-pl sets itself (see training.py), so a config may not.
TRAINER_MANAGED = {"self", "logger", "callbacks", "default_root_dir", "enable_checkpointing",
                   "enable_progress_bar", "plugins", "profiler"}


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Named constructor arguments of `cls` and its bases (for **kwargs chains), with defaults."""
    params: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass in (L.LightningModule, L.LightningDataModule, object) or "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, None if p.default is p.empty else p.default)
    return params


def section_defaults(model: str) -> dict[str, dict[str, Any]]:
    """Every valid key of each section, with the value the code uses when the config is silent."""
    trainer = {k: v for k, v in constructor_defaults(L.Trainer).items() if k not in TRAINER_MANAGED}
    return {"data": constructor_defaults(MNISTDataModule),
            "model": constructor_defaults(MODELS[model]),
            "trainer": trainer}


def default_config_path(model: str) -> Path:
    return CONFIG_DIR / f"{model}.yaml"


def _coerce(key: str, value: Any, default: Any) -> Any:
    """YAML reads 1e-3 as a string and a user may write 10 for 10.0: match the default's type."""
    if isinstance(default, bool) or default is None or isinstance(value, type(default)):
        return value
    if isinstance(default, (int, float)) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{key} must be a number, got {value!r}.") from None
        return int(number) if isinstance(default, int) and number.is_integer() else number
    return value


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set section.key=value` strings as {"section.key": value}; values are parsed as YAML."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, for example --set model.lr=0.01.")
        try:
            overrides[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            overrides[key.strip()] = text
    return overrides


def _how_to_get_a_config(model: str) -> str:
    """The fix for a missing config file: the shipped one, if this install has it."""
    shipped = default_config_path(model)
    if shipped.is_file():
        return (f"leave out --config to use the shipped {shipped}, or copy it and pass "
                f"--config YOUR_COPY.yaml.")
    return (f"this installation of mnist-pl lacks its shipped configs ({CONFIG_DIR} is missing); "
            "reinstall mnist-pl (pip install . in its source folder), or pass --config with a YAML file.")


def load_config(model: str, path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full, validated config for `model`: code defaults, then the YAML file (default
    configs/<model>.yaml), then `overrides` ({"model.lr": 0.01, "seed": 1, ...})."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}.")
    defaults = section_defaults(model)
    path = Path(path) if path is not None else default_config_path(model)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; {_how_to_get_a_config(model)}") from None
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"config file {path} cannot be read as YAML: {err}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}.")

    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in defaults:
            if not isinstance(value, dict):
                raise UserError(f"{path}: section {key!r} must be a mapping of keys to values.")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    sources = {key: str(path) for key in flat}
    for key, value in (overrides or {}).items():
        flat[key], sources[key] = value, "--set"

    valid = {**TOP_LEVEL, **{f"{s}.{k}": v for s, keys in defaults.items() for k, v in keys.items()}}
    config: dict[str, Any] = {**TOP_LEVEL, **{section: {} for section in defaults}}
    for key, value in flat.items():
        if key not in valid:
            raise UserError(f"unknown config key {key!r} (from {sources[key]}) for model {model!r}. "
                            f"Valid keys: {', '.join(sorted(valid))}.")
        value = _coerce(key, value, valid[key])
        section, _, name = key.rpartition(".")
        if section:
            config[section][name] = value
        else:
            config[name] = value
    return config
