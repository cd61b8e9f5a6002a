"""Checkpoints: written atomically, read back with clear errors (which model, its data), found for --resume.

Every checkpoint mnist-pl reads is loaded here: `load_model` (any model), `load_classifier`,
`load_gan` and `load_evaluator` (a classifier as the judge of generated digits).
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.plugins import TorchCheckpointIO

from .classifier import ImageClassifier
from .data import MNISTDataModule
from .errors import ArgumentError, UserError, first_line
from .gan import GAN
from .module import MODEL_NAME_KEY
from .outputs import WRITE_ERRNOS
from .quality import Evaluator
from .registry import MODEL_CLASSES, SHIPPED_MODELS, constructor_defaults, is_class_path, model_class
from .runs import CONFIG_FILE, LAST_CHECKPOINT, run_dir_of

# hyperparameters that old GAN checkpoints hold but the GAN does not take (sample quality is the
# config's `quality` section, the SampleQuality callback): loading drops them
RETIRED_HYPERPARAMETERS = {"evaluator_checkpoint", "quality_samples"}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, syncs it, then renames it into place.

    A crash or kill while writing leaves the previous file (last.ckpt above all) whole: a rename
    within one folder is atomic, a half-written torch.save is not.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except OSError as err:
            reason = WRITE_ERRNOS.get(err.errno or 0, err.strerror or type(err).__name__)
            kept = f"the previous {path.name} is kept whole" if path.exists() else "no checkpoint was lost"
            raise UserError(f"could not write checkpoint {path}: {reason} ({err.strerror or err}); {kept}. "
                            "Free some space (or fix the folder), then run the same command with --resume auto "
                            "to continue from the last checkpoint.") from None
        finally:
            partial.unlink(missing_ok=True)


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files that checkpoint writes of a killed process left in `folder`
    (AtomicCheckpointIO's; only one run writes into a run's folder)."""
    for path in folder.glob(".*.partial-*"):
        path.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary at `path`, on the CPU, or a UserError saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob(f"**/{LAST_CHECKPOINT}")) or sorted(path.glob("**/*.ckpt"))
        raise UserError(f"checkpoint {path} is a folder; give a .ckpt file"
                        + (f", such as {inside[0]}." if inside else " (train.py prints it as 'Best checkpoint')."))
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist. Give the .ckpt file of a training run: "
                        "train.py prints it as 'Best checkpoint', under RUN_DIR/checkpoints/.")
    try:
        # weights_only: a checkpoint from elsewhere must not be able to run code while loading
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (a text file fails with KeyError, others with a dozen types)
        reason = first_line(err, type(err).__name__)
        if isinstance(err, (KeyError, pickle.UnpicklingError, zipfile.BadZipFile)) and _looks_like_text(path):
            reason = "it is a text file"
        raise UserError(f"checkpoint {path} cannot be read ({reason[:200]}). It is damaged or not "
                        "a PyTorch Lightning checkpoint: train again or pick another .ckpt file.") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (it has no state_dict); "
                        "give a .ckpt file written by train.py.")
    return checkpoint


def _looks_like_text(path: Path) -> bool:
    """Whether the file starts as text does (a note or a config given as a checkpoint)."""
    with open(path, "rb") as file:
        start = file.read(512)
    try:
        start.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in start


def checkpoint_model_name(checkpoint: dict[str, Any]) -> str | None:
    """The model in `checkpoint` as `--model` names it ("cnn", or "module:Class" of your own), or
    None if it holds no mnist-pl model.

    mnist-pl writes the name into every checkpoint (MNISTModule.on_save_checkpoint). For a
    checkpoint written before that, the name is guessed among the shipped models: the first whose
    constructor takes all of its hyperparameters (a subset, not equality, so that checkpoints
    from before a new, defaulted argument still load).
    """
    if MODEL_NAME_KEY in checkpoint:
        name = checkpoint[MODEL_NAME_KEY]
        return name if isinstance(name, str) and (name in MODEL_CLASSES or is_class_path(name)) else None
    saved = set(checkpoint.get("hyper_parameters", {})) - RETIRED_HYPERPARAMETERS
    for name in SHIPPED_MODELS:
        if saved and saved <= set(constructor_defaults(model_class(name))):
            return name
    return None


