"""Classifying the user's own images: MNIST-style preprocessing, then the model's probabilities.

MNIST's digits were made by fitting each scanned digit into a 20x20 box (keeping its aspect
ratio, with anti-aliasing) and placing that box in a 28x28 image so that the centre of mass of
its pixels lies at the centre, white ink on black. A photo or drawing of a digit looks nothing
like that until it goes through the same steps, which `preprocess` repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError
from .normalization import Normalization

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BOX, SIDE = 20, 28  # MNIST: digit fitted into 20x20, placed in 28x28
INK_THRESHOLD = 0.25  # share of the ink range that counts as ink when finding the digit
WORK = 4 * BOX  # the digit's longer side while its strokes are measured and thickened
MNIST_STROKE = 2.0  # median stroke width of MNIST's digits, in pixels of the 28x28 image
THUMBNAIL = 112


@dataclass
class Prediction:
    """What the model says about one image file."""

    file: str
    label: int
    name: str
    probabilities: list[float]
    pixels: torch.Tensor  # the preprocessed 28x28 image in [0, 1], white on black
    thumbnail: torch.Tensor  # the image as given, greyscale, at most THUMBNAIL pixels a side

    def as_dict(self) -> dict:
        return {"file": self.file, "label": self.label, "class": self.name,
                "probability": round(self.probabilities[self.label], 6),
                "probabilities": [round(p, 6) for p in self.probabilities]}


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named, with each folder replaced by its PNG and JPEG files (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"folder {path} holds no .png, .jpg or .jpeg files.")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"image {path} does not exist; give PNG or JPEG files, or folders of them.")
    return files


def read_greyscale(path: str | Path) -> torch.Tensor:
    """The image at `path` as a [H, W] float tensor in [0, 1]; transparency counts as white paper."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # phone photos carry their rotation in EXIF
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"image {path} cannot be read as a PNG or JPEG file ({type(err).__name__}); "
                        "it is damaged or not an image.") from None
    return greyscale(image)


def greyscale(image: Image.Image) -> torch.Tensor:
    """A PIL image as a [H, W] float tensor in [0, 1]; transparency counts as white paper."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    grey = image.convert("L")
    return torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).reshape(grey.height, grey.width).float() / 255


def _fit(image: torch.Tensor, side: int) -> torch.Tensor:
    """`image` resized so that its longer side is `side`, keeping the aspect ratio, with
    anti-aliasing (as MNIST's makers did: thin strokes become grey, not gaps); peak ink 1."""
    scale = side / max(image.shape)
    size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    resized = F.interpolate(image[None, None], size=size, mode="bilinear", antialias=True,
                            align_corners=False)[0, 0].clamp(0, 1)
    return resized / resized.max().clamp(min=1e-6)


def stroke_width(ink: torch.Tensor) -> float:
    """The mean width of the strokes in pixels: twice the inked area over the length of its
    boundary, as a stroke of width w and length L covers w*L pixels and has 2*L boundary pixels."""
    inked = F.pad((ink > 0.5).float(), (1, 1, 1, 1))[None, None]
    eroded = -F.max_pool2d(-inked, 3, stride=1, padding=1)
    return float(2 * inked.sum() / (inked - eroded).sum().clamp(min=1))


def thicken(digit: torch.Tensor) -> torch.Tensor:
    """Widen strokes much thinner than MNIST's (a fine pen on a big page shrinks to faint
    hairlines in 20x20) to MNIST's width; `digit`'s longer side is WORK pixels."""
    target = MNIST_STROKE * WORK / BOX
    width = stroke_width(digit)
    radius = round((target - width) / 2)
    if width >= 0.75 * target or radius < 1:
        return digit
    padded = F.pad(digit, (radius,) * 4)[None, None]
    return F.max_pool2d(padded, 2 * radius + 1, stride=1, padding=radius)[0, 0]


def to_mnist_style(grey: torch.Tensor, source: str = "image") -> torch.Tensor:
    """A [H, W] greyscale image in [0, 1] as an MNIST digit: [28, 28] in [0, 1], white on black.

    Steps: make the ink bright (invert when the background is light), stretch ink to full
    brightness and drop faint paper texture, crop to the digit, widen hairline strokes, fit it
    into 20x20 keeping the aspect ratio, and paste it into 28x28 with its centre of mass at the
    centre.
    """
    # the background is the most common tone: the median is paper, whatever the digit's size
    if grey.median() > 0.5:
        grey = 1 - grey
    background, peak = grey.median(), grey.max()
    if peak - background < 0.1:
        raise UserError(f"image {source}: no digit found (it is blank or has almost no contrast).")
    ink = ((grey - background) / (peak - background)).clamp(0, 1)
    ink = torch.where(ink < INK_THRESHOLD / 2, torch.zeros_like(ink), ink)  # paper grain and noise

    rows = (ink > INK_THRESHOLD).any(1).nonzero().flatten()
    cols = (ink > INK_THRESHOLD).any(0).nonzero().flatten()
    digit = ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]

    fitted = _fit(thicken(_fit(digit, WORK)), BOX)
    size = fitted.shape

    # centre of mass to the centre, but never pushing part of the digit off the image
    ys, xs = torch.arange(size[0]).float(), torch.arange(size[1]).float()
    mass = fitted.sum()
    centre_y = float((fitted.sum(1) * ys).sum() / mass) + 0.5
    centre_x = float((fitted.sum(0) * xs).sum() / mass) + 0.5
    top = min(max(round(SIDE / 2 - centre_y), 0), SIDE - size[0])
    left = min(max(round(SIDE / 2 - centre_x), 0), SIDE - size[1])
    canvas = torch.zeros(SIDE, SIDE)
    canvas[top: top + size[0], left: left + size[1]] = fitted
    return canvas


def preprocess(path: str | Path) -> torch.Tensor:
    """The image file at `path` as an MNIST-style [28, 28] digit in [0, 1] (see to_mnist_style)."""
    return to_mnist_style(read_greyscale(path), str(path))


def thumbnail(grey: torch.Tensor, side: int = THUMBNAIL) -> torch.Tensor:
    """A [H, W] image shrunk (never enlarged) to at most `side` pixels a side, for pictures."""
    scale = min(1.0, side / max(grey.shape))
    size = (max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale)))
    return F.interpolate(grey[None, None], size=size, mode="bilinear", antialias=True)[0, 0].clamp(0, 1)


@torch.no_grad()
def classify(model: torch.nn.Module, pixels: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """The class probabilities [N, classes] (on the CPU) of MNIST-style digits `pixels` [N, 28, 28]
    in [0, 1], normalised as the model's training data was (`datamodule.normalization`)."""
    device = next(model.parameters()).device
    return model(normalization(pixels[:, None].to(device))).softmax(-1).cpu()


@torch.no_grad()
def predict_files(model: torch.nn.Module, paths: Sequence[str | Path], normalization: Normalization,
                  classes: Sequence[str]) -> list[Prediction]:
    """Preprocess each image file, normalise it as the model's training data was, and classify it."""
    files = image_files(paths)
    greys = [read_greyscale(path) for path in files]
    pixels = torch.stack([to_mnist_style(grey, str(path)) for grey, path in zip(greys, files)])
    probabilities = classify(model, pixels, normalization)
    return [Prediction(str(path), int(p.argmax()), classes[int(p.argmax())], p.tolist(), image, thumbnail(grey))
            for path, p, image, grey in zip(files, probabilities, pixels, greys)]
