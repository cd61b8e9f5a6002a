"""Plain nn.Modules, free of Lightning: the dense classifier, the CNN, and the GAN's two halves.

Each takes 1x28x28 images; the LightningModules in classifier.py and gan.py train them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import UserError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}
IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


def activation(name: str) -> nn.Module:
    """A fresh activation layer by name (see ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Flatten, then Linear -> activation -> dropout for each hidden size, then the class logits."""

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), num_classes: int = 10,
                 dropout: float = 0.2, activation_name: str = "relu"):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), activation(activation_name), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvNet(nn.Module):
    """VGG-style blocks of two 3x3 convolutions (+ batch norm) and a 2x2 max-pool, then a head.

    `channels` gives one block per entry: (32, 64) maps 28x28 -> 14x14 -> 7x7.
    """

    def __init__(self, channels: Sequence[int] = (32, 64), hidden_size: int = 128,
                 num_classes: int = 10, dropout: float = 0.3, batch_norm: bool = True,
                 activation_name: str = "relu"):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, side = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        for out_ch in channels:
            for conv_in in (in_ch, out_ch):
                # the conv bias is redundant when batch norm follows it
                layers.append(nn.Conv2d(conv_in, out_ch, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out_ch))
                layers.append(activation(activation_name))
            layers.append(nn.MaxPool2d(2))
            in_ch, side = out_ch, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_ch * side * side, hidden_size),
            activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Generator(nn.Module):
    """Latent vector -> 1x28x28 image in [-1, 1] (Tanh), fully connected as in the workshop."""

    def __init__(self, latent_dim: int = 64, hidden_sizes: Sequence[int] = (256, 512, 1024)):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.LeakyReLU(0.2)]
            width = size
        layers += [nn.Linear(width, IMAGE_PIXELS), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z).view(-1, *IMAGE_SHAPE)


class Discriminator(nn.Module):
    """1x28x28 image -> one logit (real > 0), fully connected with LeakyReLU and dropout."""

    def __init__(self, hidden_sizes: Sequence[int] = (512, 256), dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = IMAGE_PIXELS
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)
