"""A training run: the one shared Trainer, and the run it drives (fit, test the best checkpoint,
save and return the results)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import lightning as L
import torch
import yaml
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import SimpleProfiler

from .callbacks import (BestValidation, CompiledTraining, LastCheckpoint, ProcessState, ProgressBar, SampleQuality,
                        StopOnSignal, best_checkpoint_callback)
from .checkpoints import AtomicCheckpointIO, check_resumable, read_checkpoint, remove_unfinished_writes
from .config import as_typed, section_defaults
from .data import MNISTDataModule
from .environment import hide_lightning_chatter, quiet_warnings
from .errors import ArgumentError, UserError, first_line
from .loggers import GraphLogger, wait_to_sort_after_events_in
from .module import MNISTModule
from .outputs import output_folder, removed_if_failed
from .registry import model_class
from .runs import (CHECKPOINTS, CONFIG_FILE, LAST_CHECKPOINT, RESULTS_FILE, RESUME_AUTO, logger_location,
                   run_dir_of, run_folder, run_to_continue)


T = TypeVar("T")


def check_accelerator(accelerator: str) -> None:
    """Fail early, in one line, when a GPU is asked for on a machine without one."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"--accelerator {accelerator} was asked for, but PyTorch sees no CUDA GPU on "
                        "this machine (torch.cuda.is_available() is False). Use --accelerator cpu, "
                        "or --accelerator auto to take a GPU only where there is one.")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--accelerator mps was asked for, but Apple's MPS is not available here. "
                        "Use --accelerator cpu or auto.")


class AgreeingTrainer(L.Trainer):
    """lightning.Trainer whose checkpoint writes end the same way on every process: where the
    first process fails to write one (a full disk), all of them stop with its UserError, instead
    of the others waiting for it at Lightning's barrier and then failing with a traceback."""

    def save_checkpoint(self, filepath: str | Path, weights_only: bool | None = None,
                        storage_options: Any | None = None) -> None:
        failure: UserError | None = None
        try:
            super().save_checkpoint(filepath, weights_only, storage_options)
        except UserError as err:  # (only the first process writes)
            if self.world_size == 1:
                raise
            failure = err
            self.strategy.barrier("Trainer.save_checkpoint")  # where the others wait for the write
        if self.world_size > 1:
            said = self.strategy.broadcast(str(failure) if failure is not None else None)
            if failure is not None:
                raise failure
            if said is not None:
                raise UserError(said, report=False)


def build_trainer(model: MNISTModule, logger: Logger | list[Logger] | bool, checkpoint_every_n_steps: int = 0,
                  extra_callbacks: list[L.Callback] | None = None, **trainer_args: Any) -> L.Trainer:
    """A Trainer with mnist-pl's checkpoints and progress bar, logging to `logger` (a logger or a
    list, the first of which holds the run directory; False: none).

    What depends on the model comes from the model (see MNISTModule). Checkpoints go in the run
    directory's `checkpoints/` folder: the best by the model's `checkpoint_monitor`, and
    `last.ckpt` at the start of every epoch, at the end of training and, if
    `checkpoint_every_n_steps` is set, every that many training steps, so that a crash loses at
    most those steps. Every checkpoint is written to a temporary file first and renamed into
    place; a write that fails stops every process of the run (AgreeingTrainer).
    `trainer_args` go to lightning.Trainer; `enable_checkpointing=False` and
    `enable_progress_bar=False` leave out those callbacks.
    """
    check_accelerator(str(trainer_args.get("accelerator", "auto")))
    hide_lightning_chatter()
    strategy = trainer_args.get("strategy")
    if model.ddp_find_unused_parameters and strategy in ("ddp", "ddp_spawn", "ddp_fork"):
        # the variant of DDP that expects parameters without gradients in a step
        trainer_args["strategy"] = f"{strategy}_find_unused_parameters_true"
    callbacks: list[L.Callback] = [ProcessState()]
    if trainer_args.get("enable_progress_bar", True):
        callbacks.append(ProgressBar(refresh_rate=10))
    if trainer_args.get("fast_dev_run"):
        # a smoke test saves nothing (Lightning would still write last.ckpt into the cwd)
        trainer_args["enable_checkpointing"] = False
    if trainer_args.get("enable_checkpointing", True):
        last = LastCheckpoint(checkpoint_every_n_steps)
        callbacks += [best_checkpoint_callback(model), last, StopOnSignal(last)]
    if logger and model.logs_learning_rate():
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # StopOnSignal saves last.ckpt and requeues; Lightning's auto-requeue would write a
        # checkpoint of its own and, in the requeued job, resume from it over --resume
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return AgreeingTrainer(logger=logger, callbacks=callbacks + list(extra_callbacks or []), plugins=plugins,
                           **trainer_args)


