"""`mnist-pl demo`: every bad input is one line and exit status 2, before the server starts;
the page's pieces (reading a drawing, the GAN's grids) without a browser."""

from __future__ import annotations

import socket

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_pl import DenseClassifier, MNISTDataModule
from mnist_pl.cli import main
from mnist_pl.checkpoints import load_gan
from mnist_pl.demo import DRAW_A_DIGIT, DemoClassifier, digits_grid, latent_walk, read_digit
from mnist_pl.predict import preprocess


@pytest.fixture(scope="module")
def classifier_checkpoint(idx_dir, tmp_path_factory):
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(DenseClassifier(hidden_sizes=[16]), datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    path = tmp_path_factory.mktemp("demo") / "dense.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_without_a_model_it_says_how_to_train_one(capsys):
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: give --classifier CKPT and/or --gan CKPT") and err.count("\n") == 1
    assert "python train.py --model cnn" in err


@pytest.mark.parametrize("case", ["missing", "damaged", "gan as classifier", "classifier as gan", "port in use"])
def test_bad_input_is_one_line_and_status_2_before_serving(case, classifier_checkpoint, gan_checkpoint, tmp_path,
                                                           capsys, monkeypatch):
    """In-process (the script's own exit status is tested in test_train_cli and test_mistakes)."""
    import mnist_pl.demo

    def serve(*args, **kwargs):
        raise AssertionError("the server started")
    monkeypatch.setattr(mnist_pl.demo, "serve", serve)
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"PK\x03\x04 half a zip file")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        args, expected = {
            "missing": (["--classifier", str(tmp_path / "nope.ckpt")], "does not exist"),
            "damaged": (["--gan", str(damaged)], "cannot be read"),
            "gan as classifier": (["--classifier", str(gan_checkpoint)], "holds a GAN"),
            "classifier as gan": (["--gan", str(classifier_checkpoint)], "holds a dense model, but demo --gan needs"),
            "port in use": (["--classifier", str(classifier_checkpoint), "--port", port], f"cannot listen on 127.0.0.1:{port}"),
        }[case]
        if case != "port in use":
            args += ["--port", str(free_port())]
        status = main(["demo", *args])
    out, err = capsys.readouterr()
    assert status == 2, out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert "http://" not in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_drawing_is_read_with_predicts_preprocessing(classifier_checkpoint, tmp_path):
    classifier = DemoClassifier.from_checkpoint(classifier_checkpoint)
    assert read_digit(classifier, None) == (DRAW_A_DIGIT, None, None)
    blank = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # the canvas before any stroke: transparent
    assert read_digit(classifier, {"composite": blank}) == (DRAW_A_DIGIT, None, None)

    drawing = blank.copy()
    ImageDraw.Draw(drawing).line([(100, 30), (100, 170)], fill=(0, 0, 0, 255), width=14)
    verdict, probabilities, seen = read_digit(classifier, {"composite": drawing})
    assert verdict.startswith("Prediction: ") and abs(sum(probabilities.values()) - 1) < 1e-5
    assert list(probabilities) == [str(d) for d in range(10)]
    # the network sees exactly what `predict` makes of the same drawing saved as a file
    drawing.save(tmp_path / "one.png")
    expected = preprocess(tmp_path / "one.png")
    shown = torch.tensor(np.asarray(seen.resize((28, 28), Image.NEAREST)), dtype=torch.float32).reshape(28, 28)
    assert (shown / 255 - expected).abs().max() < 1 / 255 + 1e-6


def test_the_gan_draws_grids_and_walks(gan_checkpoint):
    gan = load_gan(gan_checkpoint, purpose="demo --gan")  # unconditional: any digit
    grid = digits_grid(gan, None, 12, seed=3)
    assert grid.size == (3 * (8 * 30 + 2), 3 * (2 * 30 + 2))  # 8 to a row, enlarged to >= 600 px
    assert np.array_equal(np.asarray(grid), np.asarray(digits_grid(gan, None, 12, seed=3)))  # same seed, same digits
    walk = latent_walk(gan, None, walks=2, steps=5, seed=0)
    assert walk.size == (4 * (5 * 30 + 2), 4 * (2 * 30 + 2))
