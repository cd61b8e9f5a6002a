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

from conftest import ROOT, make_idx_folder, run_cli

KILL_AFTER_CHECKPOINT = """
import os, runpy, signal, sys
import lightning as L

# KILL_AT: "28" kills after last.ckpt is written at step 28 in the middle of an epoch, "34e" after
# the one written between epochs at step 34 (before the next epoch's first batch), "first" after
# the first last.ckpt this process writes
spec, save = os.environ["KILL_AT"], L.Trainer.save_checkpoint

def due(trainer):
    if spec == "first":
        return True
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return trainer.global_step == int(spec.rstrip("e")) and (progress.processed == 0) == spec.endswith("e")

def save_then_die(trainer, filepath, *args, **kwargs):
    save(trainer, filepath, *args, **kwargs)
    if str(filepath).endswith("last.ckpt") and trainer.is_global_zero and due(trainer):
        os.killpg(0, signal.SIGKILL)  # every process of the run, no cleanup: as if the machine went down

L.Trainer.save_checkpoint = save_then_die
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""

# 600 generated training images: 540 train after validation's 60, 17 batches of 32 an epoch
STEPS_PER_EPOCH = 17


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory) -> Path:
    return make_idx_folder(tmp_path_factory.mktemp("resume_idx"), n_train=600, n_test=64)


def logged_steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def logged_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows for a run: per tag, its (step, value) pairs in order."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train_killed(args: list[str], kill_at: str, tmp_path: Path) -> str:
    """Run train.py ARGS (with all its processes in a group of their own), SIGKILLed right after
    it writes last.ckpt at `kill_at` (see KILL_AFTER_CHECKPOINT); return its output (also kept
    in tmp_path/killed-KILL_AT.log) for the assertion messages."""
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_CHECKPOINT, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KILL_AT": kill_at}, start_new_session=True)
    output = f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    (tmp_path / f"killed-{kill_at}.log").write_text(output)
    assert proc.returncode == -signal.SIGKILL, output
    return output


def train_through(args: list[str]) -> None:
    """train.py ARGS to its end: in this process, or as a command where it starts processes (DDP)."""
    if "--devices" in args and args[args.index("--devices") + 1] != "1":
        proc = run_cli("train.py", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        assert main(["train", *args]) == 0


def killed_and_resumed(args: list[str], model: str, logdir: Path, kill_at: tuple[str, ...] = ("first",)) -> dict:
    """Train in `logdir`, SIGKILLed after the checkpoint at each of `kill_at` in turn (see
    KILL_AFTER_CHECKPOINT), each time restarted with the same command and `--resume auto`, then
    to its end; return its results."""
    command = [*args, "--logdir", str(logdir), "--resume", "auto"]
    for where in kill_at:
        output = train_killed(command, where, logdir.parent)
        assert not (logdir / model / "version_0" / "results.json").exists(), output
    train_through(command)
    assert not (logdir / model / "version_1").exists(), "every restart continued the one run"
    return json.loads((logdir / model / "version_0" / "results.json").read_text())


def uninterrupted_and_resumed(args: list[str], model: str, tmp_path: Path,
                              kill_at: tuple[str, ...] = ("first",)) -> tuple[dict, dict]:
    """Train once straight through, and once killed_and_resumed; return both runs' results."""
    train_through([*args, "--logdir", str(tmp_path / "full")])
    expected = json.loads((tmp_path / "full" / model / "version_0" / "results.json").read_text())
    return expected, killed_and_resumed(args, model, tmp_path / "crashed", kill_at)


