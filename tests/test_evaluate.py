"""`evaluate`: metrics and pictures from a checkpoint made by training, and bad checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mnist_pl import Evaluation
from mnist_pl.cli import main

from conftest import make_idx_folder


def test_evaluation_arithmetic():
    # three classes; image 2 is a confident mistake, image 3 a hesitant one
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.05, 0.9, 0.05],
                                  [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    result = Evaluation(("a", "b", "c"), torch.tensor([0, 1, 0, 1, 2]), probabilities)
    assert result.accuracy == pytest.approx(0.6)
    assert result.confusion.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.precision.tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert result.recall.tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert result.worst_mistakes(5).tolist() == [2, 3]


def test_evaluate_checkpoint_from_training(subset_cnn_run, tmp_path, capsys):
    out_dir = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", subset_cnn_run["best_checkpoint"], "--out-dir", str(out_dir),
                 "--no-download"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    # the same weights on the same test split as trainer.test in train.py: the same accuracy
    assert metrics["accuracy"] == pytest.approx(subset_cnn_run["test"]["test/acc"], abs=1e-4)
    assert metrics["images"] == 1000 and f"Test accuracy: {metrics['accuracy']:.4f}" in printed
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert matrix.sum() == 1000 and matrix.diag().sum() / 1000 == pytest.approx(metrics["accuracy"])
    for digit, row in metrics["per_class"].items():
        d = int(digit)
        assert row["support"] == int(matrix[d].sum())
        assert row["recall"] == pytest.approx(float(matrix[d, d] / matrix[d].sum()), abs=1e-6)
        assert row["precision"] == pytest.approx(float(matrix[d, d] / matrix[:, d].sum()), abs=1e-6)
    for name in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out_dir / name) as picture:
            assert picture.format == "PNG" and min(picture.size) > 300


def test_data_dir_override(classifier_checkpoint, tmp_path):
    other = make_idx_folder(tmp_path / "other", n_test=48)  # not the folder it was trained on
    assert main(["evaluate", "--checkpoint", str(classifier_checkpoint), "--data-dir", str(other),
                 "--out-dir", str(tmp_path / "out"), "--no-download"]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["images"] == 48


def test_gan_checkpoint_is_refused(gan_checkpoint, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(gan_checkpoint), "--out-dir", str(tmp_path)]) == 2
    assert "holds a GAN" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"not a checkpoint at all", "cannot be read"),
    ("truncated", "cannot be read"),
    ({"weights": [1, 2]}, "not a Lightning checkpoint"),
])
def test_bad_checkpoints_exit_2(content, message, classifier_checkpoint, tmp_path, capsys):
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        with open(classifier_checkpoint, "rb") as good:
            path.write_bytes(good.read()[:5000])
    elif content is not None:
        torch.save(content, path)
    assert main(["evaluate", "--checkpoint", str(path), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
