"""The one shared Trainer and the run it drives: fit, test the best checkpoint, save results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torchvision
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from .classifier import ImageClassifier
from .config import MODELS
from .data import MNISTDataModule
from .errors import UserError
from .gan import GAN


def check_accelerator(accelerator: str) -> None:
    """Fail early, in one line, when a GPU is asked for on a machine without one."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"--accelerator {accelerator} was asked for, but PyTorch sees no CUDA GPU on "
                        "this machine (torch.cuda.is_available() is False). Use --accelerator cpu, "
                        "or --accelerator auto to take a GPU only where there is one.")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--accelerator mps was asked for, but Apple's MPS is not available here. "
                        "Use --accelerator cpu or auto.")


def build_trainer(model: L.LightningModule, logdir: str, name: str, **trainer_args: Any) -> L.Trainer:
    """A Trainer with mnist-pl's logger, checkpoints and progress bar.

    TensorBoard gets one run directory per run, `logdir/name/version_N`; checkpoints go in its
    `checkpoints/` folder: the best by validation accuracy for classifiers, and always `last.ckpt`.
    """
    check_accelerator(str(trainer_args.get("accelerator", "auto")))
    logger = TensorBoardLogger(logdir, name=name, default_hp_metric=False)
    if isinstance(model, ImageClassifier):
        checkpoint = ModelCheckpoint(monitor="val/acc", mode="max", save_last=True,
                                     filename="epoch{epoch:03d}-val_acc{val/acc:.4f}",
                                     auto_insert_metric_name=False)
    else:
        checkpoint = ModelCheckpoint(save_last=True, filename="epoch{epoch:03d}", auto_insert_metric_name=False)
    callbacks: list[L.Callback] = [checkpoint, TQDMProgressBar(refresh_rate=10)]
    if isinstance(model, ImageClassifier) and model.hparams.scheduler != "none":
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return L.Trainer(logger=logger, callbacks=callbacks, **trainer_args)


def train(model_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Train `model_name` with a config from `load_config`; return (and save) the results."""
    started = time.time()
    L.seed_everything(config["seed"], workers=True, verbose=False)
    model = MODELS[model_name](**config["model"])
    datamodule = MNISTDataModule(**config["data"])
    if isinstance(model, GAN) and datamodule.normalize != "symmetric":
        raise UserError("the GAN's generator draws in [-1, 1], so its data must be normalised the same "
                        "way: set data.normalize: symmetric (as configs/gan.yaml does).")
    trainer = build_trainer(model, config["logdir"], model_name, **config["trainer"])
    run_dir = Path(trainer.logger.log_dir) if not trainer.fast_dev_run else None
    if run_dir is not None and trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"model_name": model_name, **config}, sort_keys=False))

    trainer.fit(model, datamodule=datamodule)
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    results: dict[str, Any] = {
        "model": model_name,
        "dataset": datamodule.dataset,
        "data_dir": str(datamodule.data_dir),
        "run_dir": str(run_dir) if run_dir else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_checkpoint": best or None,
        "last_checkpoint": (str(Path(checkpoint.dirpath) / "last.ckpt")
                            if checkpoint is not None and checkpoint.dirpath and run_dir else None),
    }
    if isinstance(model, ImageClassifier):
        # test the weights that validated best, not whatever the last epoch left
        metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        results["test"] = {k: round(float(v), 6) for k, v in metrics[0].items()}
    elif run_dir is not None and trainer.is_global_zero:
        samples = run_dir / "samples.png"
        torchvision.utils.save_image(model.sample_grid(), samples)
        results["samples"] = str(samples)
        if model.last_quality is not None:  # scored by the evaluator at the last epoch
            results["quality"] = model.last_quality
    results["seconds"] = round(time.time() - started, 1)
    results["tensorboard"] = f"tensorboard --logdir {run_dir}" if run_dir else None
    if run_dir is not None and trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def format_results(results: dict[str, Any]) -> str:
    """The summary printed at the end of a run."""
    lines = [f"Model:            {results['model']} on {results['dataset']} ({results['epochs']} epochs, "
             f"{results['global_step']} steps, {results['seconds']} s)"]
    for key, value in results.get("test", {}).items():
        lines.append(f"{key + ':':<18}{value:.4f}")
    if results.get("samples"):
        lines.append(f"Generated digits: {results['samples']}")
    if results.get("quality"):
        lines.append("Sample quality:   " + ", ".join(f"{k} {v:.3f}" for k, v in results["quality"].items()
                                                      if not isinstance(v, list)))
    lines.append(f"Best checkpoint:  {results['best_checkpoint'] or '(none: fast_dev_run saves none)'}")
    if results["run_dir"]:
        lines.append(f"Run directory:    {results['run_dir']}")
        lines.append(f"Results:          {Path(results['run_dir']) / 'results.json'}")
        lines.append(f"Watch it:         {results['tensorboard']}")
    return "\n".join(lines)
