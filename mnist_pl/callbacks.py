"""SampleQuality: sample-quality numbers of a generative model, scored during training.

train() adds it when the config's `quality` section names an evaluator checkpoint; the section
mirrors its constructor, as `data`, `model` and `trainer` mirror theirs:

    quality:
      evaluator_checkpoint: runs/cnn/version_0/checkpoints/epoch005-val_acc0.9910.ckpt
      num_samples: 1000
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from .checkpoints import load_evaluator
from .errors import UserError
from .quality import Evaluator, sample_quality
from .rules import at_least, check_arguments


class SampleQuality(L.Callback):
    """After every validation epoch, scores `num_samples` samples of the model with a trained
    classifier (mnist_pl.quality: classifier score, Fréchet distance to the held-out real images
    of the validation split, class fractions, conditional accuracy). They go to TensorBoard as
    "quality/..." (and a histogram of the predicted classes); `last_quality` keeps the last ones.

    The model must draw samples as the GAN does: `sample(num, generator=...)` and
    `make_labels(num)` (None for an unconditional model).

    Args:
        evaluator_checkpoint: a classifier checkpoint trained by mnist-pl (e.g. the CNN, trained
            with label_smoothing 0); None scores nothing.
        num_samples: samples scored each epoch.
        seed: seed of the samples' noise, the same every epoch (None: 0; train() passes the
            run's seed).
    """

    CONFIG_RULES = {"num_samples": at_least(1)}  # checked in configs (config.py) and below

    def __init__(self, evaluator_checkpoint: str | None = None, num_samples: int = 1000, seed: int | None = None):
        check_arguments(SampleQuality, num_samples=num_samples)
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
        labels = pl_module.make_labels(self.num_samples)
        images = pl_module.sample(self.num_samples, generator=torch.Generator().manual_seed(self.seed))
        quality = sample_quality(self.evaluator, images, real=real, labels=labels)
        self.last_quality = quality
        pl_module.log_dict({f"quality/{k}": float(v) for k, v in quality.items() if not isinstance(v, list)})
        experiment = getattr(pl_module.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_histogram"):
            predicted = torch.tensor([c for c, share in enumerate(quality["class_fractions"])
                                      for _ in range(round(share * len(images)))])
            experiment.add_histogram("quality/predicted_class", predicted, pl_module.current_epoch,
                                     bins=torch.arange(self.evaluator.num_classes + 1).float() - 0.5)
