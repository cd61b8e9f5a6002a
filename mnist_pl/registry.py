"""The models mnist-pl trains, by name, and where each LightningModule lives.

Names and import paths only, so that the command line can offer `--model` choices without
importing torch or Lightning. A new model is one line here (and its YAML in configs/).
"""

from __future__ import annotations

import importlib
from typing import Any

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
