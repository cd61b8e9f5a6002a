"""A worked solution of mnist_pl/exercises/small_cnn.py (same names, TODOs done)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    """[N, 1, 28, 28] images -> [N, num_classes] logits: two conv blocks, Flatten, Linear."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # -> [N, 16, 14, 14]
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # -> [N, 32, 7, 7]
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor) -> float:
    """One step of gradient descent on the cross-entropy loss; returns that loss as a float."""
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()  # gradients add up across backward passes unless cleared
    loss.backward()
    optimizer.step()
    return loss.item()


class LitSmallCNN(L.LightningModule):
    """SmallCNN as a LightningModule: Lightning runs the loop that train_step did by hand."""

    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = SmallCNN()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
