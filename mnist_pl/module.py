"""MNISTModule: what the shared Trainer asks of a model, answered by the model itself.

Every mnist-pl LightningModule derives from it and overrides what differs from the defaults
below; `build_trainer` and `train` (training.py) read these and never ask which model they
have, so a new model needs no edit there: derive from MNISTModule, set what applies, and train
it with `--model your_module:YourClass` (see registry.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.fabric.utilities.data import AttributeDict
import torch

from .data import NormalizationKind
from .errors import UserError
from .registry import name_of

# the key under which a checkpoint names its model (see MNISTModule.on_save_checkpoint)
MODEL_NAME_KEY = "mnist_pl_model"


class MNISTModule(L.LightningModule):
    """A LightningModule with the rules of its own training run.

    Attributes:
        checkpoint_monitor: the logged metric the best checkpoint follows (e.g. "val/acc");
            None: no "best", checkpoints are named by epoch and the last one counts.
        checkpoint_mode: "max" or "min": which value of `checkpoint_monitor` is best.
        data_normalize: the MNISTDataModule `normalize` it must be trained with; None: any.
            Checked when fitting starts (`check_datamodule`), whatever Trainer runs it.
        ddp_find_unused_parameters: True if some parameters get no gradient in a step (as
            in a GAN's alternating steps), which plain DDP would take for a bug.
    """

    checkpoint_monitor: str | None = None
    checkpoint_mode: str = "max"
    data_normalize: NormalizationKind | None = None
    ddp_find_unused_parameters: bool = False

    @property
    def hparams(self) -> AttributeDict:
        """The constructor's arguments (save_hyperparameters), read as attributes: hparams.lr."""
        return cast(AttributeDict, super().hparams)

    def check_datamodule(self, datamodule: object) -> None:
        """A UserError if `datamodule` scales its images otherwise than `data_normalize` asks."""
        found = getattr(datamodule, "normalize", None)
        if self.data_normalize is not None and found is not None and found != self.data_normalize:
            raise UserError(f"{type(self).__name__} trains on data normalised as {self.data_normalize!r}, not "
                            f"{found!r}: build the data module with normalize={self.data_normalize!r} (in a "
                            f"config: data.normalize: {self.data_normalize}, as the shipped configs do).")

    def on_fit_start(self) -> None:
        # here rather than in train(), so that a plain lightning.Trainer checks it too
        self.check_datamodule(getattr(self.trainer, "datamodule", None))

    def start_epoch_sums(self, size: int) -> None:
        """Start this epoch's training sums at zero: `_train_sums` (`size` numbers on the module's
        device) and `_train_images` (the images they count). Call it in on_train_epoch_start; a
        run resumed mid-epoch gets them back from its checkpoint (process_state) instead."""
        self._train_sums, self._train_images = torch.zeros(size, device=self.device), 0

    def process_state(self) -> dict[str, Any]:
        """This process's training state that the weights and optimisers do not hold (under DDP
        each process has its own): its epoch sums so far. Checkpoints keep it per process
        (callbacks.ProcessState), so that the epoch means of a run resumed mid-epoch count the
        whole epoch, as the uninterrupted run's do."""
        sums = getattr(self, "_train_sums", None)
        return {} if sums is None else {"epoch_sums": (sums.detach().cpu(), self._train_images)}

    def load_process_state(self, state: dict[str, Any]) -> None:
        """Take back `process_state()` from a checkpoint (when training starts, on its device)."""
        if "epoch_sums" in state:
            sums, images = state["epoch_sums"]
            self._train_sums, self._train_images = sums.to(self.device), images

    def logs_learning_rate(self) -> bool:
        """Whether the learning rate changes in a run, so that TensorBoard should plot it."""
        return False

    def finish_run(self, trainer: L.Trainer, datamodule: L.LightningDataModule, best_checkpoint: str | None,
                   run_dir: Path | None) -> dict[str, Any]:
        """What a finished run reports, after fit (results.json and the printed summary).

        `best_checkpoint` is the file the best checkpoint was saved in (None when none was), and
        `run_dir` the run directory (None for a run that saves nothing). Default: nothing more.
        """
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the model's name ("cnn", or "module:Class" of your own), so that a checkpoint is loaded
        # as what it is, never guessed
        checkpoint[MODEL_NAME_KEY] = name_of(type(self))
