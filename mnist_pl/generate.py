"""Digits on demand from a GAN checkpoint: sample, walk the latent space, save as picture or array.

Only the checkpoint is needed (no data, no config), and the CPU is enough:

    gan = mnist_pl.load_gan("runs/gan/version_0/checkpoints/last.ckpt")
    save_images(gan.sample(64, digit=7, generator=torch.Generator().manual_seed(0)), "sevens.png")
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from .errors import UserError
from .gan import GAN
from .nets import IMAGE_SHAPE

OUTPUT_SUFFIXES = {".png": "image grid", ".jpg": "image grid", ".npy": "NumPy array in [-1, 1]",
                   ".pt": "PyTorch tensor in [-1, 1]"}


def check_output(out: str | Path) -> Path:
    """`out` as a Path if its suffix is one that save_images writes, else a UserError."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        choices = ", ".join(f"{s} ({what})" for s, what in OUTPUT_SUFFIXES.items())
        raise UserError(f"--out {out}: unknown suffix {out.suffix or '(none)'!r}; use one of {choices}.")
    return out


GRID_SIDE = 600  # pictures are enlarged (by whole pixels) until their longer side has at least this


def class_rows(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, int]:
    """`images` laid out for a grid with one row per class (as the GAN's samples.png), in the order
    they were drawn, short rows ended by white tiles; and the row length."""
    per_row = max(int((labels == c).sum()) for c in range(num_classes))
    tiles = torch.ones(num_classes, per_row, *images.shape[1:], dtype=images.dtype)
    for c in range(num_classes):
        mine = images[labels == c]
        tiles[c, :len(mine)] = mine
    return tiles.reshape(-1, *images.shape[1:]), per_row


def save_images(images: torch.Tensor, out: str | Path, nrow: int = 8) -> Path:
    """Save images in [-1, 1]: a grid of `nrow` columns for .png/.jpg (enlarged to a longer side
    of at least GRID_SIDE pixels), the raw values for .npy/.pt."""
    out = check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    images = images.detach().cpu()
    if suffix == ".npy":
        np.save(out, images.numpy())
    elif suffix == ".pt":
        torch.save(images, out)
    else:
        grid_picture(images, nrow).save(out)
    return out


def grid_picture(images: torch.Tensor, nrow: int = 8) -> Image.Image:
    """Images in [-1, 1] ([N, 1, 28, 28], or [rows, steps, 1, 28, 28]) as one greyscale picture,
    `nrow` to a row on a white grid, enlarged by whole pixels to a longer side of at least GRID_SIDE."""
    flat = images.detach().cpu().reshape(-1, *images.shape[-3:])
    grid = torchvision.utils.make_grid(flat, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1)
    scale = max(1, math.ceil(GRID_SIDE / max(grid.shape[-2:])))
    grid = grid[0].repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return Image.fromarray(grid.mul(255).add(0.5).clamp(0, 255).byte().numpy())


def sample_layout(gan: GAN, images: torch.Tensor, digit: int | None) -> tuple[torch.Tensor, int]:
    """Samples laid out for a picture, and the row length: one row per digit when a conditional
    GAN drew every class in turn (as the run's samples.png), else 8 to a row."""
    labels = gan.make_labels(len(images)) if digit is None else None  # None: unconditional
    if labels is not None:
        return class_rows(images, labels, gan.hparams.num_classes)
    return images, 8


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of `a` and `b` [N, D] at fractions `t` [S] -> [N, S, D].

    Gaussian noise lives near a sphere; a straight line between two points cuts through its
    low-norm inside, where a generator has seen no inputs.
    """
    a_unit, b_unit = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # [N, 1]
    sin = torch.sin(omega)
    t = t[None, :]  # [1, S]
    wa, wb = torch.sin((1 - t) * omega) / sin, torch.sin(t * omega) / sin
    return wa[..., None] * a[:, None, :] + wb[..., None] * b[:, None, :]


def interpolation(gan: GAN, rows: int, steps: int, digit: int | None = None,
                  generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
    """`rows` latent walks of `steps` images each, [rows, steps, 1, 28, 28] in [-1, 1].

    A conditional GAN keeps one class along a walk: `digit`, or 0, 1, 2, ... for rows in turn.
    """
    if steps < 2:
        raise UserError(f"--interpolate {steps}: a walk needs at least 2 steps.")
    start = torch.randn(rows, gan.hparams.latent_dim, generator=generator)
    end = torch.randn(rows, gan.hparams.latent_dim, generator=generator)
    noise = slerp(start, end, torch.linspace(0, 1, steps)).reshape(rows * steps, -1)
    labels = gan.make_labels(rows, digit)
    if labels is not None:
        labels = labels.repeat_interleave(steps)
    return gan.generate(noise, labels, use_ema).reshape(rows, steps, *IMAGE_SHAPE)
