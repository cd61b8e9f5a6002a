"""The fast path's features work (how fast they are is for benchmarks/, never for tests)."""

from __future__ import annotations

import json

import lightning as L
import torch

from mnist_pl import CNNClassifier, DenseClassifier, MNISTDataModule
from mnist_pl.cli import main
from mnist_pl.training import ProgressBar, compile_model

from conftest import ROOT, run_cli


def test_epochs_reuse_workers_and_normalise_per_batch(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), num_workers=2)
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.persistent_workers  # no worker restarts at each epoch boundary
    assert dm.train_set.images.dtype == torch.uint8  # kept raw: nothing re-normalised per epoch


def test_data_stays_on_the_cpu_without_a_gpu(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), data_on_device=True)
    trainer = L.Trainer(accelerator="cpu", logger=False)
    dm.trainer = trainer
    dm.setup("fit")
    assert dm.train_set.images.device.type == "cpu"


def test_progress_bar_shows_step_losses(idx_dir):
    model = DenseClassifier(hidden_sizes=[8])
    bar = ProgressBar(refresh_rate=1)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=False, enable_checkpointing=False, callbacks=[bar], log_every_n_steps=1)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    shown = bar.get_metrics(trainer, model)
    assert float(shown["loss"]) > 0 and "val/acc" in shown


def test_compile_keeps_checkpoint_keys():
    model = CNNClassifier(channels=[4], hidden_size=8)
    keys = list(model.state_dict())
    compile_model(model)
    assert list(model.state_dict()) == keys
    assert model.net._compiled_call_impl is not None


def test_profile_flag_writes_a_report(idx_dir, tmp_path, capsys):
    assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                 "--max-epochs", "1", "--accelerator", "cpu", "--profile", "--set", "model.hidden_sizes=[16]"]) == 0
    results = json.loads((tmp_path / "dense" / "version_0" / "results.json").read_text())
    report = open(results["profile"]).read()
    assert "run_training_batch" in report and "Profile:" in capsys.readouterr().out


def test_benchmark_runs_and_prints_its_table(idx_dir):
    proc = run_cli(str(ROOT / "benchmarks" / "throughput.py"), "--data-dir", str(idx_dir), "--models", "dense",
                   "--epochs", "1", "--warmup", "0", "--workers", "0", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = [line for line in proc.stdout.splitlines() if line.startswith("dense")]
    assert len(row) == 1 and len(row[0].split()) == 7