def train(model: str, config: dict[str, Any], resume: str | Path | None = None,
          sources: dict[str, str] | None = None, *, callbacks: list[L.Callback] | None = None,
          logger: Logger | list[Logger] | None = None, progress_bar: bool = True) -> dict[str, Any]:
    """Train `model` (a registered name, or "module:Class" of your own) with a config from
    `load_config`; return (and save) the results.

    `resume` is a checkpoint to continue from: model, optimisers, schedules, epoch and step
    are restored, and a checkpoint of a train.py run keeps logging into that run's directory.
    `resume="auto"` continues the newest run under the config's logdir that trains this config
    (runs.run_to_continue) from its last.ckpt, or starts a new run where there is none; a run
    that finished already is not trained again: its saved results come back, with
    "finished_before": True.
    `sources` (from load_config) says where each key came from, for error messages. A run that
    fails before its first checkpoint leaves no run directory behind.

    For research loops: `callbacks` are added to the Trainer's own; `logger` (one Lightning
    logger or a list) is used in addition to the run's TensorBoard logger, which stays first and
    keeps the run directory (checkpoints, config.yaml, results.json); `progress_bar=False` shows
    no progress bars (as `trainer.enable_progress_bar: false` in the config does). The results
    hold `best_validation`: the best value of the model's `checkpoint_monitor` during fit and its
    epoch (counted from 0, as in the checkpoint's name), or None for a model without a monitor.
    """
    with quiet_warnings(), contextlib.ExitStack() as cleanup:
        return _train(model, config, resume, sources or {}, cleanup, list(callbacks or []),
                      [logger] if isinstance(logger, Logger) else list(logger or []), progress_bar)


def built(what: str, section: str, config: dict[str, Any], sources: dict[str, str], make: Callable[[], T]) -> T:
    """`make()`, with any error turned into one naming the config keys of `section` it came
    from: those an ArgumentError names (arguments that do not fit together; load_config checked
    each alone), else those the message names, else those the user set. Other UserErrors pass."""
    try:
        return make()
    except ArgumentError as err:
        named = ", ".join(f"{section}.{name}={as_typed(value)} "
                          f"(from {sources.get(f'{section}.{name}', 'the defaults')})" for name, value in err.arguments.items())
        raise UserError(f"{named}: {err.problem}") from None
    except UserError:
        raise
    except Exception as err:
        text = first_line(err)
        keys = [f"{section}.{k}" for k in config[section] if re.search(rf"\b{re.escape(k)}\b", text)]
        keys = keys or [k for k in sources if k.startswith(f"{section}.")]
        blamed = ", ".join(f"{k}={config[section][k.partition('.')[2]]!r} (from {sources.get(k, 'the defaults')})"
                           for k in keys)
        raise UserError(f"the {what} cannot be built from the {section} section of the config "
                        f"({type(err).__name__}: {text or 'no message'}); "
                        + (f"check {blamed}." if blamed else f"check the {section} keys.")) from None


