"""Real digits: the default CNN on the MNIST subset in ../shared (skipped where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_pl import CNNClassifier

from conftest import SUBSET, accuracy_on_test_file


def test_cnn_reaches_97_percent_in_two_epochs(subset_cnn_run):
    assert subset_cnn_run["epochs"] == 2
    assert subset_cnn_run["test"]["test/acc"] >= 0.97, subset_cnn_run["test"]
    saved = json.loads((Path(subset_cnn_run["run_dir"]) / "results.json").read_text())
    assert saved["test"] == subset_cnn_run["test"]


def test_best_checkpoint_reloads_to_the_tested_model(subset_cnn_run):
    """The reloaded weights, run here on the 1,000 test digits, get exactly the accuracy that
    training reported for its best checkpoint."""
    model = CNNClassifier.load_from_checkpoint(subset_cnn_run["best_checkpoint"], map_location="cpu")
    assert model.hparams.channels == [32, 64]
    accuracy = accuracy_on_test_file(subset_cnn_run["best_checkpoint"], SUBSET)
    assert accuracy == pytest.approx(subset_cnn_run["test"]["test/acc"], abs=1e-6)  # 1e-3 is one digit
