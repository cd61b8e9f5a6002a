"""Training on two processes with Lightning's DDP (on the CPU, gloo): metrics count every test
image exactly once, every model resumes exactly after a kill, a signal to one process stops both,
as does a full disk, and two torchrun "nodes" train what two devices of one machine do."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mnist_pl import MNISTDataModule
from mnist_pl.checkpoints import load_classifier

from conftest import ROOT, make_idx_folder, run_cli
from test_resume import (CNN, GAN, assert_same, assert_same_training, final_state, train_killed, train_through,
                         uninterrupted_and_resumed)
from test_signals import train_signalled

pytestmark = pytest.mark.slow  # two training processes each


# 600 images: 540 to train, 270 a process, 9 batches of 32 an epoch; 3 epochs. 63 test images do
# not split evenly over two processes: padding would show in the test metrics
DDP_DENSE = ["--model", "dense", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu", "--seed", "2",
             "--set", "model.hidden_sizes=[64]", "--set", "model.augment=true", "--set", "checkpoint_every_n_steps=4",
             "--set", "trainer.log_every_n_steps=5"]


ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _one_thread_a_process(monkeypatch):
    """Every training process of these tests on one thread, as torchrun and the test workers run
    them: the thread count changes the last bits of a CPU run."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory):
    return make_idx_folder(tmp_path_factory.mktemp("ddp_resume"), n_train=600, n_test=63)


@pytest.fixture(scope="module")
def two_devices(resume_data, tmp_path_factory) -> dict:
    """The uninterrupted run on two processes of one machine (--devices 2), one thread each."""
    logdir = tmp_path_factory.mktemp("two_devices")
    proc = run_cli("train.py", *DDP_DENSE, "--data-dir", str(resume_data), "--devices", "2", "--strategy", "ddp",
                   "--logdir", str(logdir), env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((logdir / "dense" / "version_0" / "results.json").read_text())


DISK_FULL = """
import errno, os, runpy, sys
import torch

# FULL_AT=STEP: this process's checkpoint write at step STEP fails as on a full disk
save, step = torch.save, int(os.environ["FULL_AT"])

def full_disk(obj, file, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("global_step") == step:
        raise OSError(errno.ENOSPC, "No space left on device")
    return save(obj, file, *args, **kwargs)

torch.save = full_disk
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def processes_naming(path: Path, wait: float = 5.0) -> list[str]:
    """The command lines of running processes that name `path`, once those ending have ended."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                words = cmdline.read_bytes().split(b"\0")
                if any(str(path).encode() in word for word in words):
                    found.append(b" ".join(words).decode(errors="replace"))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_ddp_stops_together_on_a_signal_and_a_full_disk_and_resumes_exactly(two_devices, resume_data, tmp_path):
    """SIGTERM to the first process only (as `docker stop` sends it), during step 10: both
    processes agree on it, one step later (mid-epoch), and stop with last.ckpt; restarted with
    the same --resume auto command, then SIGKILLed at an epoch's end, then stopped by a full disk,
    each time restarted, the run ends in the uninterrupted run's state: each process's random
    state, epoch sums and share of the data come back as its own."""
    logdir = tmp_path / "runs"
    command = [*DDP_DENSE, "--data-dir", str(resume_data), "--devices", "2", "--strategy", "ddp",
               "--logdir", str(logdir), "--resume", "auto"]
    proc = train_signalled(command, "SIGTERM", 10)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    last = logdir / "dense" / "version_0" / "checkpoints" / "last.ckpt"
    said = [line for line in proc.stderr.splitlines() if line.startswith("stopped by")]
    assert said == [f"stopped by SIGTERM: saved {last} at step 11; run the same command with --resume auto "
                    "to continue."], proc.stderr[-3000:]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 11
    train_killed(command, "18e", tmp_path)

    # the disk fills up as the first process writes last.ckpt at step 24: both processes stop,
    # with one line, no traceback and none left running, and step 20's last.ckpt is kept whole
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "FULL_AT": "24"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: could not write checkpoint {last}: the disk is full (No space left on device); the previous "
        "last.ckpt is kept whole. Free some space (or fix the folder), then run the same command with --resume "
        "auto to continue from the last checkpoint."]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 20
    assert not processes_naming(logdir), "a process of the stopped run is left"

    train_through(command)
    got = json.loads((logdir / "dense" / "version_0" / "results.json").read_text())
    assert not (logdir / "dense" / "version_1").exists(), "every restart continued the one run"
    assert got["global_step"] == 27
    assert_same_training(two_devices, got)


@pytest.mark.parametrize("args", [CNN, GAN], ids=["cnn", "gan"])
def test_cnn_and_gan_resume_exactly_under_ddp(args, resume_data, tmp_path):
    """The CNN (batch norm, augmentation, one cycle, moving average) and the GAN (two optimisers,
    its moving average and sample grid) on two processes, killed mid-epoch and at an epoch's end
    (9 steps an epoch), each time restarted with --resume auto: the uninterrupted run's state,
    in one run directory. The CNN's test metrics count each of the 63 test images once."""
    model = args[args.index("--model") + 1]
    ddp = [*args, "--data-dir", str(resume_data), "--devices", "2", "--strategy", "ddp"]
    expected, got = uninterrupted_and_resumed(ddp, model, tmp_path, kill_at=("4", "18e"))
    assert got["global_step"] == expected["global_step"] == 27
    assert_same_training(expected, got)
    if model == "gan":
        assert (Path(got["run_dir"]) / "samples.png").is_file()
        return
    # the best checkpoint, evaluated in this one process over the whole test set
    classifier, _ = load_classifier(got["best_checkpoint"])
    dm = MNISTDataModule(data_dir=str(resume_data))
    dm.setup()
    with torch.no_grad():
        predicted = classifier(dm.test_set.__getitems__(range(63))[0]).argmax(1)
    correct = int((predicted == dm.test_set.labels).sum())
    assert got["test"]["test/acc"] == pytest.approx(correct / 63, abs=1e-6)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_docs_torchrun_command_on_two_nodes_equals_two_devices(two_devices, resume_data, tmp_path):
    """docs/long-runs.md's torchrun command for CPUs, as two nodes of one process on 127.0.0.1 (on
    a free port, with this test's small run): the same final state as --devices 2 on one machine."""
    doc = (ROOT / "docs" / "long-runs.md").read_text()
    command = re.search(r"<!-- snippet: torchrun-cpu -->\s*```bash\n(torchrun .*)\n```", doc).group(1).split()
    assert command[command.index("--model") + 1] == "dense" and "--master-port" in command
    port, logdir = str(free_port()), tmp_path / "runs"
    values = {"$HEAD_NODE": "127.0.0.1", "29500": port}
    nodes = [subprocess.Popen(
        # torchrun is `python -m torch.distributed.run`; the DDP_DENSE flags come after the doc's, and win
        [sys.executable, "-m", "torch.distributed.run",
         *[values.get(word, str(rank) if word == "$NODE_RANK" else word) for word in command[1:]], *DDP_DENSE,
         "--data-dir", str(resume_data), "--logdir", str(logdir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:  # a failing (or timed-out) test leaves no node, nor its training process
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    got = json.loads((logdir / "dense" / "version_0" / "results.json").read_text())
    assert_same(final_state(two_devices), final_state(got))
    assert got["test"] == two_devices["test"]
