"""On a CUDA GPU: the card's commands end to end, --compile, bf16, exact resume, determinism, no
host-device synchronisation inside training steps, and GPU checkpoints used on a CPU-only process.

Every GPU test here is skipped, with the reason, where torch sees no CUDA GPU; the two tests of
this file's own machinery (the sync check and the deterministic flags' restore) run anywhere.
benchmarks/gpu_check.sh runs them together with the GPU benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import lightning as L
import pytest
import torch

from mnist_pl import MODELS, MNISTDataModule, load_config
from mnist_pl.training import build_trainer

from conftest import ROOT, run_cli
from test_resume import assert_same_training, uninterrupted_and_resumed

def needs_gpu(test: Callable) -> Callable:
    """Mark `test` as a GPU test, skipped with the reason where torch sees no CUDA GPU."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(),
                              reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    return pytest.mark.gpu(skip(test))

GPU = ["--accelerator", "gpu", "--devices", "1"]

if torch.cuda.is_available():
    # deterministic cuBLAS needs a fixed workspace, which PyTorch reads from this variable once a
    # process, at its first cuBLAS call; Lightning sets it when it builds a deterministic Trainer,
    # too late in a test process that has run cuBLAS before. Subprocesses inherit it
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def deterministic_flags_restored() -> Iterator[None]:
    """Put back, after the block, the process-wide flags that a Trainer(deterministic=True) sets
    and no later Trainer resets: torch.use_deterministic_algorithms and cuDNN's benchmark and
    deterministic switches. A deterministic run in the test process then leaves the next test as
    it found it."""
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[2:]


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


@needs_gpu
@pytest.mark.xdist_group("gpu_runs")  # one worker trains the runs for both
def test_default_models_train_on_the_gpu(gpu_runs):
    assert gpu_runs["cnn"]["test"]["test/acc"] > 0.9 and gpu_runs["cnn"]["epochs"] == 2
    gan = gpu_runs["gan"]
    assert gan["epochs"] == 3 and Path(gan["samples"]).is_file() and Path(gan["last_checkpoint"]).is_file()


