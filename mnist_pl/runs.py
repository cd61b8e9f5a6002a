"""Where runs live: a run directory LOGDIR/MODEL/version_N (TensorBoard's layout) holds the run's
config.yaml, results.json, TensorBoard events and checkpoints/ (last.ckpt and the best). Every
path of a run is made here; the newest run's last checkpoint is what `--resume last` and
`--checkpoint last` name. No torch."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator, Sequence

from .errors import UserError

CONFIG_FILE = "config.yaml"  # the run's whole config, as train() used it
RESULTS_FILE = "results.json"  # what train() returned, written when the run finished
CHECKPOINTS = "checkpoints"  # the run's checkpoint folder
LAST_CHECKPOINT = "last.ckpt"  # in CHECKPOINTS: the one to resume from


def last_checkpoints(logdir: str | Path, model: str) -> list[Path]:
    """The last.ckpt of every run of `model` under `logdir`."""
    return list(Path(logdir, model).glob(f"version_*/{CHECKPOINTS}/{LAST_CHECKPOINT}"))


def newest_last_checkpoint(logdir: str | Path, models: Sequence[str], flag: str) -> Path:
    """The last.ckpt of the newest run of any of `models` under `logdir` (by the time it was
    written), or a UserError, for `flag` ("--resume last"), saying what to do."""
    candidates = [path for model in models for path in last_checkpoints(logdir, model)]
    if not candidates:
        looked = ", ".join(str(Path(logdir, model, "version_*", CHECKPOINTS, LAST_CHECKPOINT)) for model in models)
        raise UserError(f"{flag}: no run has a last.ckpt ({looked}). Train one first "
                        f"(python train.py --model {models[-1]} --logdir {logdir}), or give the run's "
                        "--logdir, or a .ckpt file.")
    return max(candidates, key=lambda path: path.stat().st_mtime)


def find_last_checkpoint(logdir: str | Path, model_name: str) -> Path:
    """The last.ckpt of the newest run of `model_name` under `logdir` (what --resume last means)."""
    try:
        return newest_last_checkpoint(logdir, [run_folder(model_name)], "--resume last")
    except UserError as err:
        raise UserError(f"{err} Without a run there is nothing to resume: train without --resume first.") from None


def run_dir_of(checkpoint_path: Path) -> Path | None:
    """The run directory a checkpoint was written into by train.py, if it was."""
    run_dir = checkpoint_path.resolve().parent.parent
    if checkpoint_path.resolve().parent.name == CHECKPOINTS and (run_dir / CONFIG_FILE).is_file():
        return run_dir
    return None


def run_folder(model: str) -> str:
    """The folder under the log directory that holds `model`'s runs ("cnn", "my_models.FocalCNN")."""
    return model.replace(":", ".")


def is_run_of(run_dir: Path, model: str) -> bool:
    """Whether a run directory holds a run of `model`."""
    return run_dir.parent.name == run_folder(model)


def logger_location(run_dir: Path) -> dict[str, str]:
    """TensorBoardLogger's save_dir, name and version that log into `run_dir`."""
    return {"save_dir": str(run_dir.parent.parent), "name": run_dir.parent.name, "version": run_dir.name}


@contextlib.contextmanager
def removed_if_failed(run_dir: Path | None) -> Iterator[None]:
    """Remove the folders this run makes for `run_dir` if the block fails before any checkpoint
    is written, so that a failed run leaves no empty version_N (and the next run takes its
    number). Folders that existed before are never removed, nor a run that saved a checkpoint."""
    made = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()] if run_dir else []
    try:
        yield
    except Exception:
        if made and not any(run_dir.glob(f"{CHECKPOINTS}/*.ckpt")):
            shutil.rmtree(made[-1], ignore_errors=True)  # the outermost folder this run made
        raise
