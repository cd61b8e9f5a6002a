"""The classification LightningModule, and its dense and convolutional variants."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Annotated, Any, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from .augment import random_affine, random_erasing, random_flip
from .ema import update_moving_average
from .errors import ArgumentValueError
from .exportable import Exportable, PixelsToProbabilities
from .module import MNISTModule
from .nets import MLP, ActivationName, ConvNet
from .normalization import Normalization
from .optim import OptimizerName, SchedulerName, build_optimizer, build_scheduler, can_fuse
from .rules import arguments_of, at_least, between, check_arguments, positive

# What each argument may be, declared once: ImageClassifier's signature and those of its
# subclasses, which repeat its arguments so that they show, use these (see rules.py)
LearningRate = Annotated[float, positive()]
WeightDecay = Annotated[float, at_least(0)]
Momentum = Annotated[float, between(0, 1)]
StepSize = Annotated[int, at_least(1)]
Gamma = Annotated[float, between(0, 1, low_open=True)]
LabelSmoothing = Annotated[float, between(0, 1, high_open=True)]
EraseProbability = Annotated[float, between(0, 1)]
NumClasses = Annotated[int, at_least(2)]
EveryNEpochs = Annotated[int, at_least(0)]
EmaDecay = Annotated[float, between(0, 1, high_open=True)]
Dropout = Annotated[float, between(0, 1, high_open=True)]
Widths = Annotated[Sequence[int], at_least(1)]


def _displayable(images: torch.Tensor, datamodule: object) -> torch.Tensor:
    """Normalised images back in [0, 1]: by the data module's own statistics where there is
    one, otherwise by stretching each image to its range."""
    if hasattr(datamodule, "denormalize"):
        return datamodule.denormalize(images)
    low = images.amin((1, 2, 3), keepdim=True)
    high = images.amax((1, 2, 3), keepdim=True)
    return (images - low) / (high - low).clamp(min=1e-6)


class ImageClassifier(MNISTModule):
    """Trains `self.net` (set by a subclass) with cross-entropy; logs loss and accuracy.

    Its best checkpoint is the one with the highest validation accuracy, and a finished run
    reports the test metrics of that checkpoint.

    Args:
        optimizer: adam, adamw, sgd, rmsprop or adadelta.
        lr: learning rate (the peak rate for onecycle).
        weight_decay: L2 penalty (decoupled for adamw).
        momentum: for sgd and rmsprop.
        scheduler: none, step, cosine or onecycle.
        step_size, gamma: for the step schedule, in epochs.
        label_smoothing: cross-entropy label smoothing, 0 for none.
        augment: random rotation, shift and scale of training batches.
        flip: mirror training images left-right at random (for clothes, not digits).
        erase: the probability of blanking a random rectangle of each training image.
        num_classes: size of the output layer.
        figures_every_n_epochs: every this many epochs (and after the last), a confusion matrix
            and a grid of misclassified validation images go to TensorBoard; 0 for never.
        ema_decay: keep an exponential moving average of the network's weights (and batch-norm
            statistics), `net_ema`, with this weight of the old average at each optimiser step
            (0 = none). In eval mode the model predicts with the average: validation, test, the
            best checkpoint, evaluate, predict and the demo all use it. The first steps use
            less, (1 + step) / (10 + step), as the GAN's generator average does.
    """

    MISTAKES_SHOWN = 32  # misclassified validation images kept for the figure
    checkpoint_monitor = "val/acc"
    checkpoint_mode = "max"

    net: nn.Module
    ema_steps: torch.Tensor  # a buffer, made by set_net when ema_decay > 0

    def __init__(self, optimizer: OptimizerName = "adam", lr: LearningRate = 1e-3,
                 weight_decay: WeightDecay = 0.0, momentum: Momentum = 0.9, scheduler: SchedulerName = "none",
                 step_size: StepSize = 5, gamma: Gamma = 0.1, label_smoothing: LabelSmoothing = 0.0,
                 augment: bool = False, flip: bool = False, erase: EraseProbability = 0.0,
                 num_classes: NumClasses = 10, figures_every_n_epochs: EveryNEpochs = 5,
                 ema_decay: EmaDecay = 0.0):
        check_arguments(ImageClassifier, locals(), type(self).__name__)
        super().__init__()
        self.save_hyperparameters()
        self.net_ema: nn.Module | None = None  # made by set_net
        self.example_input_array = torch.zeros(1, 1, 28, 28)
        # validate_args would check every batch's labels on the host: a GPU sync per step
        self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(2))
        # no argument checks: they would make each validation step wait for the GPU
        self.val_confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)
        self._mistakes: tuple[torch.Tensor, ...] | None = None  # images, true, predicted, confidence
        self._train_sums, self._train_images = torch.zeros(2), 0  # reset at each epoch's start

    def set_net(self, net: nn.Module) -> None:
        """Make `net` the network this module trains, and its moving average if ema_decay > 0."""
        self.net = net
        if self.hparams.ema_decay > 0:
            # modules and buffers of their own, so checkpoints save and restore the average exactly
            self.net_ema = copy.deepcopy(net).requires_grad_(False)
            self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    @property
    def inference_net(self) -> nn.Module:
        """The network that predicts in eval mode: the moving average if there is one."""
        return self.net_ema if self.net_ema is not None else self.net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of normalised images [N, 1, 28, 28]: by the trained network
        in train mode, by its moving average (if kept) in eval mode."""
        return (self.net if self.training else self.inference_net)(images)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.net_ema is not None:
            update_moving_average(self.net_ema, self.net, self.ema_steps, self.hparams.ema_decay)

    def exportable(self, normalization: Normalization, classes: Sequence[str]) -> Exportable:
        """The network that predicts in eval mode (its moving average, if kept), for use outside
        mnist-pl: raw uint8 images [N, 28, 28] (0-255, light digit on black) in, the class
        probabilities [N, classes] out; the training data's `normalization` built in."""
        module = PixelsToProbabilities(copy.deepcopy(self.inference_net).cpu().eval(), normalization)
        return Exportable(module, {"images": torch.zeros(2, 28, 28, dtype=torch.uint8)}, "probabilities", {
            "input.images": "uint8 [batch, 28, 28], 0-255: light digit on a black background, "
                            "centred as in MNIST (no normalisation needed, it is built in)",
            "output.probabilities": f"float32 [batch, {len(classes)}]: the probability of each class",
            "classes": json.dumps(list(classes))})

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)

    def on_train_epoch_start(self) -> None:
        self.start_epoch_sums(2)  # summed loss and correct predictions of this epoch so far

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        if self.hparams.augment:
            images = random_affine(images)
        if self.hparams.flip:
            images = random_flip(images)
        if self.hparams.erase > 0:
            images = random_erasing(images, self.hparams.erase)
        logits = self(images)
        loss = self._loss(logits, labels)
        # The epoch's loss and accuracy are summed here, on the device, and self.log is called
        # only on the steps the logger records: each call costs Lightning bookkeeping that
        # slows a small network's step noticeably.
        with torch.no_grad():
            correct = (logits.argmax(1) == labels).sum()
            self._train_sums += torch.stack([loss * len(labels), correct.to(loss.dtype)])
        self._train_images += len(labels)
        every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning, not in its hints
        if every > 0 and (self.global_step + 1) % every == 0:
            self.log("train/loss_step", loss)
        return loss

    def _train_means(self) -> torch.Tensor:
        """The epoch's mean training loss and accuracy so far, on the device."""
        return self._train_sums / max(self._train_images, 1)

    def on_train_epoch_end(self) -> None:
        loss, accuracy = self._train_means().unbind()
        self.log_dict({"train/loss_epoch": loss, "train/acc": accuracy}, sync_dist=True)

    def running_metrics(self) -> dict[str, float]:
        """The epoch's mean training loss and accuracy so far, for the progress bar."""
        if not self._train_images:
            return {}
        loss, accuracy = self._train_means().tolist()
        return {"loss": loss, "acc": accuracy}

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str,
                  accuracy: MulticlassAccuracy) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        accuracy(logits, labels)
        self.log(f"{stage}/loss", self._loss(logits, labels), prog_bar=stage == "val", sync_dist=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=stage == "val")
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        logits = self._evaluate(batch, "val", self.val_acc)
        if self._figures_due():
            self.val_confusion.update(logits, batch[1])
            self._keep_mistakes(batch[0], batch[1], logits)

    def _figures_due(self) -> bool:
        """Whether this validation epoch ends with figures for TensorBoard."""
        every, trainer = self.hparams.figures_every_n_epochs, self.trainer
        if every <= 0 or trainer.sanity_checking or not isinstance(self.logger, TensorBoardLogger):
            return False
        epoch = self.current_epoch + 1
        return epoch % every == 0 or epoch == trainer.max_epochs

    def _keep_mistakes(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """Keep the most confident mistakes seen so far, on the device.

        Fixed-size top-k instead of boolean masks, so that no step waits for the GPU: a kept
        entry with confidence -1 was not a mistake and is dropped when the figure is drawn.
        """
        confidence, predicted = logits.detach().softmax(-1).max(1)
        confidence = torch.where(predicted == labels, torch.full_like(confidence, -1.0), confidence)
        batch: tuple[torch.Tensor, ...] = (images.detach(), labels, predicted, confidence)
        if self._mistakes is not None:
            batch = tuple(torch.cat([kept, new]) for kept, new in zip(self._mistakes, batch))
        top = batch[3].topk(min(self.MISTAKES_SHOWN, len(batch[3]))).indices
        self._mistakes = tuple(t[top] for t in batch)

    def on_validation_epoch_end(self) -> None:
        if not self._figures_due():
            return
        matrix = self.val_confusion.compute()  # collective under DDP: every process calls it
        self.val_confusion.reset()
        mistakes, self._mistakes = self._mistakes, None
        if not self.trainer.is_global_zero:  # with several devices, the first one's mistakes are shown
            return
        experiment = self.logger.experiment  # type: ignore[union-attr]  # a TensorBoardLogger (_figures_due)
        from .plots import confusion_matrix_figure, misclassified_figure

        datamodule = getattr(self.trainer, "datamodule", None)
        classes = getattr(datamodule, "classes", None) or [str(c) for c in range(self.hparams.num_classes)]
        title = f"validation, epoch {self.current_epoch}"
        experiment.add_figure("val/confusion_matrix",
                              confusion_matrix_figure(matrix, classes, f"Confusion matrix, {title}"),
                              global_step=self.current_epoch)
        if mistakes is None:
            return
        images, true, predicted, confidence = (t.cpu() for t in mistakes)
        wrong = confidence >= 0
        experiment.add_figure("val/misclassified", misclassified_figure(
            _displayable(images[wrong], datamodule), true[wrong].tolist(), predicted[wrong].tolist(),
            confidence[wrong].tolist(), classes, f"Most confident mistakes, {title}"),
            global_step=self.current_epoch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch[0]).softmax(-1)

    def logs_learning_rate(self) -> bool:
        return self.hparams.scheduler != "none"

    def finish_run(self, trainer: L.Trainer, datamodule: L.LightningDataModule, best_checkpoint: str | None,
                   run_dir: Path | None) -> dict[str, Any]:
        # test the weights that validated best, not whatever the last epoch left
        metrics = trainer.test(self, datamodule=datamodule, ckpt_path=best_checkpoint, verbose=False)
        return {"test": {k: round(float(v), 6) for k, v in metrics[0].items()}}

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(hp.optimizer, self.parameters(), hp.lr, hp.weight_decay, hp.momentum,
                                    fused=can_fuse(self.trainer))
        total_steps = self._total_steps() if hp.scheduler in ("cosine", "onecycle") else 0
        scheduler = build_scheduler(hp.scheduler, optimizer, total_steps, hp.step_size, hp.gamma)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}


    def _total_steps(self) -> int:
        """Optimiser steps in the whole run, for schedules sized to it.

        With an MNISTDataModule this is counted from its training split: Lightning's
        estimated_stepping_batches would load the train loader before a checkpoint is restored,
        and a loader iterated that early cannot resume mid-epoch where it left off.
        """
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if trainer.max_steps > 0 or datamodule is None or getattr(datamodule, "train_set", None) is None:
            return int(trainer.estimated_stepping_batches)
        images = math.ceil(len(datamodule.train_set) / trainer.world_size)  # a process's share under DDP
        cut = math.floor if getattr(datamodule, "drop_last", False) else math.ceil  # the last smaller batch
        batches = cut(images / datamodule.batch_size)
        limit = trainer.limit_train_batches if trainer.limit_train_batches is not None else 1.0
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        return math.ceil(batches / trainer.accumulate_grad_batches) * (trainer.max_epochs or 1)


