"""Exercise: a small convolutional network, trained by hand and then by Lightning.

Fill in the three TODOs (the docstrings say what to build), then check your work with

    python -m pytest mnist_pl/exercises

Each test names the part it checks. A worked solution is in solutions/small_cnn.py: try first!
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class SmallCNN(nn.Module):
    """[N, 1, 28, 28] images -> [N, num_classes] logits.

    Build two attributes in __init__:
      self.features:   Conv2d(1, 16, kernel 3, padding 1), ReLU, MaxPool2d(2)   -> [N, 16, 14, 14]
                       Conv2d(16, 32, kernel 3, padding 1), ReLU, MaxPool2d(2)  -> [N, 32, 7, 7]
      self.classifier: Flatten, then Linear(32 * 7 * 7, num_classes)           -> [N, num_classes]
    and let forward() apply the one, then the other.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        # TODO 1: self.features = nn.Sequential(...) and self.classifier = nn.Sequential(...)
        raise NotImplementedError("TODO 1: build SmallCNN's features and classifier (see its docstring)")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # TODO 1 (continued): the features, then the classifier
        raise NotImplementedError("TODO 1: SmallCNN.forward")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor) -> float:
    """One step of gradient descent on the cross-entropy loss; returns that loss as a float.

    The forward pass, the loss (torch.nn.functional.cross_entropy), zeroing the old gradients,
    the backward pass, and the optimiser's step.
    """
    # TODO 2
    raise NotImplementedError("TODO 2: train_step")


class LitSmallCNN(L.LightningModule):
    """SmallCNN as a LightningModule: Lightning runs the loop that train_step did by hand."""

    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = SmallCNN()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Return the cross-entropy loss of the batch (Lightning does the backward pass and the step)."""
        # TODO 3
        raise NotImplementedError("TODO 3: LitSmallCNN.training_step")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """An Adam optimiser over all parameters, with learning rate self.hparams.lr."""
        # TODO 3 (continued)
        raise NotImplementedError("TODO 3: LitSmallCNN.configure_optimizers")
