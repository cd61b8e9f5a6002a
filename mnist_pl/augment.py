"""Augmentations of training batches, on the device, a whole batch at once: random affine
warps, left-right flips and random erasing. They work on normalised images, whose background is
the batch's lowest value."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, degrees: float = 5.0, translate: float = 0.1,
                  scale: tuple[float, float] = (0.95, 1.05)) -> torch.Tensor:
    """Rotate, shift and scale each image of a batch at random, all in one grid_sample.

    Mostly shifts (up to 10% of the side), with small turns and zooms: mild enough for
    Fashion-MNIST's upright clothes, which larger turns hurt.

    Normalised images have a non-zero background, so it is shifted to zero around the warp so
    that the pixels the warp brings in match it.
    """
    n, device = images.shape[0], images.device
    angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(degrees)
    zoom = torch.empty(n, device=device).uniform_(*scale)
    shift = (torch.rand(n, 2, device=device) * 2 - 1) * 2 * translate  # grid spans [-1, 1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    background = images.amin()
    return F.grid_sample(images - background, grid, align_corners=False) + background


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2: for clothes, which look the same
    mirrored; not for digits, which do not."""
    flip = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < 0.5
    return torch.where(flip, images.flip(-1), images)


def random_erasing(images: torch.Tensor, probability: float, area: tuple[float, float] = (0.02, 0.33),
                   aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017): with `probability`, blank one rectangle of each image
    (`area` of the image, height/width ratio in `aspect`), for a whole batch at once.

    Unlike torchvision's RandomErasing (one image at a time), a rectangle too tall or too wide
    for the image is clipped to it rather than drawn again, and it is filled with the
    background (the batch's lowest value, as random_affine brings in) rather than with 0.
    """
    n, _, height, width = images.shape
    device = images.device
    fraction = torch.empty(n, device=device).uniform_(*area)
    ratio = torch.empty(n, device=device).uniform_(math.log(aspect[0]), math.log(aspect[1])).exp()
    h = (torch.sqrt(fraction * ratio) * height).round().clamp(1, height)
    w = (torch.sqrt(fraction / ratio) * width).round().clamp(1, width)
    top = (torch.rand(n, device=device) * (height - h + 1)).floor()
    left = (torch.rand(n, device=device) * (width - w + 1)).floor()
    rows = torch.arange(height, device=device).view(1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, -1)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1)))
    erase = (torch.rand(n, device=device) < probability).view(-1, 1, 1) & inside
    return torch.where(erase.unsqueeze(1), images.amin(), images)
