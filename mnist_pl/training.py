"""The one shared Trainer and the run it drives: fit, test the best checkpoint, save results."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import platform
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.profilers import SimpleProfiler

from .checkpoints import AtomicCheckpointIO, check_resumable, read_checkpoint, run_dir_of
from .callbacks import SampleQuality
from .compiling import compile_mode, compile_model, eager_networks
from .config import MODELS, section_defaults
from .data import MNISTDataModule
from .errors import UserError
from .module import MNISTModule


T = TypeVar("T")


class ProgressBar(TQDMProgressBar):
    """The TQDM bar, showing the module's `running_metrics()` (its training losses) as it redraws.

    Logging with prog_bar=True would copy those values to the host after every step, a GPU
    sync each time; reading them here costs one copy per redraw.
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        if hasattr(pl_module, "running_metrics"):
            items.update({key: f"{value:.3f}" for key, value in pl_module.running_metrics().items()})
        return items


class RandomState(L.Callback):
    """Saves torch's random generators in checkpoints and restores them on resume, so that the
    dropout and augmentation after a resume draw what the uninterrupted run would have."""

    def state_dict(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state()}
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
        folder = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        if folder:
            # the steps logged so far reach the disk with the checkpoint: a run resumed from it
            # continues TensorBoard's curves without a gap where buffered events were lost
            for logger in trainer.loggers:
                logger.save()
            trainer.save_checkpoint(Path(folder) / "last.ckpt")


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MB for reuse instead of handing them back.

    By default glibc returns large freed blocks to the kernel and the next step's tensors of the
    same size fault every page back in: on this project's 2-core CPU a CNN step spent 10-25% of
    its time in page faults, a different share in each process. Kept, they cost no memory beyond
    the training's own peak. Process-wide, so train.py calls it (call it yourself in your own
    scripts); returns False, changing nothing, where the C library is not glibc (macOS, Windows).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    # blocks below 32 MB (glibc's largest mmap threshold) from the heap; no trimming below 1 GB free
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))


# Lightning's lines that tell a user nothing to act on: which hardware it saw (and did not use),
# that fit stopped at max_epochs, that test reloaded the best checkpoint (the summary names it),
# and its adverts for a cloud service. Its warnings and errors still show.
_CHATTER = re.compile(r"^\s*((GPU|TPU|HPU|IPU) available:|LOCAL_RANK: \d+ - |`Trainer\.fit` stopped: "
                      r"|Restoring states from the checkpoint path|Loaded model weights from the checkpoint)"
                      r"|Tip:.*(litlogger|litmodels)")
# warnings that are Lightning's and torch's business, or wrong for mnist-pl: its classifiers and
# GAN log their step losses every log_every_n_steps steps across epochs, however short an epoch
_IGNORED_WARNINGS = [
    dict(message=r"The number of training batches \(\d+\) is smaller than the logging interval"),
    *(dict(category=category, module=module) for category in (DeprecationWarning, FutureWarning)
      for module in (r"lightning(_fabric|_utilities)?\.", r"torch\.", r"torchmetrics\.")),
]


class _NoChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _CHATTER.search(record.getMessage())


def hide_lightning_chatter() -> None:
    """Keep Lightning's informational lines that a user cannot act on (see _CHATTER) out of the
    output of every Trainer in this process (idempotent); its warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoChatter) for f in log.filters):
            log.addFilter(_NoChatter())


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Hide, inside the block, the warnings of _IGNORED_WARNINGS (library deprecations a user
    cannot act on); every other warning still shows."""
    with warnings.catch_warnings():
        for spec in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", **spec)
        yield


@contextlib.contextmanager
def removed_if_failed(run_dir: Path | None) -> Iterator[None]:
    """Remove the folders this run makes for `run_dir` if the block fails before any checkpoint
    is written, so that a failed run leaves no empty version_N (and the next run takes its
    number). Folders that existed before are never removed, nor a run that saved a checkpoint."""
    made = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()] if run_dir else []
    try:
        yield
    except Exception:
        if made and not any(run_dir.glob("checkpoints/*.ckpt")):
            shutil.rmtree(made[-1], ignore_errors=True)  # the outermost folder this run made
        raise


