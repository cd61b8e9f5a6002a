"""A scheduler's signals (SIGTERM, SIGUSR1) during training: last.ckpt at the step reached, one
line, exit status 128 + the signal, and `--resume auto` continues exactly; SLURM's requeue."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from test_resume import DENSE, assert_same_training, train_through

SIGNAL_DURING_STEP = """
import os, runpy, signal, sys
import lightning as L
import mnist_pl.training as training

# SEND_SIGNAL=NAME:STEP: this process gets signal NAME while it trains step STEP (counted from 1)
name, step = os.environ["SEND_SIGNAL"].split(":")

class SendDuringStep(L.Callback):
    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step + 1 == int(step):
            os.kill(os.getpid(), getattr(signal, name))

build = training.build_trainer
training.build_trainer = lambda *a, extra_callbacks=None, **k: build(
    *a, extra_callbacks=[*(extra_callbacks or []), SendDuringStep()], **k)
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def train_signalled(args: list[str], name: str, step: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SIGNAL_DURING_STEP, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {}), "SEND_SIGNAL": f"{name}:{step}"})


@pytest.fixture(scope="module")
def uninterrupted(resume_data, tmp_path_factory) -> dict:
    import json

    logdir = tmp_path_factory.mktemp("uninterrupted")
    train_through([*DENSE, "--data-dir", str(resume_data), "--logdir", str(logdir)])
    return json.loads((logdir / "dense" / "version_0" / "results.json").read_text())


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory) -> Path:
    from conftest import make_idx_folder

    return make_idx_folder(tmp_path_factory.mktemp("signal_idx"), n_train=600, n_test=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_a_signal_saves_the_step_reached_and_resume_auto_continues_exactly(name, uninterrupted, resume_data, tmp_path):
    import json

    # SIGUSR1 inside a SLURM job: the job is requeued (a stand-in scontrol records how)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/scontrol.args\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"} if name == "SIGUSR1" else {}

    args = [*DENSE, "--data-dir", str(resume_data), "--logdir", str(tmp_path / "runs"), "--resume", "auto"]
    proc = train_signalled(args, name, 10, env=slurm)
    signum = getattr(signal, name)
    assert proc.returncode == 128 + signum, proc.stderr[-3000:]
    last = tmp_path / "runs" / "dense" / "version_0" / "checkpoints" / "last.ckpt"
    said = [line for line in proc.stderr.splitlines() if line.startswith(f"stopped by {name}")]
    then = ("SLURM requeued the job, whose same command continues it" if slurm
            else "run the same command with --resume auto to continue")
    assert said == [f"stopped by {name}: saved {last} at step 10; {then}."], proc.stderr[-3000:]
    # at the step reached, though the step checkpoints fall every 4 steps
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 10
    if slurm:
        assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "4242"]
    else:
        assert not (tmp_path / "scontrol.args").exists()

    train_through(args)
    got = json.loads((tmp_path / "runs" / "dense" / "version_0" / "results.json").read_text())
    assert_same_training(uninterrupted, got)


def test_the_docs_slurm_script_signals_requeues_and_resumes():
    from mnist_pl.cli import build_parser

    doc = (ROOT / "docs" / "long-runs.md").read_text()
    script = re.search(r"<!-- snippet: slurm -->\s*```bash\n(.*?)```", doc, re.S).group(1)
    assert "#SBATCH --signal=SIGUSR1@90" in script and "#SBATCH --requeue" in script
    srun = next(line for line in script.splitlines() if line.startswith("srun python train.py "))
    args = build_parser().parse_args(["train", *srun.split()[3:]])
    assert args.resume == "auto" and args.strategy == "ddp" and args.num_nodes == 2
