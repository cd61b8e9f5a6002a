"""The Trainer's callbacks: mnist-pl's progress bar, each process's state in checkpoints, the
last checkpoint, the stop on a scheduler's signal, compiled training, and sample quality scored
during training. build_trainer (mnist_pl.training) puts them together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

from .checkpoints import load_evaluator
from .compiling import compile_mode, compile_model, compile_seconds_since, eager_networks
from .errors import TrainingStopped, UserError
from .module import MNISTModule
from .quality import Evaluator, sample_quality
from .rules import Seed, at_least, check_arguments
from .runs import LAST_CHECKPOINT


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


class ProcessState(L.Callback):
    """Saves each process's own state in checkpoints and gives it back to that process on resume:
    torch's random generators (so that the dropout and augmentation after a resume draw what the
    uninterrupted run would have) and the module's `process_state()` (its epoch sums so far).

    Under DDP only the first process writes the checkpoint, but every process draws its own
    random numbers and sums its own batches: their states are gathered into the checkpoint, one
    per process, and each process restores its own (a run resumed with another number of
    processes restores the first process's).
    """

    KEY = "mnist_pl_process_states"

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if isinstance(pl_module, MNISTModule):
            state["module"] = pl_module.process_state()
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            states: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, state)  # every process saves (dumps) a checkpoint
        else:
            states = [state]
        checkpoint[self.KEY] = states

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get(self.KEY)
        if not states:  # a checkpoint from before process states: the generators only
            states = [checkpoint.get("callbacks", {}).get("RandomState")]
            if states[0] is None:
                return
        state = states[trainer.global_rank] if len(states) == trainer.world_size else states[0]
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self._module_state = state.get("module")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not on load: the module is on its device now, and a resumed epoch has no epoch start
        module_state, self._module_state = getattr(self, "_module_state", None), None
        if module_state is not None and isinstance(pl_module, MNISTModule):
            pl_module.load_process_state(module_state)


class LastCheckpoint(L.Callback):
    """Writes the run's last.ckpt, the state `--resume` continues from: every `every_n_steps`
    training steps (0: only between epochs), between epochs, and when training ends.

    Written before a batch begins, never after one: after a step's last callback hook Lightning
    still logs that step, and at an epoch's end its means and epoch schedules, which a
    checkpoint written there would resume without (TensorBoard would miss those values).
    Before each write the loggers flush, so that every step logged before the checkpoint is on
    disk with it, and a resumed run logs each later step once.
    """

    def __init__(self, every_n_steps: int = 0):
        self.every_n_steps = every_n_steps
        self._saved_at: int | None = None
        self._before_batch = False

    def path(self, trainer: L.Trainer) -> Path | None:
        """Where last.ckpt goes; None for a Trainer that keeps no checkpoints."""
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        return Path(folder) / LAST_CHECKPOINT if folder else None

    def save(self, trainer: L.Trainer) -> Path | None:
        """Write last.ckpt now, unless it holds this step already (on every process: under DDP
        all of them must call this); return its path (None: no checkpoints are kept)."""
        path = self.path(trainer)
        if path is None or self._saved_at == trainer.global_step:
            return path
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(path, weights_only=False)  # the whole state: resume continues from it
        self._saved_at = trainer.global_step
        if isinstance(trainer.checkpoint_callback, ModelCheckpoint):
            # where Lightning's own users look for it (and where ckpt_path="last" finds it)
            trainer.checkpoint_callback.last_model_path = str(path)
        return path

    def save_before_batch(self, trainer: L.Trainer) -> Path | None:
        """save(), called where a batch is about to begin (on_train_batch_start)."""
        self._before_batch = True
        try:
            return self.save(trainer)
        finally:
            self._before_batch = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a resumed run holds its checkpoint's step already
        self._saved_at = trainer.global_step if trainer.global_step else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if (batch_idx == 0 and trainer.current_epoch > 0) or (self.every_n_steps and step and not step % self.every_n_steps):
            self.save_before_batch(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._before_batch:
            # Lightning counts a batch that has begun as stepped when it restores a checkpoint
            # (it expects checkpoints written at a batch's end): one written before the batch
            # began counts one step less, so that the resumed run logs at the steps this one would
            checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)


class StopOnSignal(L.Callback):
    """On SIGTERM or SIGUSR1 during training (what a cluster or a cloud sends before it stops a
    job), write last.ckpt at the step reached and stop with TrainingStopped.

    The handlers only note the signal; the step that is running finishes, then `last` writes
    its checkpoint (at once, whatever the checkpoint interval) before the next step and
    training stops, so a signal never lands inside an optimiser step or a checkpoint write.
    During validation the note waits for the next training step. Under DDP the processes agree
    whether any of them was signalled, so that all stop at the same step, even where only one
    process got the signal (docker stop, a Kubernetes pod): each step starts a small all-reduce
    over a CPU (gloo) group without waiting for it, and the next step reads its result, so the
    agreement never stalls a GPU and the processes stop one step after the signal. On SIGUSR1
    inside a SLURM job (SLURM_JOB_ID set), the first process asks SLURM to requeue the job after
    the checkpoint, as Lightning's own auto-requeue would (which build_trainer turns off, so that
    it neither writes a second checkpoint nor resumes from it over `--resume`).
    Outside training (setup, testing) the signals keep their usual handlers.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, last: LastCheckpoint):
        self.last = last
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._group: Any = None  # the CPU process group that agrees on signals (DDP only)
        self._agreeing: tuple[torch.Tensor, Any] | None = None  # an all-reduce under way, its flag

    def _note(self, signum: int, frame: Any) -> None:
        self.received = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            self._previous = {signum: signal.signal(signum, self._note) for signum in self.SIGNALS}
        dist = torch.distributed
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            # every process makes the group (a collective call); gloo, so the flag stays on the CPU
            self._group = dist.new_group(backend="gloo")

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _agree(self, wait: bool) -> int:
        """The signal any process got (its number; 0: none). With `wait=False` (before a step),
        the answer agreed from the previous step's start, and an all-reduce of this process's
        note starts for the next; with `wait=True`, the answer for now."""
        if self._group is None:
            return self.received or 0
        agreed = 0
        if self._agreeing is not None:
            flag, work = self._agreeing
            work.wait()
            agreed = int(flag.item())
            self._agreeing = None
        flag = torch.tensor([self.received or 0])
        work = torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=self._group,
                                            async_op=not wait)
        if wait:
            return max(agreed, int(flag.item()))
        self._agreeing = flag, work
        return agreed

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        signum = self._agree(wait=False)
        if signum:
            self._stop(trainer, signum, self.last.save_before_batch(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signum = self._agree(wait=True)  # a signal during the last steps or validation
        self._restore_handlers()
        if signum:  # last.ckpt holds the end of training already (LastCheckpoint runs before)
            self._stop(trainer, signum, self.last.path(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()
        self._agreeing = None  # another process may be gone: nothing to wait for

    def _stop(self, trainer: L.Trainer, signum: int, checkpoint: Path | None) -> None:
        self._restore_handlers()
        name = signal.Signals(signum).name
        requeued = signum == signal.SIGUSR1 and trainer.is_global_zero and requeue_slurm_job()
        saved = (f"saved {checkpoint} at step {trainer.global_step}" if checkpoint is not None
                 else "this run keeps no checkpoints")
        then = ("SLURM requeued the job, whose same command continues it" if requeued
                else "run the same command with --resume auto to continue")
        raise TrainingStopped(f"stopped by {name}: {saved}; {then}.", signum, report=trainer.is_global_zero)


def requeue_slurm_job() -> bool:
    """Ask SLURM to requeue this job (`scontrol requeue`), inside a SLURM job; whether it did."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        return subprocess.run(["scontrol", "requeue", job], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def best_checkpoint_callback(model: MNISTModule) -> ModelCheckpoint:
    """Keeps last.ckpt and the best checkpoint by the model's `checkpoint_monitor`, named after
    its value (epoch011-val_acc0.9975.ckpt); a model without one gets epoch-named checkpoints."""
    common: dict[str, Any] = {"save_last": False, "auto_insert_metric_name": False, "enable_version_counter": False}
    monitor = model.checkpoint_monitor
    if monitor is None:
        return ModelCheckpoint(filename="epoch{epoch:03d}", **common)
    return ModelCheckpoint(monitor=monitor, mode=model.checkpoint_mode,
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
        datamodule = getattr(trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "drop_last"):
            datamodule.drop_last = True

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
