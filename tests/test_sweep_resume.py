"""A sweep killed in the middle of a trial loses nothing: the same command again finishes the
study with the trials asked for, and the interrupted trial continues from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT

# the sweep, SIGKILLed right after the first trial writes last.ckpt at step KILL_AT_STEP: no
# clean-up, no flush, its trial left RUNNING in the study, as when a machine goes down
KILLED_SWEEP = """
import os, signal, sys
import lightning as L

step, save = int(os.environ["KILL_AT_STEP"]), L.Trainer.save_checkpoint

def save_then_die(trainer, filepath, *args, **kwargs):
    save(trainer, filepath, *args, **kwargs)
    if trainer.global_step == step and str(filepath).endswith("last.ckpt"):
        os.kill(os.getpid(), signal.SIGKILL)

L.Trainer.save_checkpoint = save_then_die
from mnist_pl.cli import main
sys.exit(main(sys.argv[1:]))
"""
KILL_AT_STEP = 12  # in the second epoch of the first trial (9 steps an epoch), at a checkpoint every 4


def run(code: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT_STEP": str(KILL_AT_STEP), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.slow
def test_a_killed_sweep_continues_its_interrupted_trial_from_its_checkpoint(idx_dir, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("model.lr: {low: 0.001, high: 0.01, log: true}\n")
    args = ["sweep", "--model", "dense", "--space", str(space), "--trials", "3", "--max-epochs", "3",
            "--pruner", "none", "--data-dir", str(idx_dir), "--logdir", "runs", "--set", "model.hidden_sizes=[16]",
            "--set", "checkpoint_every_n_steps=4", "--set", "trainer.log_every_n_steps=1",
            "--set", "data.batch_size=32"]
    killed = run(["-c", KILLED_SWEEP], args, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    study_dir = tmp_path / "runs" / "sweeps" / "space"
    storage = f"sqlite:///{study_dir / 'study.db'}"
    assert [t.state for t in optuna.load_study(study_name="space", storage=storage).get_trials()] == [TrialState.RUNNING]

    again = run(["-m", "mnist_pl"], args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing trial 0 from" in again.stdout
    trials = optuna.load_study(study_name="space", storage=storage).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and "3 of 3 trials finished (3 complete" in again.stdout
    # the interrupted trial is not counted: it failed, and the trial that continues it says so
    interrupted, = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted.number == 0 and "interrupted" in interrupted.user_attrs
    continued, = [t for t in complete if t.system_attrs.get("failed_trial") == 0]
    assert continued.params == interrupted.params
    # no trial twice: one run directory for each complete trial, the continued one in trial 0's
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in complete]
    assert len(set(run_dirs)) == 3
    folders = sorted(f"trial_{0 if t is continued else t.number:04d}" for t in complete)
    assert sorted(p.parent.parent.name for p in run_dirs) == folders == ["trial_0000", "trial_0002", "trial_0003"]
    assert sorted(p.name for p in study_dir.glob("trial_*")) == folders
    results = json.loads((study_dir / "trial_0000" / "dense" / "version_0" / "results.json").read_text())
    assert results["resumed_from"] == str(study_dir.resolve() / "trial_0000" / "dense" / "version_0" / "checkpoints" / "last.ckpt")
    # every training step logged once, as in an uninterrupted run: those after the checkpoint
    # that the killed worker had logged are dropped, and the continued trial logs them again
    events = EventAccumulator(str(study_dir / "trial_0000" / "dense" / "version_0"), size_guidance={"scalars": 0})
    events.Reload()
    steps = [event.step for event in events.Scalars("train/loss_step")]
    assert steps == list(range(results["global_step"])), steps
    assert results["global_step"] == 27  # 3 epochs of 9 steps
