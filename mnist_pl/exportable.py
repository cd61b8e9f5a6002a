"""What a model exports: its network wrapped to run outside mnist-pl (raw pixels in and class
probabilities out, or noise in and pixels out), with example inputs and metadata. Each model's
`exportable()` builds one; mnist_pl.export writes it as ONNX or TorchScript."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .normalization import Normalization


class PixelsToProbabilities(nn.Module):
    """A classifier network with its input normalisation and softmax built in: raw images
    [N, 28, 28] of uint8 (0-255, a light digit on black, as in MNIST's files) -> probabilities."""

    def __init__(self, net: nn.Module, normalization: Normalization):
        super().__init__()
        self.net, self.normalization = net, normalization

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalization.from_bytes(images)[:, None]).softmax(-1)


class NoiseToPixels(nn.Module):
    """A generator whose images are mapped from its training normalisation back to [0, 1]."""

    def __init__(self, generator: nn.Module, normalization: Normalization):
        super().__init__()
        self.generator, self.normalization = generator, normalization

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.normalization.undo(self.generator(noise, labels))


@dataclass
class Exportable:
    """A network ready to be written as ONNX or TorchScript (see mnist_pl.export)."""

    module: nn.Module  # in eval mode, on the CPU
    inputs: dict[str, torch.Tensor]  # name -> an example batch; the first axis is the batch
    output: str  # the output's name
    metadata: dict[str, str] = field(default_factory=dict)  # what the inputs and output hold
