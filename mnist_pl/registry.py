"""The one registry of the models mnist-pl trains: the shipped ones by name, the names that
`register_model` adds, and any LightningModule of your own given as `module:Class`.

Everything that turns a model's name into its class reads it here: `--model`, `load_config`,
`train`, and the checkpoint loaders. Names and import paths only, so that the command line can
offer `--model` without importing torch or Lightning; a class is imported when it is asked for.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import UserError, first_line
from .rules import did_you_mean

# the shipped configs, inside the package so that an installed wheel has them too (`configs/` at
# the top of the repository is a symlink to this folder)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# the shipped search spaces of `mnist-pl sweep` (see space.py), beside the configs for the same reason
SPACE_DIR = Path(__file__).resolve().parent / "spaces"

# the shipped models: each has configs/<name>.yaml
SHIPPED_MODELS: dict[str, str] = {
    "dense": "mnist_pl.classifier:DenseClassifier",
    "cnn": "mnist_pl.classifier:CNNClassifier",
    "gan": "mnist_pl.gan:GAN",
}
# every model known by name: the shipped ones and those of register_model
MODEL_CLASSES: dict[str, str] = dict(SHIPPED_MODELS)
_REGISTERED_CONFIGS: dict[str, Path] = {}
_REGISTERED_CLASSES: dict[str, type] = {}  # registered as class objects (they may live in a script)

CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
CLASS_PATH_HINT = "module:Class of your own, such as my_models:FocalCNN"


def model_names() -> list[str]:
    """The names `--model` accepts, in the order the help lists them."""
    return list(MODEL_CLASSES)


def is_class_path(model: str) -> bool:
    """Whether `model` names a class by its import path ("my_models:FocalCNN"), not by a name."""
    return ":" in model


def class_path(cls: type) -> str:
    """"module:Class" of `cls`, the form `--model` and checkpoints name a class of your own by."""
    return f"{cls.__module__}:{cls.__qualname__}"


def unknown_model(model: str, what: str = "model") -> str:
    """Why `model` is no model, and what to give instead, `what` naming it ("model", "--model")."""
    if is_class_path(model):
        return (f"{what} {model!r} is not of the form module:Class (for example my_models:FocalCNN, with "
                "my_models.py in the working folder or on the Python path)")
    return (f"unknown {what} {model!r}{did_you_mean(model, MODEL_CLASSES)} (choose {', '.join(MODEL_CLASSES)}, "
            f"or {CLASS_PATH_HINT})")


def check_model_name(model: str, what: str = "model") -> str:
    """`model` if it is a registered name or looks like module:Class (nothing is imported), else a
    UserError: what `--model` checks while the command line is parsed."""
    if model in MODEL_CLASSES or CLASS_PATH.match(model):
        return model
    raise UserError(unknown_model(model, what))


def register_model(name: str, cls: type | str, config: str | Path | None = None) -> None:
    """Make `name` a model that `load_config`, `train` and `--model` (in this process) know.

    `cls` is a LightningModule class deriving from `mnist_pl.MNISTModule`, or its
    "module:Class" path; `config` its default YAML file (without one, the code's defaults).
    Checkpoints name the class by its "module:Class" path, so that they load in any process
    that can import that module, whether it registered the name or not.
    """
    if not name or is_class_path(name):
        raise UserError(f"register_model: {name!r} cannot be a model's name; give a plain name such as 'focal'.")
    path = cls if isinstance(cls, str) else class_path(cls)
    if name in SHIPPED_MODELS and path != SHIPPED_MODELS[name]:
        raise UserError(f"register_model: {name!r} is a shipped model's name; give yours another name.")
    # a bad class fails here, not at its first use
    if isinstance(cls, str):
        model_class(path)
    else:
        _REGISTERED_CLASSES[name] = _checked(cls, path)
    MODEL_CLASSES[name] = path
    if config is not None:
        _REGISTERED_CONFIGS[name] = Path(config)


def model_class(model: str) -> Any:
    """The LightningModule class of `model`: a registered name or "module:Class" (imported from
    the Python path, or else from the working folder). A UserError says what is wrong."""
    if model in _REGISTERED_CLASSES:
        return _REGISTERED_CLASSES[model]
    path = MODEL_CLASSES.get(model) or (model if is_class_path(model) else None)
    if path is None or not CLASS_PATH.match(path):
        raise UserError(unknown_model(model) + ".")
    module_name, _, qualname = path.partition(":")
    module = _import(module_name, path)
    found: Any = module
    for part in qualname.split("."):
        if not hasattr(found, part):
            classes = [name for name, value in vars(module).items() if inspect.isclass(value)]
            raise UserError(f"model {path}: module {module_name} ({getattr(module, '__file__', '?')}) has no "
                            f"{qualname!r}{did_you_mean(qualname, classes)}.")
        found = getattr(found, part)
    return _checked(found, path)


def _import(module_name: str, path: str) -> Any:
    """The module `module_name`, imported from the Python path or else the working folder."""
    def is_missing(err: ModuleNotFoundError) -> bool:  # the module itself, not one it imports
        return err.name is not None and (module_name == err.name or module_name.startswith(f"{err.name}."))

    try:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not is_missing(err) or "" in sys.path or os.getcwd() in sys.path:
                raise
            sys.path.append(os.getcwd())  # the working folder, as `python -m` there would have it
            importlib.invalidate_caches()
            return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if is_missing(err):
            where = ("a class defined in a script run as the main program cannot be imported by name: "
                     "define it in a module (a .py file) beside your script" if module_name == "__main__"
                     else f"run from the folder that holds {module_name.split('.')[0]}.py or its package, "
                          "or add that folder to PYTHONPATH")
            raise UserError(f"model {path}: no module named {err.name!r} can be imported; {where}.") from None
        raise UserError(f"model {path}: importing {module_name} failed, because {err}; "
                        "install what it needs.") from None
    except Exception as err:  # noqa: BLE001 (the user's module may fail in any way when imported)
        text = first_line(err, "no message")
        raise UserError(f"model {path}: importing {module_name} failed ({type(err).__name__}: {text}); "
                        f"fix the module (python -c 'import {module_name}' shows the traceback).") from None


def _checked(cls: Any, path: str) -> Any:
    """`cls`, if it is a LightningModule class, or a UserError."""
    import lightning as L  # a class of the user's has imported it already

    if not (inspect.isclass(cls) and issubclass(cls, L.LightningModule)):
        what = f"a {type(cls).__name__}" if not inspect.isclass(cls) else f"the class {cls.__name__}, not derived from it"
        raise UserError(f"model {path} must be a LightningModule class (derived from mnist_pl.MNISTModule "
                        f"or one of its subclasses such as ImageClassifier), but it is {what}.")
    return cls


def name_of(cls: type) -> str:
    """What a checkpoint calls the model class `cls`: its shipped name ("cnn"), or for any other
    class, registered or not, its "module:Class" path (a name registered in one process may be
    unknown in the next)."""
    path = class_path(cls)
    return next((name for name, shipped in SHIPPED_MODELS.items() if shipped == path), path)


def default_config_path(model: str) -> Path | None:
    """The YAML file `model` is configured by when no --config is given: configs/<name>.yaml for
    a shipped model, the file given to register_model, else None (the code's defaults)."""
    if model in SHIPPED_MODELS:
        return CONFIG_DIR / f"{model}.yaml"
    return _REGISTERED_CONFIGS.get(model)


class _ModelClasses(Mapping[str, Any]):
    """The registered models' classes by name, read from the registry when asked (a live view)."""

    def __getitem__(self, name: str) -> Any:
        if name not in MODEL_CLASSES:
            raise KeyError(name)
        return model_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(MODEL_CLASSES))

    def __len__(self) -> int:
        return len(MODEL_CLASSES)

    def __repr__(self) -> str:
        return f"MODELS({', '.join(f'{name}={path}' for name, path in MODEL_CLASSES.items())})"


# the models known by name and their classes (imported on first use): MODELS["cnn"] is CNNClassifier
MODELS: Mapping[str, Any] = _ModelClasses()


@lru_cache(maxsize=None)
def _shipped_config(name: str) -> dict[str, Any]:
    import yaml  # light; only --help and the config loader read these

    path = CONFIG_DIR / f"{name}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def shipped_values(key: str) -> dict[str, Any]:
    """The value of config key `key` ("trainer.max_epochs", "seed") in each model's shipped
    config that sets it, by model name: the defaults --help shows."""
    values = {}
    for name in SHIPPED_MODELS:
        node: Any = _shipped_config(name)
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[name] = node
    return values


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Named constructor arguments of `cls` and its bases (for **kwargs chains), with defaults
    (None where there is none); the Lightning base classes of mnist-pl's own are left out."""
    params: dict[str, Any] = {}
    for klass in cls.__mro__:
        lightning_base = klass is not cls and klass.__module__.startswith("lightning.")
        if klass is object or lightning_base or "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(vars(klass)["__init__"]).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, None if p.default is p.empty else p.default)
    return params
