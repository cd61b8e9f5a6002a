"""Training on two processes with Lightning's DDP (on the CPU, gloo): metrics count every test
image exactly once, the GAN trains too, a signal to one process stops both, a killed or stopped
run resumes exactly, and two torchrun "nodes" train what two devices of one machine do."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys

import pytest
import torch

from mnist_pl import MNISTDataModule
from mnist_pl.checkpoints import load_classifier

from conftest import ROOT, make_idx_folder, run_cli
from test_resume import (CNN, GAN, assert_same, assert_same_training, final_state, train_killed, train_through,
                         uninterrupted_and_resumed)
from test_signals import train_signalled

pytestmark = pytest.mark.slow  # two training processes each


@pytest.fixture(scope="module")
def odd_idx_dir(tmp_path_factory):
    # 63 test images do not split evenly over two processes: padding would show
    return make_idx_folder(tmp_path_factory.mktemp("odd"), n_train=321, n_test=63)


def ddp_train(data_dir, logdir, model, *extra):
    proc = run_cli("train.py", "--model", model, "--data-dir", str(data_dir), "--logdir", str(logdir),
                   "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-epochs", "2", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Run directory:") == 1, "only the first process reports"
    return json.loads((logdir / model / "version_0" / "results.json").read_text())


def test_cnn_under_ddp_counts_each_test_image_once(odd_idx_dir, tmp_path):
    results = ddp_train(odd_idx_dir, tmp_path, "cnn", "--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16")
    # the same checkpoint, evaluated in this one process over the whole test set
    model, _ = load_classifier(results["best_checkpoint"])
    dm = MNISTDataModule(data_dir=str(odd_idx_dir))
    dm.setup()
    with torch.no_grad():
        predicted = model(dm.test_set.__getitems__(range(63))[0]).argmax(1)
    correct = int((predicted == dm.test_set.labels).sum())
    assert results["test"]["test/acc"] == pytest.approx(correct / 63, abs=1e-6)
    assert not list(tmp_path.glob("cnn/version_1")), "one run directory for both processes"


def test_gan_under_ddp(odd_idx_dir, tmp_path):
    results = ddp_train(odd_idx_dir, tmp_path, "gan", "--set", "model.arch=fc", "--set", "model.generator_hidden=[16]",
                        "--set", "model.discriminator_hidden=[16]", "--batch-size", "32")
    # 289 training images, 145 per process, 32 a batch: 5 steps an epoch, one per batch
    assert results["global_step"] == 10 and results["epochs"] == 2
    assert (tmp_path / "gan" / "version_0" / "samples.png").is_file()


# 600 images: 540 to train, 270 a process, 9 batches of 32 an epoch; 3 epochs
DDP_DENSE = ["--model", "dense", "--max-epochs", "3", "--batch-size", "32", "--accelerator", "cpu", "--seed", "2",
             "--set", "model.hidden_sizes=[64]", "--set", "model.augment=true", "--set", "checkpoint_every_n_steps=4",
             "--set", "trainer.log_every_n_steps=5"]


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory):
    return make_idx_folder(tmp_path_factory.mktemp("ddp_resume"), n_train=600, n_test=64)


@pytest.fixture(scope="module")
def two_devices(resume_data, tmp_path_factory) -> dict:
    """The uninterrupted run on two processes of one machine (--devices 2)."""
    logdir = tmp_path_factory.mktemp("two_devices")
    train_through([*DDP_DENSE, "--data-dir", str(resume_data), "--devices", "2", "--strategy", "ddp",
                   "--logdir", str(logdir)])
    return json.loads((logdir / "dense" / "version_0" / "results.json").read_text())


def test_ddp_stops_together_on_a_signal_and_resumes_exactly(two_devices, resume_data, tmp_path):
    """SIGTERM to the first process only (as `docker stop` sends it), during step 10: both
    processes agree on it, one step later (mid-epoch), and stop with last.ckpt; restarted with
    the same --resume auto command, then SIGKILLed at an epoch's end and restarted again, the run
    ends in the uninterrupted run's state: each process's random state, epoch sums and share of
    the data come back as its own."""
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
    train_through(command)
    got = json.loads((logdir / "dense" / "version_0" / "results.json").read_text())
    assert not (logdir / "dense" / "version_1").exists(), "every restart continued the one run"
    assert got["global_step"] == 27
    assert_same_training(two_devices, got)


@pytest.mark.parametrize("args", [CNN, GAN], ids=["cnn", "gan"])
def test_cnn_and_gan_resume_exactly_under_ddp(args, resume_data, tmp_path):
    """The CNN (batch norm, augmentation, one cycle, moving average) and the GAN (two optimisers,
    its moving average and sample grid) on two processes, killed mid-epoch and at an epoch's end
    (9 steps an epoch), each time restarted with --resume auto: the uninterrupted run's state."""
    model = args[args.index("--model") + 1]
    ddp = [*args, "--data-dir", str(resume_data), "--devices", "2", "--strategy", "ddp"]
    expected, got = uninterrupted_and_resumed(ddp, model, tmp_path, kill_at=("4", "18e"))
    assert got["global_step"] == expected["global_step"] == 27
    assert_same_training(expected, got)


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
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    got = json.loads((logdir / "dense" / "version_0" / "results.json").read_text())
    assert_same(final_state(two_devices), final_state(got))
    assert got["test"] == two_devices["test"]