def check_accelerator(accelerator: str) -> None:
    """Fail early, in one line, when a GPU is asked for on a machine without one."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"--accelerator {accelerator} was asked for, but PyTorch sees no CUDA GPU on "
                        "this machine (torch.cuda.is_available() is False). Use --accelerator cpu, "
                        "or --accelerator auto to take a GPU only where there is one.")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--accelerator mps was asked for, but Apple's MPS is not available here. "
                        "Use --accelerator cpu or auto.")


class GraphLogger(TensorBoardLogger):
    """A TensorBoardLogger that puts the model graph in TensorBoard's Graphs tab once per run.

    The graph is traced from the model's example_input_array in eval mode (so that the trace
    leaves batch-norm statistics alone), without the deprecation warnings of torch.jit's tracer,
    which tell a user nothing they can act on.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._graph_logged = False

    def log_graph(self, model: L.LightningModule, input_array: torch.Tensor | None = None) -> None:
        if self._graph_logged:  # trainer.test after trainer.fit would log it a second time
            return
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", r".*torch\.jit\.trace.* is deprecated", FutureWarning)
                # the tracer reads every attribute of the torchmetrics metrics, deprecated ones too
                warnings.filterwarnings("ignore", r".*Metric\.updated_called", DeprecationWarning)
                with eager_networks(model):  # the tracer refuses compiled networks
                    super().log_graph(model, input_array)
        finally:
            model.train(was_training)
        self._graph_logged = True


def build_trainer(model: MNISTModule, logger: TensorBoardLogger | bool, checkpoint_every_n_steps: int = 0,
                  extra_callbacks: list[L.Callback] | None = None, **trainer_args: Any) -> L.Trainer:
    """A Trainer with mnist-pl's checkpoints and progress bar, logging to `logger` (False: none).

    What depends on the model comes from the model (see MNISTModule). Checkpoints go in the run
    directory's `checkpoints/` folder: the best by the model's `checkpoint_monitor`, and
    `last.ckpt` at the end of every epoch and, if `checkpoint_every_n_steps` is set, every that
    many training steps, so that a crash loses at most those steps. Every
    checkpoint is written to a temporary file first and renamed into place. `trainer_args` go to
    lightning.Trainer; `enable_checkpointing=False` and `enable_progress_bar=False` leave out
    those callbacks.
    """
    check_accelerator(str(trainer_args.get("accelerator", "auto")))
    hide_lightning_chatter()
    strategy = trainer_args.get("strategy")
    if model.ddp_find_unused_parameters and strategy in ("ddp", "ddp_spawn", "ddp_fork"):
        # the variant of DDP that expects parameters without gradients in a step
        trainer_args["strategy"] = f"{strategy}_find_unused_parameters_true"
    callbacks: list[L.Callback] = [RandomState()]
    if trainer_args.get("enable_progress_bar", True):
        callbacks.append(ProgressBar(refresh_rate=10))
    if trainer_args.get("fast_dev_run"):
        # a smoke test saves nothing (Lightning would still write last.ckpt into the cwd)
        trainer_args["enable_checkpointing"] = False
    if trainer_args.get("enable_checkpointing", True):
        callbacks.append(best_checkpoint_callback(model))
        if checkpoint_every_n_steps:
            callbacks.append(LastEveryNSteps(checkpoint_every_n_steps))
    if logger and model.logs_learning_rate():
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return L.Trainer(logger=logger, callbacks=callbacks + list(extra_callbacks or []),
                     plugins=[AtomicCheckpointIO()], **trainer_args)


def best_checkpoint_callback(model: MNISTModule) -> EpochCheckpoint:
    """Keeps last.ckpt and the best checkpoint by the model's `checkpoint_monitor`, named after
    its value (epoch011-val_acc0.9975.ckpt); a model without one gets epoch-named checkpoints."""
    common = {"save_last": True, "auto_insert_metric_name": False, "enable_version_counter": False}
    monitor = model.checkpoint_monitor
    if monitor is None:
        return EpochCheckpoint(filename="epoch{epoch:03d}", **common)
    return EpochCheckpoint(monitor=monitor, mode=model.checkpoint_mode,
                           filename=f"epoch{{epoch:03d}}-{monitor.replace('/', '_')}{{{monitor}:.4f}}", **common)


