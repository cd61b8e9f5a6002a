"""`predict`: MNIST-style preprocessing of the user's own images, predictions, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from mnist_pl import read_idx, to_mnist_style
from mnist_pl.cli import main
from mnist_pl.predict import preprocess, stroke_width

from conftest import SUBSET, fit_classifier, load_classifier_checkpoint, make_digits


def paper_digit(digit: torch.Tensor, path: Path, seed: int, size=(120, 100)) -> Path:
    """An MNIST digit redrawn as a dark stroke on light, grainy paper: bigger, off-centre, RGB."""
    g = torch.Generator().manual_seed(seed)
    side = int(torch.randint(55, 90, (1,), generator=g))
    ink = F.interpolate(digit.float()[None, None] / 255, size=(side, side), mode="bilinear")[0, 0]
    paper = torch.full(size, 0.92) + 0.03 * torch.randn(size, generator=g)
    top = int(torch.randint(0, size[0] - side + 1, (1,), generator=g))
    left = int(torch.randint(0, size[1] - side + 1, (1,), generator=g))
    region = paper[top:top + side, left:left + side]
    paper[top:top + side, left:left + side] = region * (1 - ink) + 0.12 * ink  # dark pencil
    pixels = (paper.clamp(0, 1) * 255).round().to(torch.uint8)
    Image.fromarray(pixels[..., None].expand(-1, -1, 3).contiguous().numpy()).save(path)
    return path


@pytest.fixture(scope="module")
def paper_digits(tmp_path_factory) -> tuple[Path, list[int]]:
    """20 test-set digits of the real subset as PNGs of dark strokes on white paper, 100x120."""
    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET}")
    images = read_idx(SUBSET / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx(SUBSET / "t10k-labels-idx1-ubyte.gz", 1)
    folder = tmp_path_factory.mktemp("paper")
    for i in range(20):
        paper_digit(images[i], folder / f"digit{i:02d}.png", seed=i)
    return folder, [int(y) for y in labels[:20]]


def test_preprocessing_makes_an_mnist_digit(tmp_path):
    # a dark, tall bar, off in the top left corner of a light 200x150 image
    image = torch.full((200, 150), 0.9)
    image[20:100, 30:50] = 0.1
    digit = to_mnist_style(image)
    assert digit.shape == (28, 28) and digit.max() == 1 and digit.min() == 0
    rows, cols = digit.nonzero().unbind(1)
    assert rows.max() - rows.min() + 1 == 20  # the longer side fills the 20-pixel box
    assert 4 <= cols.max() - cols.min() + 1 <= 6  # and the aspect ratio is kept
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centre = ((digit * ys).sum() / digit.sum() + 0.5, (digit * xs).sum() / digit.sum() + 0.5)
    assert centre == pytest.approx((14, 14), abs=0.5)


def test_hairline_drawings_get_mnist_strokes(tmp_path):
    """A 7 drawn with a 4-pixel pen on a 600x800 page would shrink to faint 0.6-pixel lines."""
    page = Image.new("L", (600, 800), 255)
    ImageDraw.Draw(page).line([(150, 200), (450, 200), (260, 650)], fill=0, width=4)
    page.save(tmp_path / "seven.png")
    digit = preprocess(tmp_path / "seven.png")
    width = stroke_width(F.interpolate(digit[None, None], scale_factor=4, mode="bilinear")[0, 0]) / 4
    assert width > 1.0  # MNIST's strokes are about 2 pixels wide


def test_mnist_digits_survive_preprocessing(paper_digits):
    """MNIST's own digits are already 20x20 in 28x28 by centre of mass: repeating the steps on
    their paper versions gives back images close to them."""
    folder, _ = paper_digits
    originals = read_idx(SUBSET / "t10k-images-idx3-ubyte.gz", 3)[:20].float() / 255
    remade = torch.stack([preprocess(path) for path in sorted(folder.iterdir())])
    similarity = F.cosine_similarity(originals.flatten(1), remade.flatten(1))
    assert similarity.median() > 0.8, similarity


def test_transparent_png_is_paper(tmp_path):
    rgba = torch.zeros(60, 60, 4, dtype=torch.uint8)  # transparent everywhere ...
    rgba[10:50, 25:32] = torch.tensor([0, 0, 0, 255], dtype=torch.uint8)  # ... but a black stroke
    Image.fromarray(rgba.numpy(), "RGBA").save(tmp_path / "one.png")
    digit = preprocess(tmp_path / "one.png")
    assert digit[4:24, 10:18].sum() > 0.9 * digit.sum()  # the stroke, bright, in the middle


def test_paper_digits_are_recognised(subset_cnn_run, paper_digits, tmp_path, capsys):
    """The issue's done-when: at least 18 of 20 paper digits, through the predict command."""
    folder, labels = paper_digits
    assert main(["predict", "--checkpoint", subset_cnn_run["best_checkpoint"], str(folder), "--json",
                 "--out", str(tmp_path / "seen.png")]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [Path(p["file"]).name for p in predictions] == [f"digit{i:02d}.png" for i in range(20)]
    correct = sum(p["label"] == label for p, label in zip(predictions, labels))
    assert correct >= 18, [(p["label"], label) for p, label in zip(predictions, labels)]
    assert all(sum(p["probabilities"]) == pytest.approx(1, abs=1e-4) for p in predictions)
    assert Image.open(tmp_path / "seen.png").format == "PNG"


def test_table_output_for_one_file(subset_cnn_run, paper_digits, capsys):
    folder, labels = paper_digits
    assert main(["predict", "--checkpoint", subset_cnn_run["best_checkpoint"], str(folder / "digit00.png")]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split("|")[1].split() == [str(d) for d in range(10)]
    assert row.split()[1] == str(labels[0])


def bad_input(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nothing.png"
    if kind == "corrupt":
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
        return tmp_path / "broken.png"
    if kind == "blank":
        Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
        return tmp_path / "blank.png"
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize("kind, message", [("missing", "does not exist"),
                                           ("corrupt", "cannot be read as a PNG or JPEG"),
                                           ("blank", "no digit found"),
                                           ("empty_folder", "holds no .png")])
def test_bad_images_exit_2(kind, message, classifier_checkpoint, tmp_path, capsys):
    path = bad_input(kind, tmp_path)
    assert main(["predict", "--checkpoint", str(classifier_checkpoint), str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_gan_checkpoint_is_refused(gan_checkpoint, tmp_path, capsys):
    digit = bar_digit_png(tmp_path / "digit.png")
    assert main(["predict", "--checkpoint", str(gan_checkpoint), str(digit)]) == 2
    assert "holds a GAN: it generates digits and does not classify them" in capsys.readouterr().err


def test_picture_percentages_never_round_up_to_certainty():
    from mnist_pl.commands.classifiers import percent

    assert [percent(p) for p in (0.996, 0.9996, 0.5, 1.0, 0.004)] == ["99.6%", "99.96%", "50%", "100%", "0.4%"]


def bar_digit_png(path: Path) -> Path:
    """conftest's generated digit 0 (a bright bar on a dark, noisy ground) as a PNG."""
    images, _ = make_digits(1, seed=9)
    Image.fromarray(images[0].numpy()).save(path)
    return path


def test_images_are_normalised_as_the_checkpoints_training_data(idx_dir, tmp_path, capsys):
    """A model trained with Fashion-MNIST's statistics sees (x - 0.2860) / 0.3530, not MNIST's
    (x - 0.1307) / 0.3081, and answers with Fashion-MNIST's class names."""
    checkpoint = fit_classifier(idx_dir, tmp_path / "fashion.ckpt", dataset="fashion-mnist")
    digit = bar_digit_png(tmp_path / "digit.png")
    assert main(["predict", "--checkpoint", str(checkpoint), str(digit), "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    model, pixels = load_classifier_checkpoint(checkpoint), preprocess(digit)[None, None]
    with torch.no_grad():
        fashion = model((pixels - 0.2860) / 0.3530).softmax(-1)[0]
        mnist = model((pixels - 0.1307) / 0.3081).softmax(-1)[0]
    assert shown["probabilities"] == pytest.approx(fashion.tolist(), abs=1e-6)
    assert (fashion - mnist).abs().max() > 1e-3  # the two normalisations tell apart
    assert shown["class"] == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                              "Sneaker", "Bag", "Ankle boot")[shown["label"]]
