"""The Trainer's callbacks: mnist-pl's progress bar, random-state saving, checkpoints, compiled
training, and sample quality scored during training. build_trainer (mnist_pl.training) puts them
together."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from .checkpoints import load_evaluator
from .compiling import compile_mode, compile_model, compile_seconds_since, eager_networks
from .errors import UserError
from .module import MNISTModule
from .quality import Evaluator, sample_quality
from .rules import Seed, at_least, check_arguments


class ProgressBar(TQDMProgressBar):
    """The TQDM bar, showing the module's `running_metrics()` (its training losses) as it redraws.

    Logging with prog_bar=True would copy those values to the host after every step, a GPU
    sync each time; reading them here costs one copy per redraw.
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        running_metrics = getattr(pl_module, "running_metrics", None)
        if running_metrics is not None:
            items.update({key: f"{value:.3f}" for key, value in running_metrics().items()})
        return items


class RandomState(L.Callback):
    """Saves torch's random generators in checkpoints and restores them on resume, so that the
    dropout and augmentation after a resume draw what the uninterrupted run would have."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, but writing last.ckpt at the end of every epoch.

    Lightning writes last.ckpt only at a step where it also saved a best checkpoint: after an
    epoch that did not improve, last.ckpt stayed behind (a finished run's last.ckpt could be
    older than its end, and `--resume last` would resume from there).
    """

    def _save_last_if_not_yet(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_yet(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_yet(trainer)


class LastEveryNSteps(L.Callback):
    """Overwrites last.ckpt every `n` training steps, between the epoch-end checkpoints.

    (A second ModelCheckpoint cannot do this: two of them saving "last" write last-v1.ckpt.)
    """

    def __init__(self, n: int):
        self.n = n

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step % self.n or not step:  # first, the cheap test: this runs after every step
            return
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        if folder:
            # the steps logged so far reach the disk with the checkpoint: a run resumed from it
            # continues TensorBoard's curves without a gap where buffered events were lost
            for logger in trainer.loggers:
                logger.save()
            trainer.save_checkpoint(Path(folder) / "last.ckpt")


def best_checkpoint_callback(model: MNISTModule) -> EpochCheckpoint:
    """Keeps last.ckpt and the best checkpoint by the model's `checkpoint_monitor`, named after
    its value (epoch011-val_acc0.9975.ckpt); a model without one gets epoch-named checkpoints."""
    common: dict[str, Any] = {"save_last": True, "auto_insert_metric_name": False, "enable_version_counter": False}
    monitor = model.checkpoint_monitor
    if monitor is None:
        return EpochCheckpoint(filename="epoch{epoch:03d}", **common)
    return EpochCheckpoint(monitor=monitor, mode=model.checkpoint_mode,
                           filename=f"epoch{{epoch:03d}}-{monitor.replace('/', '_')}{{{monitor}:.4f}}", **common)



class CompiledTraining(L.Callback):
    """torch.compile the model's trainable networks for its training steps (a config's `compile`).

    Each network is compiled for the one job that repeats, the training step, and nothing else:
    they are compiled when training starts, so Lightning's model summary (a batch of one) and
    its sanity check (inference mode) run before, eager; validation and test run them eager too
    (each would compile graphs of its own, for a few batches an epoch). Training batches are cut
    to full ones (the data module's `drop_last`, where it has one), so that a network sees a
    single batch shape and is compiled once, for that static shape.

    Args:
        setting: true (the device's best mode: "reduce-overhead", CUDA graphs, on a GPU), or a
            torch.compile mode name (see mnist_pl.compiling.compile_mode).
    """

    def __init__(self, setting: bool | str = True):
        compile_mode(setting, torch.device("cpu"))  # a wrong mode name fails now, before any run starts
        self.setting = setting
        self.compiled: list[str] = []  # the networks compiled, once training has started
        self._started: float | None = None  # when training started (time.time())
        self._eager = contextlib.ExitStack()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and hasattr(trainer.datamodule, "drop_last"):
            trainer.datamodule.drop_last = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started is None:
            self._started = time.time()
            mode = compile_mode(self.setting, trainer.strategy.root_device)
            self.compiled = compile_model(pl_module, mode) if mode is not None else []

    def compile_seconds(self) -> float:
        """Seconds spent compiling this run's graphs so far (torch.compile's own account; on a GPU
        without the CUDA graphs' recording, which happens as they first run)."""
        return compile_seconds_since(self._started) if self._started is not None else 0.0

    def _run_eager(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eager.enter_context(eager_networks(pl_module))

    def _compiled_again(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eager.close()

    on_validation_start = on_test_start = on_predict_start = _run_eager
    on_validation_end = on_test_end = on_predict_end = _compiled_again

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._eager.close()


class SampleQuality(L.Callback):
    """After every validation epoch, scores `num_samples` samples of the model with a trained
    classifier (mnist_pl.quality: classifier score, Fréchet distance to the held-out real images
    of the validation split, class fractions, conditional accuracy). They go to TensorBoard as
    "quality/..." (and a histogram of the predicted classes); `last_quality` keeps the last ones.

    The model must draw samples as the GAN does: `sample(num, generator=...)` and
    `make_labels(num)` (None for an unconditional model).

    train() adds it when the config's `quality` section names an evaluator checkpoint; the section
    mirrors this constructor, as `data`, `model` and `trainer` mirror theirs:

        quality:
          evaluator_checkpoint: runs/cnn/version_0/checkpoints/epoch005-val_acc0.9910.ckpt
          num_samples: 1000

    Args:
        evaluator_checkpoint: a classifier checkpoint trained by mnist-pl (e.g. the CNN, trained
            with label_smoothing 0); None scores nothing.
        num_samples: samples scored each epoch.
        seed: seed of the samples' noise, the same every epoch (None: 0; train() passes the
            run's seed).
    """

    def __init__(self, evaluator_checkpoint: str | Path | None = None,
                 num_samples: Annotated[int, at_least(1)] = 1000, seed: Seed | None = None):
        check_arguments(SampleQuality, locals(), type(self).__name__)
        self.evaluator_checkpoint = evaluator_checkpoint
        self.num_samples = num_samples
        self.seed = seed or 0
        # loaded when fitting starts; a callback's state is not saved with the model
        self.evaluator: Evaluator | None = None
        self.last_quality: dict[str, Any] | None = None
        self._real: list[torch.Tensor] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator_checkpoint is None:
            return
        if not (hasattr(pl_module, "sample") and hasattr(pl_module, "make_labels")):
            raise UserError(f"quality.evaluator_checkpoint is set, but {type(pl_module).__name__} draws no "
                            "samples to score; only the gan does. Leave quality.evaluator_checkpoint null.")
        if self.evaluator is None:
            self.evaluator = load_evaluator(self.evaluator_checkpoint)
        self.evaluator.to(pl_module.device)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.evaluator is not None and not trainer.sanity_checking:
            self._real.append(batch[0])  # held-out real digits: the reference of the metrics

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator is None or not self._real:
            return
        real, self._real = torch.cat(self._real), []
        model: Any = pl_module  # draws samples as the GAN does (checked by on_fit_start)
        labels = model.make_labels(self.num_samples)
        images = model.sample(self.num_samples, generator=torch.Generator().manual_seed(self.seed))
        quality = sample_quality(self.evaluator, images, real=real, labels=labels)
        self.last_quality = quality
        pl_module.log_dict({f"quality/{k}": float(v) for k, v in quality.items() if not isinstance(v, list)})
        experiment = getattr(pl_module.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_histogram"):
            predicted = torch.tensor([c for c, share in enumerate(quality["class_fractions"])
                                      for _ in range(round(share * len(images)))])
            experiment.add_histogram("quality/predicted_class", predicted, pl_module.current_epoch,
                                     bins=torch.arange(self.evaluator.num_classes + 1).float() - 0.5)


class BestValidation(L.Callback):
    """Follows the best value of a logged validation metric and the epoch it was reached in.

    train() adds it for the model's `checkpoint_monitor`, so that results report the best
    validation score beside the test metrics. Only strict improvements count (as for the best
    checkpoint), so a tie keeps the earlier epoch. Its state travels in checkpoints: a resumed
    run still knows the best of the epochs before the resume.

    Args:
        monitor: the logged metric, e.g. "val/acc".
        mode: "max" or "min": which value is best.
    """

    def __init__(self, monitor: str, mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.value: float | None = None
        self.epoch: int | None = None

    @property
    def state_key(self) -> str:
        return f"BestValidation[{self.monitor}]"

    def result(self) -> dict[str, Any]:
        """{"metric", "mode", "value", "epoch"}: the best value and its epoch (counted from 0,
        as in checkpoint names); value and epoch are None before a validation logged it."""
        return {"metric": self.monitor, "mode": self.mode, "value": self.value, "epoch": self.epoch}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if value != value:  # NaN is never best
            return
        if self.value is None or (value > self.value if self.mode == "max" else value < self.value):
            self.value, self.epoch = value, trainer.current_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.value, self.epoch = state_dict.get("value"), state_dict.get("epoch")
