"""On a CUDA GPU: the card's commands end to end, --compile, bf16, exact resume, determinism, no
host-device synchronisation inside training steps, and GPU checkpoints used on a CPU-only process.

Every test here is skipped, with the reason, where torch sees no CUDA GPU.
benchmarks/gpu_check.sh runs them together with the GPU benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from mnist_pl import MODELS, MNISTDataModule, load_config
from mnist_pl.training import build_trainer

from conftest import ROOT, run_cli
from test_resume import uninterrupted_and_resumed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")]

GPU = ["--accelerator", "gpu", "--devices", "1"]


def train(subset_dir: Path, logdir: Path, model: str, *extra: str) -> dict:
    proc = run_cli("train.py", "--model", model, "--data-dir", str(subset_dir), "--logdir", str(logdir), *GPU, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((logdir / model / "version_0" / "results.json").read_text())


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory) -> dict[str, dict]:
    """The default CNN (2 epochs) and the default GAN (3 epochs) trained on the GPU, as a user would."""
    from conftest import SUBSET

    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET}")
    logdir = tmp_path_factory.mktemp("gpu-runs")
    return {"cnn": train(SUBSET, logdir, "cnn", "--max-epochs", "2"),
            "gan": train(SUBSET, logdir, "gan", "--max-epochs", "3")}


def test_default_models_train_on_the_gpu(gpu_runs):
    assert gpu_runs["cnn"]["test"]["test/acc"] > 0.9 and gpu_runs["cnn"]["epochs"] == 2
    gan = gpu_runs["gan"]
    assert gan["epochs"] == 3 and Path(gan["samples"]).is_file() and Path(gan["last_checkpoint"]).is_file()


@pytest.mark.parametrize("model", ["cnn", "gan"])  # (dense compiles in benchmarks/gpu_check.sh's benchmark)
def test_compile_on_the_gpu(model, subset_dir, tmp_path):
    # --compile on CUDA is torch.compile's "reduce-overhead" mode: the networks run as CUDA graphs
    results = train(subset_dir, tmp_path, model, "--max-epochs", "1", "--compile")
    if model == "gan":
        assert Path(results["samples"]).is_file() and results["global_step"] > 0
    else:  # one epoch: well above chance, short of the full run's 97%
        assert results["test"]["test/acc"] > 0.8, results["test"]
    weights = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in weights) and all(w.isfinite().all() for w in weights.values())


def test_bf16_mixed_precision_trains(subset_dir, tmp_path):
    # (the GAN trains under bf16 in test_no_sync_inside_training_steps)
    results = train(subset_dir, tmp_path, "cnn", "--max-epochs", "1", "--precision", "bf16-mixed")
    assert results["test"]["test/acc"] > 0.8, results["test"]


def test_sigkill_mid_epoch_then_resume_is_exact(subset_dir, tmp_path):
    # as tests/test_resume.py on the CPU, with deterministic GPU kernels: the same final weights
    args = ["--model", "gan", "--data-dir", str(subset_dir), "--max-epochs", "3", "--batch-size", "32", *GPU,
            "--deterministic", "--seed", "5", "--set", "model.arch=fc", "--set", "model.generator_hidden=[64]",
            "--set", "model.discriminator_hidden=[64]", "--set", "checkpoint_every_n_steps=50",
            "--set", "trainer.log_every_n_steps=10"]
    # SIGKILLed after its first step checkpoint (mid-epoch), restarted with --resume auto
    expected, got = uninterrupted_and_resumed(args, "gan", tmp_path)
    assert got["global_step"] == expected["global_step"] == 675
    final = [torch.load(r["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
             for r in (expected, got)]
    different = [k for k in final[0] if not torch.equal(final[0][k], final[1][k])]
    assert not different


def test_seeded_runs_are_identical(subset_dir, tmp_path):
    runs = [train(subset_dir, tmp_path / str(i), "cnn", "--max-epochs", "1", "--seed", "11", "--deterministic")
            for i in range(2)]
    assert runs[0]["test"] == runs[1]["test"]
    weights = [torch.load(r["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"] for r in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


class NoSyncInSteps(L.Callback):
    """Makes any host-device synchronisation from a training step's start to its end an error.

    It moves itself to the front of the callbacks, so that its on_train_batch_end runs before the
    progress bar reads the running losses (as it may when it redraws) and before a checkpoint.
    """

    def __init__(self):
        self.steps = 0

    def setup(self, trainer, pl_module, stage):
        trainer.callbacks.remove(self)
        trainer.callbacks.insert(0, self)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        torch.cuda.set_sync_debug_mode("default")
        self.steps += 1

    def teardown(self, trainer, pl_module, stage):
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("model, precision", [("dense", "32-true"), ("cnn", "32-true"), ("cnn", "bf16-mixed"),
                                              ("gan", "32-true"), ("gan", "bf16-mixed")])
def test_no_sync_inside_training_steps(model, precision, subset_dir, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    config = load_config(model, overrides={"data.data_dir": str(subset_dir)})
    L.seed_everything(0, verbose=False)
    module = MODELS[model](**config["model"])
    check = NoSyncInSteps()
    # log_every_n_steps=5 puts steps that log their loss inside the checked ones
    trainer = build_trainer(module, TensorBoardLogger(tmp_path), 20, extra_callbacks=[check],
                            **{**config["trainer"], "accelerator": "gpu", "devices": 1, "precision": precision,
                               "max_epochs": 1, "limit_train_batches": 40, "limit_val_batches": 2,
                               "log_every_n_steps": 5})
    trainer.fit(module, datamodule=MNISTDataModule(**config["data"]))
    assert check.steps == 40
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_batches_are_cut_on_the_gpu_without_sync(subset_dir):
    datamodule = MNISTDataModule(data_dir=str(subset_dir), batch_size=128)
    datamodule.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert datamodule.train_set.images.is_cuda
    torch.cuda.set_sync_debug_mode("error")
    try:
        count = sum(len(labels) for images, labels in loader)  # the order's upload, every batch
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert count == len(datamodule.train_set)
    # the same order as on a CPU: the epoch's order does not depend on the device
    cpu = MNISTDataModule(data_dir=str(subset_dir), batch_size=128)
    cpu.setup("fit")
    cpu_loader = cpu.train_dataloader()
    assert torch.equal(torch.cat(list(loader.batch_sampler)).cpu(), torch.cat(list(cpu_loader.batch_sampler)))


def run_on_cpu_only(*args: str) -> subprocess.CompletedProcess:
    """`python ARGS` in a process that sees no GPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_gpu_checkpoints_work_on_a_cpu_only_process(gpu_runs, subset_dir, tmp_path):
    from PIL import Image

    probe = run_on_cpu_only("-c", "import torch; print(torch.cuda.is_available())")
    assert probe.stdout.strip() == "False", probe.stderr
    cnn, gan = gpu_runs["cnn"]["best_checkpoint"], gpu_runs["gan"]["last_checkpoint"]
    generated = run_on_cpu_only("-m", "mnist_pl", "generate", "--checkpoint", gan, "--num", "20",
                                "--out", str(tmp_path / "digits.png"))
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert Image.open(tmp_path / "digits.png").format == "PNG"
    evaluated = run_on_cpu_only("-m", "mnist_pl", "evaluate", "--checkpoint", cnn, "--data-dir", str(subset_dir),
                                "--out-dir", str(tmp_path / "evaluation"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    # real test digits as pictures (dark ink on white paper), predicted from the GPU-trained checkpoint
    data = MNISTDataModule(data_dir=str(subset_dir))
    data.setup("test")
    files = []
    for i in range(5):
        files.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray((255 - data.test_set.images[i, 0]).numpy()).save(files[-1])
    predicted = run_on_cpu_only("-m", "mnist_pl", "predict", "--checkpoint", cnn, *files, "--json")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    labels = [p["label"] for p in json.loads(predicted.stdout)]
    assert sum(a == b for a, b in zip(labels, data.test_set.labels[:5].tolist())) >= 4, labels
