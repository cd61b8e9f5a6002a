"""Matplotlib figures: labelled image grids, confusion matrices and misclassified images.

Every function returns a Figure, so the same picture can be saved as a PNG (`save_figure`) or
sent to TensorBoard (`SummaryWriter.add_figure`). The figures are made without pyplot: saving
renders them with the Agg canvas, no display is needed, and importing mnist_pl leaves the
backend of a user's notebook alone (and pyplot's list of open figures never grows).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from matplotlib.figure import Figure

from .errors import UserError


def _as_pixels(image: torch.Tensor) -> torch.Tensor:
    """A [H, W] float tensor in [0, 1] from uint8 or float images of shape [H, W] or [1, H, W]."""
    image = image.detach().cpu()
    if image.dim() == 3:
        image = image[0]
    return image.float() / 255 if image.dtype == torch.uint8 else image.float().clamp(0, 1)


def image_grid(images: torch.Tensor | Sequence[torch.Tensor], titles: Sequence[str],
               suptitle: str | None = None, ncols: int | None = None,
               title_colors: Sequence[str] | None = None, cell_inches: float = 1.3) -> Figure:
    """Images [N, 1, H, W] (uint8, or floats in [0, 1]; or a list of images of any sizes) in a
    grid, each with its title above. `title_colors` colours each title.
    """
    n = len(images)
    ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_as_pixels(images[i]).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(titles[i], fontsize=9, color=title_colors[i] if title_colors else "black")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return fig


def single_image(image: torch.Tensor, title: str) -> Figure:
    """One image, large, with pixel axes: the workshop's `plt.imshow(x_train[0])`."""
    fig = Figure(figsize=(4, 4.3))
    ax = fig.subplots()
    shown = ax.imshow(_as_pixels(image).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="pixel value / 255")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix: torch.Tensor, classes: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """A [C, C] count matrix (rows: true class, columns: predicted) with counts in the cells."""
    matrix = matrix.detach().cpu().long()
    size = max(4.5, 0.5 * len(classes) + 2.5)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    # colour by row share so that classes of different sizes compare, annotate with counts
    share = matrix.float() / matrix.sum(1, keepdim=True).clamp(min=1)
    shown = ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = range(len(classes))
    long_names = max(map(len, classes)) > 2  # Fashion-MNIST's names need slanting
    ax.set_xticks(ticks, labels=classes, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center")
    ax.set_yticks(ticks, labels=classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for row in range(len(classes)):
        for col in range(len(classes)):
            if matrix[row, col]:
                ax.text(col, row, str(int(matrix[row, col])), ha="center", va="center", fontsize=8,
                        color="white" if share[row, col] > 0.5 else "black")
    total = int(matrix.sum())
    accuracy = int(matrix.diag().sum()) / max(1, total)
    ax.set_title(f"{title}\n{total} images, accuracy {accuracy:.2%}", fontsize=11)
    fig.tight_layout()
    return fig


def misclassified_figure(images: torch.Tensor, true: Sequence[int], predicted: Sequence[int],
                         confidence: Sequence[float], classes: Sequence[str],
                         title: str = "Misclassified images") -> Figure:
    """Wrongly classified images, each titled "true X / pred Y (p%)", where p is the model's
    probability for its (wrong) prediction."""
    if len(images) == 0:
        fig = Figure(figsize=(4, 1.5))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=11)
        ax.set_title(title, fontsize=11)
        return fig
    titles = [f"true {classes[t]}\npred {classes[p]} ({c:.0%})" for t, p, c in zip(true, predicted, confidence)]
    return image_grid(images, titles, suptitle=title, title_colors=["firebrick"] * len(images),
                      cell_inches=1.5)


def predictions_figure(originals: Sequence[torch.Tensor], inputs: torch.Tensor, names: Sequence[str],
                       verdicts: Sequence[str], pairs_per_row: int = 4) -> Figure:
    """Each image as given next to what the model sees (28x28 after preprocessing), titled with
    its file name and the prediction: this shows whether the preprocessing found the digit."""
    images: list[torch.Tensor] = []
    titles: list[str] = []
    for original, seen, name, verdict in zip(originals, inputs, names, verdicts):
        images += [original, seen]
        titles += [name if len(name) <= 16 else name[:15] + "…", f"-> {verdict}"]
    return image_grid(images, titles, "Your images, and what the model sees", cell_inches=1.5,
                      ncols=2 * min(pairs_per_row, len(names)))


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write `fig` to `path` (format from its extension, PNG by default)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot write the picture {path}: {err}. Choose another --out path "
                        "(ending in .png, .jpg, .svg or .pdf).") from None
    return path
