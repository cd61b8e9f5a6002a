"""mnist-pl: MNIST with PyTorch Lightning.

    from mnist_pl import MNISTDataModule, CNNClassifier
    trainer = lightning.Trainer(max_epochs=2)
    trainer.fit(CNNClassifier(), datamodule=MNISTDataModule(data_dir="data"))

The names below are imported on first use (module `__getattr__`), so that `import mnist_pl`
and the command line's `--help` do not wait for torch and Lightning to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# each public name and the module that defines it; the TYPE_CHECKING imports below say the same
# for type checkers and editors (tests/test_cli_shell.py keeps the two equal)
_EXPORTS = {
    "draw_graph": "architecture", "summarize": "architecture",
    "SampleQuality": "callbacks",
    "datamodule_for": "checkpoints", "load_classifier": "checkpoints", "load_evaluator": "checkpoints",
    "load_gan": "checkpoints", "load_model": "checkpoints",
    "CNNClassifier": "classifier", "DenseClassifier": "classifier", "ImageClassifier": "classifier",
    "load_config": "config",
    "DATASETS": "data", "CorruptDataError": "data", "DataNotFoundError": "data", "MNISTDataModule": "data",
    "read_idx": "data",
    "DemoClassifier": "demo", "build_app": "demo", "serve": "demo",
    "keep_freed_memory": "environment",
    "ArgumentError": "errors", "ArgumentTypeError": "errors", "ArgumentValueError": "errors",
    "TrainingStopped": "errors", "UserError": "errors",
    "Evaluation": "evaluation", "evaluate": "evaluation", "write_evaluation": "evaluation",
    "export_checkpoint": "export",
    "GAN": "gan",
    "MNISTModule": "module",
    "MODELS": "registry", "register_model": "registry",
    "MLP": "nets", "ConvNet": "nets", "DCGANDiscriminator": "nets", "DCGANGenerator": "nets",
    "Discriminator": "nets", "Generator": "nets",
    "Normalization": "normalization",
    "confusion_matrix_figure": "plots", "image_grid": "plots", "misclassified_figure": "plots",
    "predictions_figure": "plots", "save_figure": "plots",
    "Prediction": "predict", "predict_files": "predict", "preprocess": "predict", "to_mnist_style": "predict",
    "classify": "predict",
    "Evaluator": "quality", "sample_quality": "quality",
    "Dimension": "space", "Space": "space", "load_space": "space",
    "SweepSettings": "sweep", "run_sweep": "sweep",
    "report_sweep": "sweep_report",
    "build_trainer": "training", "train": "training",
}

if TYPE_CHECKING:
    from .architecture import draw_graph, summarize
    from .callbacks import SampleQuality
    from .checkpoints import datamodule_for, load_classifier, load_evaluator, load_gan, load_model
    from .classifier import CNNClassifier, DenseClassifier, ImageClassifier
    from .config import load_config
    from .data import DATASETS, CorruptDataError, DataNotFoundError, MNISTDataModule, read_idx
    from .demo import DemoClassifier, build_app, serve
    from .environment import keep_freed_memory
    from .errors import ArgumentError, ArgumentTypeError, ArgumentValueError, TrainingStopped, UserError
    from .evaluation import Evaluation, evaluate, write_evaluation
    from .export import export_checkpoint
    from .gan import GAN
    from .module import MNISTModule
    from .nets import MLP, ConvNet, DCGANDiscriminator, DCGANGenerator, Discriminator, Generator
    from .normalization import Normalization
    from .plots import confusion_matrix_figure, image_grid, misclassified_figure, predictions_figure, save_figure
    from .predict import Prediction, classify, predict_files, preprocess, to_mnist_style
    from .quality import Evaluator, sample_quality
    from .registry import MODELS, register_model
    from .space import Dimension, Space, load_space
    from .sweep import SweepSettings, run_sweep
    from .sweep_report import report_sweep
    from .training import build_trainer, train

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
