"""Training on two processes with Lightning's DDP (on the CPU, gloo): metrics count every test
image exactly once, and the GAN trains too."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_pl import MNISTDataModule
from mnist_pl.checkpoints import load_classifier

from conftest import make_idx_folder, run_cli

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