class DenseClassifier(ImageClassifier):
    """A multilayer perceptron on flattened pixels: the workshop's first model.

    Args:
        hidden_sizes: width of each hidden layer (none: a linear model).
        dropout: dropout after each hidden layer.
        activation: relu, gelu, silu, tanh, leaky_relu or elu.
        batch_norm: batch normalisation after each hidden linear layer.
        optimizer, lr, ...: the optimiser, schedule and loss settings of ImageClassifier.
    """

    def __init__(self, hidden_sizes: Widths = (512, 256), dropout: Dropout = 0.2,
                 activation: ActivationName = "relu", batch_norm: bool = False, *,
                 optimizer: OptimizerName = "adam", lr: LearningRate = 1e-3,
                 weight_decay: WeightDecay = 0.0, momentum: Momentum = 0.9, scheduler: SchedulerName = "none",
                 step_size: StepSize = 5, gamma: Gamma = 0.1, label_smoothing: LabelSmoothing = 0.0,
                 augment: bool = False, flip: bool = False, erase: EraseProbability = 0.0,
                 num_classes: NumClasses = 10, figures_every_n_epochs: EveryNEpochs = 5,
                 ema_decay: EmaDecay = 0.0):
        check_arguments(DenseClassifier, locals(), type(self).__name__)
        super().__init__(**arguments_of(ImageClassifier, locals()))
        self.set_net(MLP(hidden_sizes, num_classes, dropout, activation, batch_norm))