def load_model(path: str | Path, kinds: tuple[str | type, ...] = (),
               purpose: str = "this command") -> tuple[L.LightningModule, dict[str, Any]]:
    """The model saved in checkpoint `path`, in eval mode on the CPU, and the checkpoint dict.

    A model of your own is imported by the "module:Class" its checkpoint names (from the Python
    path or the working folder). `kinds` are the model names `purpose` accepts, and classes
    whose subclasses it accepts (empty: any model); any other model is a UserError.
    """
    checkpoint = read_checkpoint(path)
    name = checkpoint_model_name(checkpoint)
    if name is None:
        named = checkpoint.get(MODEL_NAME_KEY)
        raise UserError(f"checkpoint {path} holds no mnist-pl model (it names "
                        f"{f'{named!r}, none' if named else 'none'} of {', '.join(MODEL_CLASSES)}, "
                        "nor a module:Class); give a .ckpt file written by train.py.")
    try:
        cls = model_class(name)
    except UserError as err:
        raise UserError(f"checkpoint {path} holds a {name} model, which cannot be loaded here: {err}") from None
    accepted = tuple(model_class(kind) if isinstance(kind, str) else kind for kind in kinds)
    if accepted and not issubclass(cls, accepted):
        names = [kind for kind in kinds if isinstance(kind, str)]
        bases = " or ".join(kind.__name__ for kind in kinds if not isinstance(kind, str))
        what = "a GAN: it generates digits and does not classify them" if issubclass(cls, GAN) else f"a {name} model"
        raise UserError(f"checkpoint {path} holds {what}, but {purpose} needs a {' or '.join(names)} checkpoint"
                        + (f", or one of a class of your own derived from {bases}" if bases else "")
                        + f" (train one with: python train.py --model {names[-1]}).")
    try:
        model = cls(**constructor_arguments(cls, checkpoint.get("hyper_parameters", {})))
    except ArgumentError as err:  # the constructor checks them as it would a user's arguments
        raise UserError(f"checkpoint {path} holds hyperparameters its {name} model does not allow: {err}") from None
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 (a class of the user's may have changed its arguments)
        raise UserError(f"checkpoint {path}: its hyperparameters do not fit {name} ({type(err).__name__}: "
                        f"{first_line(err, 'no message')}); has the class changed "
                        "since it was trained?") from None
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise UserError(f"checkpoint {path}: its weights do not fit its {name} model "
                        f"({first_line(err)}). The file is damaged"
                        + ("." if name in SHIPPED_MODELS else ", or the class has changed since it was trained.")) from None
    return model.eval(), checkpoint


def constructor_arguments(cls: type, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The saved `hyperparameters` that the constructor of `cls` takes. Lightning saves those of
    every constructor in the chain (a subclass's and ImageClassifier's), so, as Lightning's own
    load_from_checkpoint does, a constructor without **kwargs gets only the names it declares."""
    parameters = inspect.signature(cls).parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    return {key: value for key, value in hyperparameters.items() if key not in RETIRED_HYPERPARAMETERS
            and (takes_any or key in {p.name for p in parameters})}


def load_classifier(path: str | Path, purpose: str = "this command") -> tuple[ImageClassifier, dict[str, Any]]:
    """A classifier from `path` (dense, CNN, or an ImageClassifier of your own; a GAN checkpoint
    is a UserError), and the checkpoint."""
    model, checkpoint = load_model(path, ("dense", "cnn", ImageClassifier), purpose)
    assert isinstance(model, ImageClassifier)
    return model, checkpoint


def load_gan(path: str | Path, purpose: str = "generating digits") -> GAN:
    """The GAN of a checkpoint written by `mnist-pl train --model gan`, on the CPU, in eval mode
    (anything else is a UserError saying that `purpose` needs a GAN)."""
    gan, _ = load_model(path, ("gan",), purpose=purpose)
    assert isinstance(gan, GAN)
    return gan


def load_evaluator(path: str | Path) -> Evaluator:
    """The judge of generated digits: a dense or CNN classifier checkpoint written by `mnist-pl
    train`, with the normalisation it was trained with (on the CPU)."""
    model, checkpoint = load_classifier(path, purpose="the sample-quality evaluator")
    if model.hparams.label_smoothing > 0:
        warnings.warn(f"evaluator {path} was trained with label_smoothing={model.hparams.label_smoothing}, "
                      "which caps its confidence and so the classifier score (real digits score about "
                      "6.4 instead of 9.6); train it with --set model.label_smoothing=0.", stacklevel=2)
    return Evaluator(model, datamodule_for(checkpoint).normalization)


def datamodule_for(checkpoint: dict[str, Any], **overrides: Any) -> MNISTDataModule:
    """The data module a checkpoint was trained with (train.py saves its settings in the
    checkpoint), with `overrides` (None values ignored) such as another data_dir."""
    settings = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    settings.update({key: value for key, value in overrides.items() if value is not None})
    known = constructor_defaults(MNISTDataModule)
    return MNISTDataModule(**{key: value for key, value in settings.items() if key in known})


def _same_model(saved: str | None, model: str) -> bool:
    """Whether the model a checkpoint names is `model` (a name, or the class it registers)."""
    if saved is None or saved == model:
        return saved is not None
    try:
        return model_class(saved) is model_class(model)
    except UserError:
        return False


def check_resumable(checkpoint: dict[str, Any], path: Path, model_name: str, config: dict[str, Any]) -> None:
    """Refuse, with the reason, to resume `model_name` with `config` from this checkpoint."""
    model_config = config["model"]
    kind = checkpoint_model_name(checkpoint)
    if not _same_model(kind, model_name):
        raise UserError(f"--resume {path}: this checkpoint holds {f'a {kind} model' if kind else 'no mnist-pl model'}, not {model_name}. "
                        f"Resume it with --model {kind}, or pick a {model_name} checkpoint.")
    if "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise UserError(f"--resume {path}: the checkpoint holds weights only, no training state to "
                        "resume from. Use last.ckpt of the run.")
    saved = checkpoint.get("hyper_parameters", {})
    differ = [key for key in model_config if key in saved
              and json.dumps(model_config[key], default=list) != json.dumps(saved[key], default=list)]
    if differ:
        detail = "; ".join(f"model.{k} was {saved[k]!r}, now {model_config[k]!r}" for k in differ)
        raise UserError(f"--resume {path}: the checkpoint was trained with another config ({detail}). "
                        "Resume with the run's own config (leave out --config and --set), or start a "
                        "new run without --resume.")
    run_dir = run_dir_of(path)
    if run_dir is not None and model_config.get("scheduler") in ("cosine", "onecycle"):
        # these schedules were sized for the run's length: another length cannot continue them
        saved_trainer = (yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}).get("trainer", {})
        for key in ("max_epochs", "max_steps"):
            if saved_trainer.get(key) != config["trainer"].get(key):
                raise UserError(
                    f"--resume {path}: the run was started with trainer.{key}={saved_trainer.get(key)}, "
                    f"now {config['trainer'].get(key)}; its {model_config['scheduler']} learning-rate "
                    f"schedule is sized for the original length. Resume with {key} "
                    f"{saved_trainer.get(key)}, or start a new run to train longer.")
