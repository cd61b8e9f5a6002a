"""Run configuration: YAML files whose sections mirror the constructors they feed.

A config has `seed`, `logdir`, `checkpoint_every_n_steps`, `compile` and `profile` at the top,
then `data` (MNISTDataModule's arguments), `model` (the chosen LightningModule's arguments),
`trainer` (lightning.Trainer's arguments) and `quality` (the SampleQuality callback's). The valid
keys are read off those signatures, so the check can never drift from the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import lightning as L
import yaml

from .callbacks import SampleQuality
from .data import MNISTDataModule
from .errors import UserError
from .registry import (CONFIG_DIR, SHIPPED_MODELS, constructor_defaults, default_config_path, model_class,
                       model_names)
from .rules import Seed, argument_hints, at_least, check_value, coerce, did_you_mean, is_wrong_type, one_of

# keys outside the sections: what train() itself does (see training.py)
TOP_LEVEL = {"seed": 42, "logdir": "runs", "compile": False, "profile": False,
             "checkpoint_every_n_steps": 0}
TOP_LEVEL_TYPES = {"seed": Seed, "logdir": str, "compile": bool | str, "profile": bool,
                   "checkpoint_every_n_steps": Annotated[int, at_least(0)]}
# the Trainer's ranges (its type hints come from its signature); mnist-pl's own classes declare
# theirs in their constructors' type hints (see rules.py)
TRAINER_RULES = {
    "max_epochs": (at_least(1, why="a run needs a length for its schedule and its results"),),
    "min_epochs": (at_least(0),), "max_steps": (at_least(1, also=(-1,)),), "min_steps": (at_least(0),),
    "limit_train_batches": (at_least(0),), "limit_val_batches": (at_least(0),),
    "limit_test_batches": (at_least(0),), "limit_predict_batches": (at_least(0),),
    "overfit_batches": (at_least(0),), "check_val_every_n_epoch": (at_least(1),),
    "num_sanity_val_steps": (at_least(-1),), "log_every_n_steps": (at_least(0),),
    "accumulate_grad_batches": (at_least(1),), "gradient_clip_val": (at_least(0),),
    "gradient_clip_algorithm": (one_of(("norm", "value")),), "num_nodes": (at_least(1),),
    "reload_dataloaders_every_n_epochs": (at_least(0),),
    "accelerator": (one_of(("auto", "cpu", "gpu", "cuda", "mps", "tpu")),),
}
# keys that moved, still accepted from older configs and run directories: old -> new
RENAMED_KEYS = {"model.evaluator_checkpoint": "quality.evaluator_checkpoint",
                "model.quality_samples": "quality.num_samples"}
# Trainer arguments that mnist-pl sets itself (see training.py), so a config may not.
TRAINER_MANAGED = {"self", "logger", "callbacks", "default_root_dir", "enable_checkpointing",
                   "plugins", "profiler"}


def section_defaults(model: str) -> dict[str, dict[str, Any]]:
    """Every valid key of each section, with the value the code uses when the config is silent."""
    trainer = {k: v for k, v in constructor_defaults(L.Trainer).items() if k not in TRAINER_MANAGED}
    return {"data": constructor_defaults(MNISTDataModule),
            "model": constructor_defaults(model_class(model)),
            "trainer": trainer,
            "quality": constructor_defaults(SampleQuality)}


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


def shipped_config_names(model: str) -> list[str]:
    """The shipped configs for `model` by name: "cnn" (the default) and its variants ("cnn-fashion")."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem.split("-")[0] == model)


def resolve_config_path(path: str | Path) -> Path:
    """`path`, or, if that is a bare name with no such file here, the shipped config of that name:
    `--config cnn-fashion` (or cnn-fashion.yaml) works in a clone and after pip install alike."""
    path = Path(path)
    if path.is_file() or path.parent != Path("."):
        return path
    shipped = CONFIG_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    return shipped if shipped.is_file() else path


def _how_to_get_a_config(model: str, missing: Path) -> str:
    """The fix for the missing config file `missing`: the shipped ones, if this install has them."""
    if model not in SHIPPED_MODELS:
        return (f"give --config the YAML file of your model {model} (its sections as in the shipped "
                f"{CONFIG_DIR / 'cnn.yaml'}), or leave out --config to use the code's defaults.")
    shipped = CONFIG_DIR / f"{model}.yaml"
    if shipped.is_file():
        names = shipped_config_names(model)
        if missing.parent == Path(".") and (close := did_you_mean(missing.stem, names)):
            # a shipped config's name, mistyped
            return f"{close.removeprefix('; ')} (the shipped configs for --model {model}: {', '.join(names)})"
        return (f"leave out --config to use the shipped {shipped}, pass a shipped config's name "
                f"(--config {' or '.join(names)}), or copy one and pass --config YOUR_COPY.yaml.")
    return (f"this installation of mnist-pl lacks its shipped configs ({shipped} is missing); "
            "reinstall mnist-pl (pip install . in its source folder), or pass --config with a YAML file.")