@needs_gpu
@pytest.mark.parametrize("model", ["cnn", "gan"])  # (dense compiles in benchmarks/gpu_check.sh's benchmark)
def test_compile_on_the_gpu(model, subset_dir, tmp_path):
    # --compile on CUDA is torch.compile's "reduce-overhead" mode: the networks run as CUDA graphs.
    # Dynamo's recompiles are logged: the CNN has none, the GAN one, its discriminator's graph for
    # the generator's step (tests/test_compile.py counts them on the CPU and says why)
    proc = run_cli("train.py", "--model", model, "--data-dir", str(subset_dir), "--logdir", str(tmp_path), *GPU,
                   "--max-epochs", "1", "--compile", env={"TORCH_LOGS": "recompiles"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    recompiles = [line for line in proc.stderr.splitlines() if "Recompiling function" in line]
    assert len(recompiles) == (1 if model == "gan" else 0), proc.stderr[-3000:]
    results = json.loads((tmp_path / model / "version_0" / "results.json").read_text())
    assert 0 < results["compile_seconds"] < results["seconds"]
    if model == "gan":
        assert Path(results["samples"]).is_file() and results["global_step"] > 0
    else:  # one epoch: well above chance, short of the full run's 97%
        assert results["test"]["test/acc"] > 0.8, results["test"]
    weights = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in weights) and all(w.isfinite().all() for w in weights.values())


@needs_gpu
def test_bf16_mixed_precision_trains(subset_dir, tmp_path):
    # (the GAN trains under bf16 in test_no_sync_inside_training_steps)
    results = train(subset_dir, tmp_path, "cnn", "--max-epochs", "1", "--precision", "bf16-mixed")
    assert results["test"]["test/acc"] > 0.8, results["test"]


@needs_gpu
def test_sigkill_then_resume_is_exact(subset_dir, tmp_path):
    # as tests/test_resume.py on the CPU, with deterministic GPU kernels: the same final state,
    # results and TensorBoard scalars. 7200 training images, 225 steps of 32 an epoch; SIGKILLed
    # after the checkpoint between the epochs (step 225) and after the one at step 300, a third
    # into the second epoch, each time restarted with --resume auto. The uninterrupted run and
    # the resumed ones train in this process
    args = ["--model", "gan", "--data-dir", str(subset_dir), "--max-epochs", "2", "--batch-size", "32", *GPU,
            "--deterministic", "--seed", "5", "--set", "model.arch=fc", "--set", "model.generator_hidden=[64]",
            "--set", "model.discriminator_hidden=[64]", "--set", "checkpoint_every_n_steps=50",
            "--set", "trainer.log_every_n_steps=10"]
    with deterministic_flags_restored():
        expected, got = uninterrupted_and_resumed(args, "gan", tmp_path, kill_at=("225e", "300"))
    assert got["global_step"] == expected["global_step"] == 450
    assert_same_training(expected, got)


@needs_gpu
def test_seeded_runs_are_identical(subset_dir, tmp_path):
    runs = [train(subset_dir, tmp_path / str(i), "cnn", "--max-epochs", "1", "--seed", "11", "--deterministic")
            for i in range(2)]
    assert runs[0]["test"] == runs[1]["test"]
    weights = [torch.load(r["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"] for r in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


class NoSyncInSteps(L.Callback):
    """Makes any host-device synchronisation from a training step's start to its end an error.

    Checking starts with the first step after the first that logs (global_step >= the Trainer's
    log_every_n_steps): the first self.log of a key makes Lightning create its result metric on
    the CPU and move it to the device (logger_connector/result.py), a copy the host waits for,
    once a run. The mode is set back after every checked step, and when a step raises (Lightning
    then calls on_exception, not on_train_batch_end). It moves itself to the front of the
    callbacks, so that its on_train_batch_end runs before the progress bar reads the running
    losses (as it may when it redraws), and the check starts in a helper at their end, after
    last.ckpt, which is written before a step begins.

    `set_mode` is torch.cuda.set_sync_debug_mode unless given (a test of this class on a CPU
    records the calls instead).
    """

    def __init__(self, set_mode: Callable[[str], None] | None = None):
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self.checked = 0  # steps run with the check on
        self._checking = False

    def setup(self, trainer, pl_module, stage):
        trainer.callbacks.remove(self)
        trainer.callbacks.insert(0, self)
        trainer.callbacks.append(_StartChecking(self))

    def start(self, trainer) -> None:
        if trainer.global_step >= trainer.log_every_n_steps:
            self.set_mode("error")
            self._checking = True

    def _stop(self) -> bool:
        was_checking, self._checking = self._checking, False
        if was_checking:
            self.set_mode("default")
        return was_checking

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.checked += self._stop()

    def on_exception(self, trainer, pl_module, exception):
        self._stop()

    def teardown(self, trainer, pl_module, stage):
        self._stop()


class _StartChecking(L.Callback):
    """NoSyncInSteps's start of a step, called after every other callback's."""

    def __init__(self, check: NoSyncInSteps):
        self.check = check

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.check.start(trainer)


def test_the_sync_check_starts_after_the_first_logging_step_and_always_ends(idx_dir):
    # on any machine: the modes NoSyncInSteps would set, recorded, over a run whose step 8 raises
    from mnist_pl import DenseClassifier

    class FailingAtStep8(DenseClassifier):
        def training_step(self, batch, batch_idx):
            if batch_idx == 8:
                raise RuntimeError("step 8 failed")
            return super().training_step(batch, batch_idx)

    modes: list[tuple[int, str]] = []
    model = FailingAtStep8(hidden_sizes=[8])
    check = NoSyncInSteps(set_mode=lambda mode: modes.append((model.global_step, mode)))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, log_every_n_steps=5, callbacks=[check], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(RuntimeError, match="step 8 failed"):
        trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    assert modes == [(5, "error"), (6, "default"), (6, "error"), (7, "default"), (7, "error"), (8, "default"),
                     (8, "error"), (8, "default")]
    assert check.checked == 3 and trainer.callbacks[0] is check and isinstance(trainer.callbacks[-1], _StartChecking)


def test_deterministic_flags_are_put_back():
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    with deterministic_flags_restored():
        L.Trainer(accelerator="cpu", deterministic=True, logger=False, enable_progress_bar=False)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


@needs_gpu
@pytest.mark.parametrize("model, precision", [("dense", "32-true"), ("cnn", "32-true"), ("cnn", "bf16-mixed"),
                                              ("gan", "32-true"), ("gan", "bf16-mixed")])
def test_no_sync_inside_training_steps(model, precision, subset_dir, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    config = load_config(model, overrides={"data.data_dir": str(subset_dir)})
    L.seed_everything(0, verbose=False)
    module = MODELS[model](**config["model"])
    check = NoSyncInSteps()
    # log_every_n_steps=5: steps 10, 15, ... log their losses inside the checked steps 5-39, and
    # the checkpoint every 20 steps is written between them
    trainer = build_trainer(module, TensorBoardLogger(tmp_path), 20, extra_callbacks=[check],
                            **{**config["trainer"], "accelerator": "gpu", "devices": 1, "precision": precision,
                               "max_epochs": 1, "limit_train_batches": 40, "limit_val_batches": 2,
                               "log_every_n_steps": 5})
    try:
        trainer.fit(module, datamodule=MNISTDataModule(**config["data"]))
    finally:  # whatever happened, the next test runs without the check
        torch.cuda.set_sync_debug_mode("default")
    assert check.checked == 35
    assert all(torch.isfinite(p).all() for p in module.parameters())


@needs_gpu
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


@needs_gpu
def test_ddp_batches_reach_the_gpu_without_sync(subset_dir):
    # one process's share under DDP (Lightning's DistributedSampler, rank 0 of 2), as IndexBatches
    # cuts it on the GPU: the epoch's order uploaded once, without waiting; the batches those of
    # BatchSampler's lists
    from torch.utils.data import BatchSampler, DistributedSampler

    from mnist_pl.data import IndexBatches

    datamodule = MNISTDataModule(data_dir=str(subset_dir), batch_size=128)
    datamodule.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    datamodule.setup("fit")
    sampler = DistributedSampler(datamodule.train_set, num_replicas=2, rank=0, shuffle=True, seed=3)
    batches = IndexBatches(sampler, 128, device=datamodule.train_set.labels.device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        cut = [datamodule.train_set.__getitems__(index)[1] for index in batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(labels.is_cuda for labels in cut) and sum(len(labels) for labels in cut) == 3600
    assert [b.tolist() for b in batches] == list(BatchSampler(sampler, 128, drop_last=False))


def run_on_cpu_only(*args: str) -> subprocess.CompletedProcess:
    """`python ARGS` in a process that sees no GPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@needs_gpu
@pytest.mark.xdist_group("gpu_runs")  # one worker trains the runs for both
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