def train(model_name: str, config: dict[str, Any], resume: str | Path | None = None,
          sources: dict[str, str] | None = None) -> dict[str, Any]:
    """Train `model_name` with a config from `load_config`; return (and save) the results.

    `resume` is a checkpoint to continue from: model, optimisers, schedules, epoch and step
    are restored, and a checkpoint of a train.py run keeps logging into that run's directory.
    `sources` (from load_config) says where each key came from, for error messages. A run that
    fails before its first checkpoint leaves no run directory behind.
    """
    with quiet_warnings(), contextlib.ExitStack() as cleanup:
        return _train(model_name, config, resume, sources or {}, cleanup)


def built(what: str, section: str, config: dict[str, Any], sources: dict[str, str], make: Callable[[], T]) -> T:
    """`make()`, with any error but a UserError turned into one naming the config keys of
    `section` it most likely came from (the ones its message names, else those the user set)."""
    try:
        return make()
    except UserError:
        raise
    except Exception as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        keys = [f"{section}.{k}" for k in config[section] if re.search(rf"\b{re.escape(k)}\b", text)]
        keys = keys or [k for k in sources if k.startswith(f"{section}.")]
        blamed = ", ".join(f"{k}={config[section][k.partition('.')[2]]!r} (from {sources.get(k, 'the defaults')})"
                           for k in keys)
        raise UserError(f"the {what} cannot be built from the {section} section of the config "
                        f"({type(err).__name__}: {text or 'no message'}); "
                        + (f"check {blamed}." if blamed else f"check the {section} keys.")) from None


def wait_to_sort_after_events_in(run_dir: Path) -> None:
    """Wait, at most a second, until an event file made now sorts after those in `run_dir`.

    TensorBoard reads a run's event files in name order, and a name starts with the second the
    file was made, then the process id: a run resumed within the second of the crash would
    otherwise be read before the crashed one, and its steps drawn out of order."""
    newest = max((int(match.group(1)) for path in run_dir.glob("events.out.tfevents.*")
                  if (match := re.match(r"events\.out\.tfevents\.(\d+)\.", path.name))), default=None)
    if newest is not None and newest >= int(time.time()):
        time.sleep(newest + 1 - time.time())