def as_typed(value: Any) -> str:
    """`value` as a user types it (true, null, [1, 2], 0.1)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _where(key: str, value: Any, source: str) -> str:
    """How the user wrote `key`: "--lr -1.0", "--set model.lr=-1.0" or "model.lr in FILE"."""
    text = as_typed(value)
    if source == "--set":
        return f"--set {key}={text}"
    if source.startswith("--"):
        return f"{source} {text}"
    return f"{key}: {text} in {source}"


def _unknown_key(key: str, source: str, model: str, valid: dict[str, Any]) -> UserError:
    """The error for a key no section has, with the key the user most likely meant."""
    section, _, name = key.rpartition(".")
    sections = {k.partition(".")[0] for k in valid if "." in k}
    where = f"unknown config key {key!r} (from {source}) for model {model!r}"
    if not section:
        homes = [k for k in valid if k.endswith(f".{name}")]
        if homes:
            return UserError(f"{where}; did you mean {homes[0]!r}? Keys inside a section need its name.")
        top = sorted(k for k in valid if "." not in k)
        return UserError(f"{where}{did_you_mean(name, top + sorted(sections))}. Top-level keys: "
                         f"{', '.join(top)}; sections: {', '.join(sorted(sections))}.")
    if section not in sections:
        return UserError(f"{where}: there is no section {section!r}{did_you_mean(section, sections)} "
                         f"(sections: {', '.join(sorted(sections))}).")
    if section == "model":
        owners = [other for other in model_names() if other != model
                  and name in constructor_defaults(model_class(other))]
        if owners:
            return UserError(f"{where}: model.{name} belongs to the {' and '.join(owners)} model "
                             f"(--model {owners[0]}), not to {model}. {model}'s model keys: "
                             f"{', '.join(sorted(k.partition('.')[2] for k in valid if k.startswith('model.')))}.")
    if section == "trainer" and name in TRAINER_MANAGED:
        return UserError(f"{where}: mnist-pl sets trainer.{name} itself (train.py fixes the logger, "
                         "callbacks, checkpoints and profiler); leave it out.")
    keys = sorted(k.partition(".")[2] for k in valid if k.startswith(f"{section}."))
    close = did_you_mean(name, keys).replace("did you mean '", f"did you mean '{section}.")
    return UserError(f"{where}{close or '.'} Valid {section} keys: {', '.join(keys)}.")


def key_rules(model: str) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    """(type hint, rules beyond it) of every config key of `model`, read off the classes that take them."""
    classes: dict[str, type] = {"data": MNISTDataModule, "model": model_class(model), "trainer": L.Trainer,
                                "quality": SampleQuality}
    found: dict[str, tuple[Any, tuple[Any, ...]]] = {k: (hint, ()) for k, hint in TOP_LEVEL_TYPES.items()}
    for section, cls in classes.items():
        hints = argument_hints(cls)
        rules = TRAINER_RULES if cls is L.Trainer else {}
        for name in section_defaults(model)[section]:
            found[f"{section}.{name}"] = (hints.get(name), rules.get(name, ()))
    return found


def check_config_value(key: str, value: Any, source: str, hint: Any, rules: tuple[Any, ...],
                       example: Any = None) -> Any:
    """`value` made the hint's number type, or a UserError naming the key, where it came from and
    what it may be (with `example`, the default, when the type is wrong)."""
    value = coerce(value, hint)
    problem = check_value(value, hint, rules)
    if problem:
        if example is not None and is_wrong_type(value, hint) and not problem.endswith("?"):
            problem += f", such as {as_typed(list(example) if isinstance(example, tuple) else example)}"
        raise UserError(f"{_where(key, value, source)}: {key} {problem}{'' if problem.endswith('?') else '.'}")
    return value


def load_config(model: str, path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                origins: dict[str, str] | None = None, sources: dict[str, str] | None = None) -> dict[str, Any]:
    """The full, validated config for `model` (a registered name or "module:Class"): code
    defaults, then the YAML file (default configs/<model>.yaml for a shipped model, the file
    given to register_model, or none; a bare name such as "cnn-fashion" is a shipped config),
    then `overrides` ({"model.lr": 0.01, "seed": 1, ...}).

    Every value is checked against its constructor argument's type hint and declared rules
    before anything is built. `origins` says where an override came from (a flag such as
    "--lr"; default "--set"), for the error messages; `sources`, if given, is filled with where
    each key set by the file or the overrides came from.
    """
    defaults = section_defaults(model)  # a UserError for a model that is none
    path = resolve_config_path(path) if path is not None else default_config_path(model)
    try:
        text = path.read_text() if path is not None else ""  # no file: the code's defaults
        loaded = yaml.safe_load(text) or {}
    except FileNotFoundError:
        assert path is not None
        raise UserError(f"config file {path} does not exist; {_how_to_get_a_config(model, path)}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"config file {path}{at}: not valid YAML ({err.problem or err.context}). "
                        "Check the indentation and the brackets there.") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} cannot be read as YAML: {err}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}.")

    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in defaults:
            if not isinstance(value, dict):
                raise UserError(f"{path}: section {key!r} must be a mapping of keys to values.")
            flat.update({RENAMED_KEYS.get(f"{key}.{k}", f"{key}.{k}"): v for k, v in value.items()})
        else:
            flat[key] = value
    where = {key: str(path) for key in flat}
    for key, value in (overrides or {}).items():
        origin = (origins or {}).get(key, "--set")
        key = RENAMED_KEYS.get(key, key)
        flat[key], where[key] = value, origin

    valid = {**TOP_LEVEL, **{f"{s}.{k}": v for s, keys in defaults.items() for k, v in keys.items()}}
    rules = key_rules(model)
    config: dict[str, Any] = {**TOP_LEVEL, **{section: {} for section in defaults}}
    for key, value in flat.items():
        if key not in valid:
            raise _unknown_key(key, where[key], model, valid)
        hint, key_rule = rules.get(key, (None, ()))  # a section key_rules does not know: unchecked
        value = check_config_value(key, value, where[key], hint, key_rule, valid[key])
        if sources is not None:
            sources[key] = where[key]
        section, _, name = key.rpartition(".")
        if section:
            config[section][name] = value
        else:
            config[name] = value
    return config
