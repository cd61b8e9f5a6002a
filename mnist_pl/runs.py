"""Where runs live: a run directory LOGDIR/MODEL/version_N (TensorBoard's layout) holds the run's
config.yaml, results.json, TensorBoard events and checkpoints/ (last.ckpt and the best). Every
path of a run is made here; the newest run's last checkpoint is what `--resume last` and
`--checkpoint last` name, and the run a restarted command continues is what `--resume auto`
names. No torch."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import UserError

CONFIG_FILE = "config.yaml"  # the run's whole config, as train() used it
RESULTS_FILE = "results.json"  # what train() returned, written when the run finished
CHECKPOINTS = "checkpoints"  # the run's checkpoint folder
LAST_CHECKPOINT = "last.ckpt"  # in CHECKPOINTS: the one to resume from

RESUME_AUTO = "auto"  # --resume auto: continue this command's run, if it has one

# config keys that change neither the weights nor what TensorBoard shows: a command restarted with
# other values of these still continues its run under --resume auto. data.data_dir is one: the
# same data copied elsewhere (a cluster job's scratch disk) continues the run; the dataset, its
# split and every other key must match
KEYS_A_RESTART_MAY_CHANGE = ("logdir", "profile", "checkpoint_every_n_steps", "data.data_dir",
                             "data.num_workers", "data.download", "trainer.enable_progress_bar",
                             "trainer.enable_model_summary")


def last_checkpoints(logdir: str | Path, model: str) -> list[Path]:
    """The last.ckpt of every run of `model` (a name or "module:Class") under `logdir`."""
    return list(Path(logdir, run_folder(model)).glob(f"version_*/{CHECKPOINTS}/{LAST_CHECKPOINT}"))


def newest_last_checkpoint(logdir: str | Path, models: Sequence[str], flag: str) -> Path:
    """The last.ckpt of the newest run of any of `models` under `logdir` (by the time it was
    written), or a UserError, for `flag` ("--resume last"), saying what to do."""
    candidates = [path for model in models for path in last_checkpoints(logdir, model)]
    if not candidates:
        looked = ", ".join(str(Path(logdir, run_folder(model), "version_*", CHECKPOINTS, LAST_CHECKPOINT))
                           for model in models)
        raise UserError(f"{flag}: no run has a last.ckpt ({looked}). Train one first "
                        f"(python train.py --model {models[-1]} --logdir {logdir}), or give the run's "
                        "--logdir, or a .ckpt file.")
    return max(candidates, key=lambda path: path.stat().st_mtime)


def find_last_checkpoint(logdir: str | Path, model_name: str) -> Path:
    """The last.ckpt of the newest run of `model_name` under `logdir` (what --resume last means)."""
    try:
        return newest_last_checkpoint(logdir, [model_name], "--resume last")
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


@dataclass(frozen=True)
class Run:
    """A run directory made by train.py and how far its run got."""

    directory: Path

    @property
    def last_checkpoint(self) -> Path | None:
        """Its last.ckpt, if the run wrote one (a run killed before its first has none)."""
        path = self.directory / CHECKPOINTS / LAST_CHECKPOINT
        return path if path.is_file() else None

    @property
    def finished(self) -> bool:
        """Whether the run trained and tested to its end (it wrote results.json)."""
        return (self.directory / RESULTS_FILE).is_file()


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def same_training(saved: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether two configs train the same run (equal but for KEYS_A_RESTART_MAY_CHANGE)."""
    a, b = _flat(saved), _flat(config)
    keys = (a.keys() | b.keys()) - set(KEYS_A_RESTART_MAY_CHANGE)
    return all(json.dumps(a.get(key), default=list) == json.dumps(b.get(key), default=list) for key in keys)


def _version(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def run_to_continue(logdir: str | Path, model: str, config: dict[str, Any]) -> Run | None:
    """What `--resume auto` continues: the newest run of `model` under `logdir` (by version
    number) whose config.yaml trains what `config` trains (same_training), or None."""
    runs = sorted((path.parent for path in Path(logdir, run_folder(model)).glob(f"version_*/{CONFIG_FILE}")),
                  key=_version)
    for directory in reversed(runs):
        try:
            saved = yaml.safe_load((directory / CONFIG_FILE).read_text())
        except (OSError, yaml.YAMLError):
            continue  # not a config train.py wrote whole: not a run to continue
        if isinstance(saved, dict) and same_training(saved, config):
            return Run(directory)
    return None