def _train(model_name: str, config: dict[str, Any], resume: str | Path | None, sources: dict[str, str],
           cleanup: contextlib.ExitStack) -> dict[str, Any]:
    started = time.time()
    L.seed_everything(config["seed"], workers=True, verbose=False)
    # the run's seed fixes the validation split and the noise of samples too, unless set apart
    known = section_defaults(model_name)
    for section, key in (("data", "split_seed"), ("model", "sample_seed"), ("quality", "seed")):
        if key in known[section] and config[section].get(key) is None:
            config[section][key] = config["seed"]
    model = built("model", "model", config, sources, lambda: MODELS[model_name](**config["model"]))
    datamodule = built("data module", "data", config, sources, lambda: MNISTDataModule(**config["data"]))
    datamodule.check_data()  # before any run directory is made
    if model.data_normalize is not None and datamodule.normalize != model.data_normalize:
        raise UserError(f"{model_name} trains on data normalised as {model.data_normalize!r}, not "
                        f"{datamodule.normalize!r}: set data.normalize: {model.data_normalize} (as the shipped "
                        f"configs/{model_name}.yaml does).")
    logger_args: dict[str, Any] = {"save_dir": config["logdir"], "name": model_name}
    if resume is not None:
        resume = Path(resume)
        checkpoint = read_checkpoint(resume)
        check_resumable(checkpoint, resume, model_name, config)
        resumed_run = run_dir_of(resume)
        if resumed_run is not None:
            # the same run directory; events past the checkpoint's step (written before the
            # crash) are purged, so TensorBoard shows neither gaps nor duplicated steps
            logger_args = {"save_dir": resumed_run.parent.parent, "name": resumed_run.parent.name,
                           "version": resumed_run.name, "purge_step": checkpoint["global_step"]}
            wait_to_sort_after_events_in(resumed_run)
        del checkpoint
    logger = GraphLogger(default_hp_metric=False, log_graph=True, **logger_args)
    run_dir = Path(logger.log_dir) if not config["trainer"].get("fast_dev_run") else None
    profiler = SimpleProfiler(dirpath=run_dir, filename="profile") if config["profile"] else None
    # sample quality is scored only when an evaluator is configured
    quality = (built("sample-quality callback", "quality", config, sources, lambda: SampleQuality(**config["quality"]))
               if config["quality"].get("evaluator_checkpoint") else None)
    trainer = built("Trainer", "trainer", config, sources, lambda: build_trainer(
        model, logger, config["checkpoint_every_n_steps"], profiler=profiler,
        extra_callbacks=[quality] if quality else None, **config["trainer"]))
    cleanup.enter_context(removed_if_failed(run_dir if trainer.is_global_zero else None))
    mode = compile_mode(config["compile"], trainer.strategy.root_device)
    if mode is not None:
        compile_model(model, mode)
    if run_dir is not None and trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    results: dict[str, Any] = {
        "model": model_name,
        "resumed_from": str(resume) if resume else None,
        "dataset": datamodule.dataset,
        "data_dir": str(datamodule.data_dir),
        "run_dir": str(run_dir) if run_dir else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_checkpoint": best or None,
        "last_checkpoint": (str(Path(checkpoint.dirpath) / "last.ckpt")
                            if checkpoint is not None and checkpoint.dirpath and run_dir else None),
    }
    results.update(model.finish_run(trainer, datamodule, best or None, run_dir))
    if quality is not None and quality.last_quality is not None and run_dir is not None and trainer.is_global_zero:
        results["quality"] = quality.last_quality  # scored at the last validation epoch
    if run_dir is not None:
        # the HPARAMS tab compares runs: every hyperparameter beside the numbers that judge them
        final = results.get("test") or {k: float(v) for k, v in trainer.callback_metrics.items()
                                         if k.endswith("_epoch")}
        trainer.logger.log_hyperparams(trainer.logger.hparams,
                                       metrics={f"hparams/{k.replace('/', '_')}": v for k, v in final.items()})
        trainer.logger.finalize("success")  # fit and test closed the writer already: flush again
    if profiler is not None:
        results["profile"] = str(run_dir / "fit-profile.txt")
    results["seconds"] = round(time.time() - started, 1)
    results["tensorboard"] = f"tensorboard --logdir {run_dir}" if run_dir else None
    if run_dir is not None and trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def format_results(results: dict[str, Any]) -> str:
    """The summary printed at the end of a run."""
    epochs = f"{results['epochs']} epoch{'' if results['epochs'] == 1 else 's'}"
    lines = [f"Model:            {results['model']} on {results['dataset']} ({epochs}, "
             f"{results['global_step']} steps, {results['seconds']} s)"]
    for key, value in results.get("test", {}).items():
        lines.append(f"{key + ':':<18}{value:.4f}")
    if results.get("profile"):
        lines.append(f"Profile:          {results['profile']}")
    if results.get("samples"):
        lines.append(f"Generated digits: {results['samples']}")
    if results.get("quality"):
        lines.append("Sample quality:   " + ", ".join(f"{k} {v:.3f}" for k, v in results["quality"].items()
                                                      if not isinstance(v, list)))
    if results["best_checkpoint"] or results["run_dir"]:
        lines.append(f"Best checkpoint:  {results['best_checkpoint'] or '(none saved)'}")
    else:
        lines.append("Best checkpoint:  (none: fast_dev_run saves none)")
    if results["run_dir"]:
        lines.append(f"Run directory:    {results['run_dir']}")
        lines.append(f"Results:          {Path(results['run_dir']) / 'results.json'}")
        lines.append(f"Watch it:         {results['tensorboard']}")
    return "\n".join(lines)