class CNNClassifier(ImageClassifier):
    """A convolutional network: blocks of 3x3 convolutions, batch norm and max-pooling.

    Args:
        channels: output channels of each block (each block halves the image side).
        hidden_size: width of the fully connected layer before the logits.
        dropout: dropout in the head.
        batch_norm: batch normalisation after each convolution.
        activation: relu, gelu, silu, tanh, leaky_relu or elu.
        convs_per_block: 3x3 convolutions in each block: one number for all, or one per block.
        optimizer, lr, ...: the optimiser, schedule and loss settings of ImageClassifier.
    """

    def __init__(self, channels: Widths = (32, 64), hidden_size: Annotated[int, at_least(1)] = 128,
                 dropout: Dropout = 0.3, batch_norm: bool = True, activation: ActivationName = "relu",
                 convs_per_block: Annotated[int | Sequence[int], at_least(1)] = 2, *,
                 optimizer: OptimizerName = "adam", lr: LearningRate = 1e-3,
                 weight_decay: WeightDecay = 0.0, momentum: Momentum = 0.9, scheduler: SchedulerName = "none",
                 step_size: StepSize = 5, gamma: Gamma = 0.1, label_smoothing: LabelSmoothing = 0.0,
                 augment: bool = False, flip: bool = False, erase: EraseProbability = 0.0,
                 num_classes: NumClasses = 10, figures_every_n_epochs: EveryNEpochs = 5,
                 ema_decay: EmaDecay = 0.0):
        check_arguments(CNNClassifier, locals(), type(self).__name__)
        if not isinstance(convs_per_block, int) and len(convs_per_block) != len(channels):
            raise ArgumentValueError(type(self).__name__, {"convs_per_block": convs_per_block, "channels": channels},
                                     f"convs_per_block must be one number, or one for each of the {len(channels)} "
                                     "blocks of channels.")
        super().__init__(**arguments_of(ImageClassifier, locals()))
        # Convolutions run faster on NHWC ("channels last") tensors: cuDNN's, and oneDNN's on a
        # CPU. Set here, not at fit, so that a reloaded checkpoint computes bit for bit the same.
        self.set_net(ConvNet(channels, hidden_size, num_classes, dropout, batch_norm,
                             activation, convs_per_block).to(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images.contiguous(memory_format=torch.channels_last))
