"""The models mnist-pl trains, by name, where each LightningModule lives, and what it takes.

Names and import paths only, so that the command line can offer `--model` choices without
importing torch or Lightning. A new model is one line here (and its YAML in configs/).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
import inspect
from pathlib import Path
from typing import Any

# the shipped configs, inside the package so that an installed wheel has them too (`configs/` at
# the top of the repository is a symlink to this folder)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# the shipped search spaces of `mnist-pl sweep` (see space.py), beside the configs for the same reason
SPACE_DIR = Path(__file__).resolve().parent / "spaces"

MODEL_CLASSES: dict[str, str] = {
    "dense": "mnist_pl.classifier:DenseClassifier",
    "cnn": "mnist_pl.classifier:CNNClassifier",
    "gan": "mnist_pl.gan:GAN",
}


def model_names() -> list[str]:
    """The names `--model` accepts, in the order the help lists them."""
    return list(MODEL_CLASSES)


def model_class(name: str) -> Any:
    """The LightningModule class registered as `name` (imports its module)."""
    module, _, attribute = MODEL_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


@lru_cache(maxsize=None)
def _shipped_config(name: str) -> dict[str, Any]:
    import yaml  # light; only --help and the config loader read these

    path = CONFIG_DIR / f"{name}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def shipped_values(key: str) -> dict[str, Any]:
    """The value of config key `key` ("trainer.max_epochs", "seed") in each model's shipped
    config that sets it, by model name: the defaults --help shows."""
    values = {}
    for name in MODEL_CLASSES:
        node: Any = _shipped_config(name)
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[name] = node
    return values
def name_of(cls: type) -> str | None:
    """The registered name of the model class `cls` (None for a class not registered here)."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, registered in MODEL_CLASSES.items() if registered == path), None)


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Named constructor arguments of `cls` and its bases (for **kwargs chains), with defaults
    (None where there is none); the Lightning base classes of mnist-pl's own are left out."""
    params: dict[str, Any] = {}
    for klass in cls.__mro__:
        lightning_base = klass is not cls and klass.__module__.startswith("lightning.")
        if klass is object or lightning_base or "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params.setdefault(name, None if p.default is p.empty else p.default)
    return params
