"""train() in research code: extra callbacks and loggers, a quiet mode, the best validation value."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from mnist_pl import load_config, train

TINY_DENSE = {"model.hidden_sizes": [32], "trainer.accelerator": "cpu", "data.batch_size": 64}


class Recorder(L.Callback):
    """Notes what the Trainer it was given to did."""

    def __init__(self):
        self.validated_epochs: list[int] = []
        self.progress_bar = "not seen"

    def on_fit_start(self, trainer, pl_module):
        self.progress_bar = trainer.progress_bar_callback

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.validated_epochs.append(trainer.current_epoch)


def tiny_config(idx_dir: Path, logdir: Path, **overrides):
    return load_config("dense", overrides={**TINY_DENSE, "data.data_dir": str(idx_dir), "logdir": str(logdir),
                                           **overrides})


def test_own_callback_and_logger_and_best_validation(idx_dir, tmp_path, capsys):
    recorder, csv_logger = Recorder(), CSVLogger(tmp_path / "csv", name="mine")
    config = tiny_config(idx_dir, tmp_path / "runs", **{"trainer.max_epochs": 4, "model.lr": 0.02})
    results = train("dense", config, callbacks=[recorder], logger=csv_logger, progress_bar=False)

    assert recorder.validated_epochs == [0, 1, 2, 3] and recorder.progress_bar is None
    assert "Epoch 0" not in capsys.readouterr().err  # no progress bar drawn
    # the run's own TensorBoard logger still holds the run directory
    run_dir = Path(results["run_dir"])
    assert run_dir == tmp_path / "runs" / "dense" / "version_0" and list(run_dir.glob("events.out.tfevents.*"))
    assert Path(results["best_checkpoint"]).parent == run_dir / "checkpoints"

    # the validation accuracy of each epoch, as the given logger wrote it
    with open(Path(csv_logger.log_dir) / "metrics.csv") as file:
        logged = [(int(row["epoch"]), float(row["val/acc"])) for row in csv.DictReader(file) if row.get("val/acc")]
    assert [epoch for epoch, _ in logged] == [0, 1, 2, 3]
    best_value = max(value for _, value in logged)
    best_epoch = next(epoch for epoch, value in logged if value == best_value)  # ties: the first
    best = results["best_validation"]
    assert best["metric"] == "val/acc" and best["mode"] == "max"
    assert abs(best["value"] - best_value) < 1e-6 and best["epoch"] == best_epoch
    assert f"epoch{best_epoch:03d}-val_acc{best_value:.4f}" in results["best_checkpoint"]
    assert json.loads((run_dir / "results.json").read_text())["best_validation"] == best


def test_config_can_turn_the_progress_bar_off(idx_dir, tmp_path, capsys):
    recorder = Recorder()
    config = tiny_config(idx_dir, tmp_path, **{"trainer.max_epochs": 1, "trainer.enable_progress_bar": False})
    results = train("dense", config, callbacks=[recorder])
    assert recorder.progress_bar is None and "Epoch 0" not in capsys.readouterr().err
    assert results["best_validation"]["epoch"] == 0