def assert_same(a, b, where: str = "") -> None:
    """Nested checkpoint contents equal to the last bit (tensors by torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def final_state(results: dict) -> dict:
    checkpoint = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)
    return {key: checkpoint[key] for key in ("state_dict", "optimizer_states", "lr_schedulers", "global_step",
                                             "epoch") if key in checkpoint}


def assert_same_training(expected: dict, got: dict) -> None:
    """The two runs ended in the same state (model, moving average, optimisers, schedules, step;
    torch.equal), report the same results and logged the same TensorBoard scalars (each step
    once, the same values)."""
    assert (got["epochs"], got["global_step"]) == (expected["epochs"], expected["global_step"])
    assert_same(final_state(expected), final_state(got))
    assert got.get("test") == expected.get("test")
    # the best validation value and epoch, those before a crash too (their state is in the checkpoint)
    assert got.get("best_validation") == expected.get("best_validation")
    assert logged_scalars(got["run_dir"]) == logged_scalars(expected["run_dir"])


DENSE = ["--model", "dense", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu", "--seed", "3",
         "--set", "model.hidden_sizes=[64]", "--set", "model.augment=true", "--set", "checkpoint_every_n_steps=4",
         "--set", "trainer.log_every_n_steps=5"]


# the CNN's shipped config (batch norm, augmentation, one-cycle AdamW) with its moving average, made small
CNN = ["--model", "cnn", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu", "--seed", "4",
       "--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16", "--set", "model.ema_decay=0.9",
       "--set", "checkpoint_every_n_steps=4", "--set", "trainer.log_every_n_steps=5"]
GAN = ["--model", "gan", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu", "--seed", "5",
       "--set", "model.arch=fc", "--set", "model.conditional=false", "--set", "model.generator_hidden=[32]",
       "--set", "model.discriminator_hidden=[32]", "--set", "checkpoint_every_n_steps=4",
       "--set", "trainer.log_every_n_steps=5"]


@pytest.mark.slow
def test_dense_resumes_after_sigkill_exactly_as_if_never_stopped(resume_data, tmp_path, capsys):
    """One-cycle schedule, Adam, dropout and augmentation: all restored mid-epoch (step 28, 11
    batches into the second epoch) and between epochs (step 34); the same command with --resume
    auto, started three times, ends as one uninterrupted run, and a fourth trains nothing."""
    args = [*DENSE, "--data-dir", str(resume_data)]
    expected, got = uninterrupted_and_resumed(args, "dense", tmp_path, kill_at=("28", f"{2 * STEPS_PER_EPOCH}e"))
    assert got["resumed_from"].endswith("last.ckpt")
    assert (got["epochs"], got["global_step"]) == (3, 3 * STEPS_PER_EPOCH)
    assert_same_training(expected, got)

    results = Path(got["run_dir"]) / "results.json"
    written = results.read_text()
    capsys.readouterr()
    assert main(["train", *args, "--logdir", str(tmp_path / "crashed"), "--resume", "auto"]) == 0
    assert f"This run finished before, nothing to train: {got['run_dir']}" in capsys.readouterr().out
    assert results.read_text() == written


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


def test_weights_only_checkpoint_is_refused(dense_run, idx_dir, tmp_path, capsys):
    checkpoint = torch.load(dense_run["last_checkpoint"], map_location="cpu", weights_only=True)
    weights = {k: v for k, v in checkpoint.items() if k not in ("optimizer_states", "lr_schedulers", "loops")}
    torch.save(weights, tmp_path / "weights.ckpt")
    message = resume_error(capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", str(tmp_path / "weights.ckpt"),
                           "--set", "model.hidden_sizes=[16]")
    assert "holds weights only" in message and "last.ckpt" in message


def test_another_length_cannot_continue_its_schedule(dense_run, idx_dir, capsys):
    message = resume_error(capsys, "--model", "dense", "--data-dir", str(idx_dir), "--resume", dense_run["last_checkpoint"],
                           "--max-epochs", "2")
    assert "trainer.max_epochs=1, now 2" in message and "onecycle learning-rate schedule" in message


def test_resume_last_without_runs(tmp_path, capsys):
    assert "nothing to resume" in resume_error(capsys, "--model", "cnn", "--logdir", str(tmp_path), "--resume", "last")


@pytest.mark.slow
def test_cnn_with_its_moving_average_resumes_exactly(resume_data, tmp_path):
    """Batch norm, augmentation, AdamW on one cycle and the moving average of the weights."""
    expected, got = uninterrupted_and_resumed([*CNN, "--data-dir", str(resume_data)], "cnn", tmp_path,
                                              kill_at=(f"{STEPS_PER_EPOCH}e", "28"))
    assert any(key.startswith("net_ema.") for key in final_state(got)["state_dict"])
    assert_same_training(expected, got)


@pytest.mark.slow
def test_gan_resumes_with_its_sample_grid_continuing(resume_data, tmp_path):
    expected, got = uninterrupted_and_resumed([*GAN, "--data-dir", str(resume_data)], "gan", tmp_path,
                                              kill_at=("28", f"{2 * STEPS_PER_EPOCH}e"))
    # one step per batch, though each batch steps two optimisers
    assert got["global_step"] == expected["global_step"] == 3 * STEPS_PER_EPOCH
    events = EventAccumulator(got["run_dir"], size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [image.step for image in events.Images("samples")] == [0, 1, 2]
    # restored generators, EMA, optimisers, data order and random state: the same final state
    assert_same_training(expected, got)


def test_a_resumed_run_writes_events_that_tensorboard_reads_after_the_crashed_ones(tmp_path):
    from mnist_pl.loggers import wait_to_sort_after_events_in

    # the crashed run's file, made this second by a process whose id sorts after any other
    crashed = tmp_path / f"events.out.tfevents.{int(time.time())}.host.99999999.0"
    crashed.write_bytes(b"")
    wait_to_sort_after_events_in(tmp_path)
    resumed = tmp_path / f"events.out.tfevents.{int(time.time())}.host.1.0"
    resumed.write_bytes(b"")
    assert sorted(tmp_path.iterdir())[-1] == resumed
