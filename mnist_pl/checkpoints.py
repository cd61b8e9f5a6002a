"""Reading a checkpoint back: which model it holds, the model itself, and the data it was trained on."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch

from .classifier import ImageClassifier
from .config import MODELS, constructor_defaults
from .data import MNISTDataModule
from .errors import UserError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary at `path`, on the CPU, or a UserError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist. Give the .ckpt file of a training run: "
                        "train.py prints it as 'Best checkpoint', under RUN_DIR/checkpoints/.")
    try:
        # weights_only: a checkpoint from elsewhere must not be able to run code while loading
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"checkpoint {path} cannot be read ({first_line[:200]}). It is damaged or not "
                        "a PyTorch Lightning checkpoint: train again or pick another .ckpt file.") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (it has no state_dict); "
                        "give a .ckpt file written by train.py.")
    return checkpoint


def checkpoint_model_name(checkpoint: dict[str, Any]) -> str | None:
    """The key of MODELS whose constructor takes all of the checkpoint's hyperparameters.

    A subset, not equality, so that checkpoints from before a new (defaulted) argument still load.
    """
    saved = set(checkpoint.get("hyper_parameters", {}))
    for name, cls in MODELS.items():
        if saved and saved <= set(constructor_defaults(cls)):
            return name
    return None


def load_model(path: str | Path, kinds: tuple[str, ...] = tuple(MODELS),
               purpose: str = "this command") -> tuple[L.LightningModule, dict[str, Any]]:
    """The model saved in checkpoint `path`, in eval mode on the CPU, and the checkpoint dict.

    `kinds` are the model names `purpose` accepts; any other kind is a UserError.
    """
    checkpoint = read_checkpoint(path)
    name = checkpoint_model_name(checkpoint)
    if name is None:
        raise UserError(f"checkpoint {path} holds no mnist-pl model (its hyperparameters match none of "
                        f"{', '.join(MODELS)}); give a .ckpt file written by train.py.")
    if name not in kinds:
        what = "a GAN: it generates digits and does not classify them" if name == "gan" else f"a {name} model"
        raise UserError(f"checkpoint {path} holds {what}, but {purpose} needs a "
                        f"{' or '.join(kinds)} checkpoint (train one with: python train.py --model cnn).")
    model = MODELS[name](**checkpoint["hyper_parameters"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise UserError(f"checkpoint {path}: its weights do not fit its {name} model "
                        f"({str(err).splitlines()[0]}). The file is damaged.") from None
    return model.eval(), checkpoint


def load_classifier(path: str | Path, purpose: str = "this command") -> tuple[ImageClassifier, dict[str, Any]]:
    """A dense or CNN classifier from `path` (a GAN checkpoint is a UserError), and the checkpoint."""
    model, checkpoint = load_model(path, ("dense", "cnn"), purpose)
    assert isinstance(model, ImageClassifier)
    return model, checkpoint


def datamodule_for(checkpoint: dict[str, Any], **overrides: Any) -> MNISTDataModule:
    """The data module a checkpoint was trained with (train.py saves its settings in the
    checkpoint), with `overrides` (None values ignored) such as another data_dir."""
    settings = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    settings.update({key: value for key, value in overrides.items() if value is not None})
    known = constructor_defaults(MNISTDataModule)
    return MNISTDataModule(**{key: value for key, value in settings.items() if key in known})
