"""Crashes lose nothing: resume after SIGKILL, atomic checkpoint writes, damaged checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning.pytorch.loggers import TensorBoardLogger

from mnist_pl import DenseClassifier, MNISTDataModule, build_trainer
from mnist_pl.checkpoints import AtomicCheckpointIO
from mnist_pl.cli import main

from conftest import ROOT, run_cli

DENSE = ["--model", "dense", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu",
         "--set", "model.hidden_sizes=[64]", "--set", "checkpoint_every_n_steps=50",
         "--set", "trainer.log_every_n_steps=10"]


def logged_steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def kill_mid_epoch(args: list[str], last: Path, min_step: int, steps_per_epoch: int) -> None:
    """Start train.py, SIGKILL it right after a mid-epoch checkpoint at or past `min_step`."""
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            assert proc.poll() is None, "training ended before it could be killed mid-epoch"
            if last.is_file():
                step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
                if step >= min_step and step % steps_per_epoch:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return
            time.sleep(0.02)
        pytest.fail("no mid-epoch checkpoint appeared in time")
    finally:
        if proc.poll() is None:
            proc.kill()


def uninterrupted_and_resumed(args: list[str], model: str, tmp_path: Path) -> tuple[dict, dict, Path]:
    """Train once straight through, and once SIGKILLed mid-epoch 2 then resumed with --resume last;
    return both runs' results and the resumed run's directory (225 steps an epoch)."""
    full = run_cli("train.py", *args, "--logdir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    crashed = tmp_path / "crashed"
    run_dir = crashed / model / "version_0"
    kill_mid_epoch([*args, "--logdir", str(crashed)], run_dir / "checkpoints" / "last.ckpt",
                   min_step=250, steps_per_epoch=225)
    assert not (run_dir / "results.json").exists()
    resumed = run_cli("train.py", *args, "--logdir", str(crashed), "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = json.loads((tmp_path / "full" / model / "version_0" / "results.json").read_text())
    return expected, json.loads((run_dir / "results.json").read_text()), run_dir


def test_sigkill_then_resume_last_matches_an_uninterrupted_run(subset_dir, tmp_path):
    args = [*DENSE, "--data-dir", str(subset_dir), "--seed", "3"]
    expected, got, run_dir = uninterrupted_and_resumed(args, "dense", tmp_path)
    assert got["run_dir"] == str(run_dir) and got["resumed_from"].endswith("last.ckpt")
    assert (got["epochs"], got["global_step"]) == (expected["epochs"], expected["global_step"]) == (3, 675)
    assert abs(got["test"]["test/acc"] - expected["test"]["test/acc"]) <= 0.003
    # one TensorBoard run: every step logged once, none missing
    for tag in ("train/loss_step", "val/acc"):
        assert logged_steps(run_dir, tag) == logged_steps(expected["run_dir"], tag)


def test_interrupted_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)

    def crash_halfway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as if the process were stopped mid-write
    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    monkeypatch.undo()

    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["global_step"] == 1 and torch.equal(checkpoint["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_training_writes_every_checkpoint_atomically(idx_dir, tmp_path, monkeypatch):
    """build_trainer installs AtomicCheckpointIO: every file in checkpoints/ went through it,
    written to a temporary file and renamed into place."""
    written, renamed = [], []
    save, replace = AtomicCheckpointIO.save_checkpoint, os.replace

    def recording_save(self, checkpoint, path, storage_options=None):
        written.append(Path(path).name)
        return save(self, checkpoint, path, storage_options)

    def recording_replace(source, target):
        renamed.append((Path(source).name, Path(target).name))
        return replace(source, target)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording_save)
    monkeypatch.setattr(os, "replace", recording_replace)
    model = DenseClassifier(hidden_sizes=[8])
    trainer = build_trainer(model, TensorBoardLogger(tmp_path, name="run"), checkpoint_every_n_steps=3,
                            accelerator="cpu", max_epochs=2, enable_progress_bar=False, enable_model_summary=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=64))
    saved = {p.name for p in Path(trainer.checkpoint_callback.dirpath).iterdir()}
    assert "last.ckpt" in saved and len(saved) == 2 and saved <= set(written)  # last and the best epoch
    assert written.count("last.ckpt") >= 3  # every 3 steps and at the epochs' ends
    assert [target for _, target in renamed] == written  # each save: one rename, of its own temporary file
    assert all(source.startswith(f".{target}.partial-") for source, target in renamed)


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory, idx_dir) -> dict:
    logdir = tmp_path_factory.mktemp("dense_run")
    assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(logdir),
                 "--max-epochs", "1", "--accelerator", "cpu", "--set", "model.hidden_sizes=[16]"]) == 0
    return json.loads((logdir / "dense" / "version_0" / "results.json").read_text())


def resume_error(capsys, *args: str) -> str:
    assert main(["train", "--accelerator", "cpu", *args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    return errors[0]


def test_damaged_checkpoints_are_one_clear_error(dense_run, idx_dir, tmp_path, capsys):
    last = Path(dense_run["last_checkpoint"])
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert "cannot be read" in resume_error(
        capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", str(truncated))

    garbage = tmp_path / "notes.ckpt"
    garbage.write_text("not a checkpoint at all")
    assert "cannot be read" in resume_error(
        capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", str(garbage))

    assert "does not exist" in resume_error(
        capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", str(tmp_path / "missing.ckpt"))


def test_wrong_model_or_config_is_refused(dense_run, idx_dir, capsys):
    last = dense_run["last_checkpoint"]
    assert "holds a dense model, not cnn" in resume_error(
        capsys, "--model", "cnn", "--data-dir", str(idx_dir), "--resume", last)
    message = resume_error(capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", last,
                           "--set", "model.hidden_sizes=[32]")
    assert "trained with another config" in message and "model.hidden_sizes was [16], now [32]" in message


def test_resume_last_without_runs(tmp_path, capsys):
    assert "nothing to resume" in resume_error(capsys, "--model", "cnn", "--logdir", str(tmp_path), "--resume", "last")


def test_gan_resumes_with_its_sample_grid_continuing(subset_dir, tmp_path):
    args = ["--model", "gan", "--data-dir", str(subset_dir), "--max-epochs", "2", "--batch-size", "32",
            "--accelerator", "cpu", "--seed", "5", "--set", "model.arch=fc", "--set", "model.conditional=false",
            "--set", "model.generator_hidden=[64]", "--set", "model.discriminator_hidden=[64]",
            "--set", "checkpoint_every_n_steps=50", "--set", "trainer.log_every_n_steps=10"]
    expected, got, run_dir = uninterrupted_and_resumed(args, "gan", tmp_path)
    # one step per batch, though each batch steps two optimisers
    assert got["global_step"] == expected["global_step"] == 450 and got["epochs"] == 2
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [image.step for image in events.Images("samples")] == [0, 1]
    assert logged_steps(run_dir, "train/loss_g_step") == logged_steps(expected["run_dir"], "train/loss_g_step")
    # restored generators, EMA, optimisers, data order and random state: the same final weights
    final = [torch.load(r["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
             for r in (expected, got)]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
