"""Checkpoints: written atomically, found for --resume, and read back with clear errors."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.plugins import TorchCheckpointIO

from .errors import UserError

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
        finally:
            partial.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint onto the CPU, or raise a UserError that says what is wrong."""
    path = Path(path)
    if not path.is_file():
        hint = f" Checkpoints there: {', '.join(p.name for p in sorted(path.parent.glob('*.ckpt')))}." \
            if path.parent.is_dir() and any(path.parent.glob("*.ckpt")) else ""
        raise UserError(f"checkpoint {path} does not exist.{hint} Give the path of a .ckpt file "
                        "written by train.py (it prints the best one at the end of a run).")
    try:
        # weights_only=False: Lightning stores hyperparameters as Python objects; only load
        # checkpoints you trust, as with any pickle
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise UserError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'unreadable'}). Use another "
                        f"checkpoint of the run, such as one beside it in {path.parent}.") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict in it). Give a .ckpt "
                        "file written by train.py.")
    return checkpoint


def checkpoint_kind(checkpoint: dict[str, Any]) -> str:
    """The model name ("dense", "cnn", "gan") a checkpoint holds, told by its weights' names
    (so checkpoints saved by a plain lightning.Trainer, and subclasses, are recognised too)."""
    keys = checkpoint["state_dict"].keys()
    if any(k.startswith("generator.") for k in keys):
        return "gan"
    if any(k.startswith("net.features.") for k in keys):
        return "cnn"
    if any(k.startswith("net.layers.") for k in keys):
        return "dense"
    raise UserError("the checkpoint holds none of mnist-pl's models (dense, cnn, gan).")


def load_model(path: str | Path, kinds: tuple[str, ...] = ("dense", "cnn", "gan"),
               purpose: str = "this command") -> L.LightningModule:
    """The model saved in checkpoint `path`, on the CPU in eval mode, if it is one of `kinds`."""
    from .config import MODELS

    checkpoint = read_checkpoint(path)
    kind = checkpoint_kind(checkpoint)
    if kind not in kinds:
        raise UserError(f"{path} holds a {kind} model, but {purpose} needs a {' or '.join(kinds)} "
                        "checkpoint.")
    model = MODELS[kind](**checkpoint.get("hyper_parameters", {}))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def find_last_checkpoint(logdir: str | Path, model_name: str) -> Path:
    """The last.ckpt of the newest run of `model_name` under `logdir` (what --resume last means)."""
    candidates = list(Path(logdir, model_name).glob("version_*/checkpoints/last.ckpt"))
    if not candidates:
        raise UserError(f"--resume last: no {Path(logdir, model_name, 'version_*', 'checkpoints', 'last.ckpt')} "
                        "exists, so there is nothing to resume. Train without --resume first, or give "
                        "--resume PATH and the --logdir the run was written to.")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def run_dir_of(checkpoint_path: Path) -> Path | None:
    """The run directory a checkpoint was written into by train.py, if it was."""
    run_dir = checkpoint_path.resolve().parent.parent
    if checkpoint_path.resolve().parent.name == "checkpoints" and (run_dir / "config.yaml").is_file():
        return run_dir
    return None


def check_resumable(checkpoint: dict[str, Any], path: Path, model_name: str, config: dict[str, Any]) -> None:
    """Refuse, with the reason, to resume `model_name` with `config` from this checkpoint."""
    model_config = config["model"]
    kind = checkpoint_kind(checkpoint)
    if kind != model_name:
        raise UserError(f"--resume {path}: this checkpoint holds a {kind} model, not {model_name}. "
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
        saved_trainer = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("trainer", {})
        for key in ("max_epochs", "max_steps"):
            if saved_trainer.get(key) != config["trainer"].get(key):
                raise UserError(
                    f"--resume {path}: the run was started with trainer.{key}={saved_trainer.get(key)}, "
                    f"now {config['trainer'].get(key)}; its {model_config['scheduler']} learning-rate "
                    f"schedule is sized for the original length. Resume with {key} "
                    f"{saved_trainer.get(key)}, or start a new run to train longer.")
