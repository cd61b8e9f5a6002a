"""Real digits: the default CNN on the MNIST subset in ../shared (skipped where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

from mnist_pl import CNNClassifier


def test_cnn_reaches_97_percent_in_two_epochs(subset_cnn_run):
    assert subset_cnn_run["epochs"] == 2
    assert subset_cnn_run["test"]["test/acc"] >= 0.97, subset_cnn_run["test"]
    saved = json.loads((Path(subset_cnn_run["run_dir"]) / "results.json").read_text())
    assert saved["test"] == subset_cnn_run["test"]


def test_best_checkpoint_reloads_as_cnn(subset_cnn_run):
    model = CNNClassifier.load_from_checkpoint(subset_cnn_run["best_checkpoint"], map_location="cpu")
    assert model.hparams.channels == [32, 64]
