"""Normalization: how pixel values become a network's input, and back.

One object, built by MNISTDataModule (`datamodule.normalization`) from its data set and its
`normalize` setting, and used wherever images meet a network: the training batches, predict,
the demo, export and the sample-quality scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Normalization:
    """(x - mean) / std for pixels x in [0, 1]; `mean` and `std` are in [0, 1] units."""

    mean: float
    std: float

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float pixels in [0, 1] -> the network's input."""
        return (pixels - self.mean) / self.std

    def from_bytes(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (0-255) -> the network's input, as a new float32 tensor."""
        # one multiply and one subtract, in place on the new copy: batches are cut this way
        return images.to(torch.float32, copy=True).mul_(1 / (255 * self.std)).sub_(self.mean / self.std)

    def undo(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input (or a generator's output) -> pixels in [0, 1]."""
        return (images * self.std + self.mean).clamp(0, 1)


# [-1, 1]: the range of a Tanh generator, in which GANs train and samples are scored
SYMMETRIC = Normalization(0.5, 0.5)