def _train(model_name: str, config: dict[str, Any], resume: str | Path | None, sources: dict[str, str],
           cleanup: contextlib.ExitStack, callbacks: list[L.Callback], loggers: list[Logger],
           progress_bar: bool) -> dict[str, Any]:
    started = time.time()
    L.seed_everything(config["seed"], workers=True, verbose=False)
    # the run's seed fixes the validation split and the noise of samples too, unless set apart
    known = section_defaults(model_name)
    for section, key in (("data", "split_seed"), ("model", "sample_seed"), ("quality", "seed")):
        if key in known[section] and config[section].get(key) is None:
            config[section][key] = config["seed"]
    model_type = model_class(model_name)
    if not issubclass(model_type, MNISTModule):
        raise UserError(f"model {model_name}: {model_type.__name__} is a LightningModule, but train() needs the "
                        "rules of its run (best checkpoint's metric, data normalisation, ...): derive it from "
                        "mnist_pl.MNISTModule, or from ImageClassifier for a classifier.")
    model = built("model", "model", config, sources, lambda: model_type(**config["model"]))
    datamodule = built("data module", "data", config, sources, lambda: MNISTDataModule(**config["data"]))
    datamodule.check_data()  # before any run directory is made
    model.check_datamodule(datamodule)  # (again at fit) before any run directory is made
    if not config["trainer"].get("fast_dev_run"):
        output_folder(config["logdir"], "--logdir")
    logger_args: dict[str, Any] = {"save_dir": config["logdir"], "name": run_folder(model_name)}
    if resume == RESUME_AUTO:
        run = run_to_continue(config["logdir"], model_name, config)
        if run is not None and run.finished:
            return {**json.loads((run.directory / RESULTS_FILE).read_text()), "finished_before": True}
        resume = run.last_checkpoint if run is not None else None
        if run is not None and resume is None:
            # killed before its first checkpoint: start again in its directory, where TensorBoard
            # drops the killed start's events (every step of the new start purges them)
            logger_args = {**logger_location(run.directory), "purge_step": 0}
            wait_to_sort_after_events_in(run.directory)
    if resume is not None:
        resume = Path(resume)
        checkpoint = read_checkpoint(resume)
        check_resumable(checkpoint, resume, model_name, config)
        resumed_run = run_dir_of(resume)
        if resumed_run is not None:
            # the same run directory; events past the checkpoint's step (written before the
            # crash) are purged, so TensorBoard shows neither gaps nor duplicated steps
            logger_args = {**logger_location(resumed_run), "purge_step": checkpoint["global_step"]}
            wait_to_sort_after_events_in(resumed_run)
        del checkpoint
    logger = GraphLogger(default_hp_metric=False, log_graph=True, **logger_args)
    run_dir = Path(logger.log_dir) if not config["trainer"].get("fast_dev_run") else None
    profiler = SimpleProfiler(dirpath=run_dir, filename="profile") if config["profile"] else None
    # sample quality is scored only when an evaluator is configured
    quality = (built("sample-quality callback", "quality", config, sources, lambda: SampleQuality(**config["quality"]))
               if config["quality"].get("evaluator_checkpoint") else None)
    best_validation = (BestValidation(model.checkpoint_monitor, model.checkpoint_mode)
                       if model.checkpoint_monitor is not None else None)
    compiled = CompiledTraining(config["compile"]) if config["compile"] else None
    trainer_args = dict(config["trainer"])
    trainer_args["enable_progress_bar"] = progress_bar and trainer_args.get("enable_progress_bar", True) is not False
    extra_callbacks = [c for c in (quality, best_validation, compiled) if c is not None] + callbacks
    trainer = built("Trainer", "trainer", config, sources, lambda: build_trainer(
        model, [logger, *loggers] if loggers else logger, config["checkpoint_every_n_steps"], profiler=profiler,
        extra_callbacks=extra_callbacks, **trainer_args))
    # a run that fails before its first checkpoint leaves no run directory
    cleanup.enter_context(removed_if_failed(run_dir if trainer.is_global_zero else None, f"{CHECKPOINTS}/*.ckpt"))
    if run_dir is not None and trainer.is_global_zero:
        remove_unfinished_writes(run_dir / CHECKPOINTS)  # of a killed start of this run
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))

    trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    checkpointer = trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None
    best = checkpointer.best_model_path if checkpointer is not None else ""
    results: dict[str, Any] = {
        "model": model_name,
        "resumed_from": str(resume) if resume else None,
        "dataset": datamodule.dataset,
        "data_dir": str(datamodule.data_dir),
        "run_dir": str(run_dir) if run_dir else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_checkpoint": best or None,
        "last_checkpoint": (str(Path(checkpointer.dirpath) / LAST_CHECKPOINT)
                            if checkpointer is not None and checkpointer.dirpath and run_dir else None),
        "best_validation": best_validation.result() if best_validation is not None else None,
    }
    results.update(model.finish_run(trainer, datamodule, best or None, run_dir))
    if quality is not None and quality.last_quality is not None and run_dir is not None and trainer.is_global_zero:
        results["quality"] = quality.last_quality  # scored at the last validation epoch
    if run_dir is not None:
        # the HPARAMS tab compares runs: every hyperparameter beside the numbers that judge them
        final = results.get("test") or {k: float(v) for k, v in trainer.callback_metrics.items()
                                         if k.endswith("_epoch")}
        best_so_far = results["best_validation"]
        if best_so_far and best_so_far["value"] is not None:  # what a sweep chooses by
            final = {**final, f"best_{best_so_far['metric']}": best_so_far["value"]}
        logger.log_hyperparams(logger.hparams, metrics={f"hparams/{k.replace('/', '_')}": v for k, v in final.items()})
        logger.finalize("success")  # fit and test closed the writer already: flush again
    if profiler is not None and run_dir is not None:
        results["profile"] = str(run_dir / "fit-profile.txt")
    results["seconds"] = round(time.time() - started, 1)
    if compiled is not None:  # (inside "seconds")
        results["compile_seconds"] = round(compiled.compile_seconds(), 1)
    results["tensorboard"] = f"tensorboard --logdir {run_dir}" if run_dir else None
    if run_dir is not None and trainer.is_global_zero:
        (run_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    return results
