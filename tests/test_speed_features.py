"""The fast path's features work (how fast they are is for benchmarks/, never for tests)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from mnist_pl import DenseClassifier, GAN, MNISTDataModule
from mnist_pl.cli import main
from mnist_pl.callbacks import ProgressBar

from conftest import ROOT, run_cli


def test_epochs_reuse_workers_and_normalise_per_batch(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), num_workers=2, batch_size=40)
    dm.setup()
    assert dm.train_dataloader().persistent_workers  # no worker restarts at each epoch boundary
    assert dm.train_set.images.dtype == torch.uint8  # kept raw: nothing re-normalised per epoch
    # each batch is its raw images normalised with MNIST's mean and std (read in this process:
    # starting and stopping workers would cost seconds)
    dm.num_workers = 0
    loader = dm.train_dataloader()
    batches = [torch.as_tensor(batch) for batch in loader.batch_sampler]  # the indices of each batch
    for index, (images, labels) in zip(batches[:2], loader):
        expected = (dm.train_set.images[index].float() / 255 - 0.1307) / 0.3081
        assert torch.allclose(images, expected, atol=1e-5) and torch.equal(labels, dm.train_set.labels[index])


def test_data_stays_on_the_cpu_without_a_gpu(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), data_on_device=True)
    trainer = L.Trainer(accelerator="cpu", logger=False)
    dm.trainer = trainer
    dm.setup("fit")
    assert dm.train_set.images.device.type == "cpu"


class BatchJudge(L.Callback):
    """Each training batch's summed loss, correct predictions and size, computed here from the
    weights the step starts with (the same logits as the step's own when there is no dropout)."""

    def __init__(self):
        self.sums = torch.zeros(3, dtype=torch.float64)
        self.sizes: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        images, labels = batch
        with torch.no_grad():
            logits = pl_module(images)
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        self.sums += torch.tensor([float(loss), float((logits.argmax(1) == labels).sum()), len(labels)],
                                  dtype=torch.float64)
        self.sizes.append(len(labels))

    def means(self) -> tuple[float, float]:
        """The epoch's mean loss and accuracy over its images."""
        return float(self.sums[0] / self.sums[2]), float(self.sums[1] / self.sums[2])


def test_progress_bar_shows_the_running_loss_and_accuracy(idx_dir):
    model = DenseClassifier(hidden_sizes=[8], dropout=0.0)
    bar, judge = ProgressBar(refresh_rate=1), BatchJudge()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        logger=False, enable_checkpointing=False, callbacks=[bar, judge], log_every_n_steps=1)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    shown = bar.get_metrics(trainer, model)
    loss, accuracy = judge.means()
    assert (shown["loss"], shown["acc"]) == (f"{loss:.3f}", f"{accuracy:.3f}") and "val/acc" in shown


class StepRecorder(L.Callback):
    """The loss and batch size of every training step, as Lightning sees them."""

    def __init__(self):
        self.steps: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((float(outputs["loss"]), len(batch[1])))


def test_epoch_loss_is_the_mean_over_the_epochs_images(idx_dir):
    # the classifier sums each step's loss itself instead of calling self.log every step
    recorder, judge = StepRecorder(), BatchJudge()
    model = DenseClassifier(hidden_sizes=[8], dropout=0.0)
    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, callbacks=[recorder, judge], enable_progress_bar=False)
    datamodule = MNISTDataModule(data_dir=str(idx_dir))
    datamodule.setup("fit")
    datamodule.batch_size = next(b for b in range(20, 40) if len(datamodule.train_set) % b)  # a short last batch
    trainer.fit(model, datamodule=datamodule)
    sizes = [n for _, n in recorder.steps]
    assert len(set(sizes)) == 2
    expected = sum(loss * n for loss, n in recorder.steps) / sum(sizes)
    assert abs(float(trainer.callback_metrics["train/loss_epoch"]) - expected) < 1e-5
    loss, accuracy = judge.means()  # the same figures, from logits computed apart from the step
    assert float(trainer.callback_metrics["train/loss_epoch"]) == pytest.approx(loss, abs=1e-5)
    assert float(trainer.callback_metrics["train/acc"]) == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.parametrize("kind", ["dense", "gan"])
def test_step_losses_are_logged_every_log_every_n_steps(kind, idx_dir, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    if kind == "gan":  # manual optimisation counts its steps differently: the same rule must hold
        model, normalize, tags = GAN(arch="fc", latent_dim=8, generator_hidden=[16], discriminator_hidden=[16],
                                     num_samples=4), "symmetric", ["train/loss_d_step", "train/loss_g_step"]
    else:
        model, normalize, tags = DenseClassifier(hidden_sizes=[8]), "standard", ["train/loss_step"]
    trainer = L.Trainer(max_epochs=2, limit_val_batches=0, accelerator="cpu", log_every_n_steps=2,
                        logger=CSVLogger(tmp_path), enable_checkpointing=False, enable_progress_bar=False)
    datamodule = MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize=normalize)
    trainer.fit(model, datamodule=datamodule)
    rows = [row.split(",") for row in (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()]
    header = rows[0]
    for tag in tags:
        steps = [int(row[header.index("step")]) for row in rows[1:] if row[header.index(tag)]]
        assert steps == [step for step in range(trainer.global_step) if (step + 1) % 2 == 0], tag
    epoch_rows = [row for row in rows[1:] if row[header.index(tags[0].replace("_step", "_epoch"))]]
    assert len(epoch_rows) == 2  # one mean per epoch


def test_gan_epoch_means_are_the_mean_over_the_epochs_images(idx_dir):
    class Recorder(L.Callback):
        """Each step's losses, as the module reports them, and its batch size."""

        def __init__(self):
            self.steps: list[tuple[list[float], int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append((pl_module._last_losses.tolist(), len(batch[0])))

    model = GAN(arch="fc", latent_dim=8, generator_hidden=[16], discriminator_hidden=[16], num_samples=4)
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, accelerator="cpu", logger=False, callbacks=[recorder],
                        enable_checkpointing=False, enable_progress_bar=False)
    datamodule = MNISTDataModule(data_dir=str(idx_dir), batch_size=48, normalize="symmetric")
    datamodule.setup("fit")
    datamodule.batch_size = next(b for b in range(40, 60) if len(datamodule.train_set) % b)  # a short last batch
    trainer.fit(model, datamodule=datamodule)
    sizes = [n for _, n in recorder.steps]
    assert len(set(sizes)) == 2 and sum(sizes) == len(datamodule.train_set)
    metrics = trainer.callback_metrics
    for column, tag in enumerate(("train/loss_d_epoch", "train/loss_g_epoch")):
        expected = sum(losses[column] * n for losses, n in recorder.steps) / sum(sizes)
        assert abs(float(metrics[tag]) - expected) < 1e-5, tag
    assert 0 < float(metrics["train/d_real"]) < 1 and 0 < float(metrics["train/d_fake"]) < 1
    assert model.running_metrics() == pytest.approx(dict(zip(("loss_d", "loss_g"), recorder.steps[-1][0])))


def test_adam_steps_are_fused_kernels():
    from mnist_pl.optim import build_optimizer

    net = torch.nn.Linear(4, 2)
    for name in ("adam", "adamw"):
        assert build_optimizer(name, net.parameters(), 1e-3).param_groups[0]["fused"] is True
    assert not build_optimizer("rmsprop", net.parameters(), 1e-3).param_groups[0].get("fused")


@pytest.mark.parametrize("precision, clip, fused", [("32-true", 1.0, True), ("bf16-mixed", None, True),
                                                   ("bf16-mixed", 1.0, False)])
def test_training_fuses_adam_unless_mixed_precision_clips(precision, clip, fused, idx_dir):
    # Lightning refuses to clip gradients under mixed precision that a fused optimiser unscales
    model = DenseClassifier(hidden_sizes=[8])
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", precision=precision, gradient_clip_val=clip,
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    assert trainer.optimizers[0].param_groups[0]["fused"] is fused


def test_keep_freed_memory_sets_glibc_malloc(monkeypatch):
    import ctypes
    import platform

    from mnist_pl import environment

    calls = []

    class FakeLibc:
        def __init__(self, name):
            assert name == "libc.so.6"

        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", FakeLibc)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    assert environment.keep_freed_memory() is True
    assert calls == [(-3, 32 * 2**20), (-1, 2**30)]  # M_MMAP_THRESHOLD, then M_TRIM_THRESHOLD
    calls.clear()
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))  # macOS, Windows, musl
    assert environment.keep_freed_memory() is False and calls == []


def test_trainer_without_progress_bar(idx_dir):
    from mnist_pl.training import build_trainer

    model = DenseClassifier(hidden_sizes=[8])
    trainer = build_trainer(model, False, accelerator="cpu", max_epochs=1, limit_train_batches=2,
                            limit_val_batches=1, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    assert trainer.progress_bar_callback is None and trainer.global_step == 2


def test_profile_flag_writes_a_report(idx_dir, tmp_path, capsys):
    assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                 "--max-epochs", "1", "--accelerator", "cpu", "--profile", "--set", "model.hidden_sizes=[16]"]) == 0
    results = json.loads((tmp_path / "dense" / "version_0" / "results.json").read_text())
    report = open(results["profile"]).read()
    assert "run_training_batch" in report and "Profile:" in capsys.readouterr().out


@pytest.mark.slow
def test_benchmark_runs_and_prints_its_table(idx_dir):
    proc = run_cli(str(ROOT / "benchmarks" / "throughput.py"), "--data-dir", str(idx_dir), "--models", "dense",
                   "--epochs", "1", "--warmup", "0", "--workers", "0", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = [line for line in proc.stdout.splitlines() if line.startswith("dense")]
    assert len(row) == 1 and len(row[0].split()) == 8
    ratio = float(row[0].split()[4])  # mnist-pl / bare: a measured ratio, not a constant
    assert 0.2 < ratio < 5
    assert "data path alone" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "gan"])
def test_benchmark_graphed_path_trains_every_image(model, idx_dir):
    # on a CPU the capture runs the step as it is: this checks what the CUDA graph would hold
    import argparse
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    os.write(go_write, b"g" * 100)  # every turn granted at once
    args = argparse.Namespace(model=model, data_dir=str(idx_dir), dataset="mnist", accelerator="cpu",
                              precision="32-true", batch_size=50, compile=False, warmup=1, epochs=1,
                              slice_seconds=0.5, turn_fds=f"{go_read},{done_write}")
    seen = []
    original = torch.Tensor.index_select

    def record(self, dim, index):  # the batches the captured step cuts from the training images
        if self.dim() == 1 and self.dtype == torch.long:
            seen.append(index.clone())
        return original(self, dim, index)

    torch.Tensor.index_select = record
    try:
        timer, images = throughput.run_graphed(args)
    finally:
        torch.Tensor.index_select = original
        for fd in (go_read, go_write, done_read, done_write):
            os.close(fd)
    assert images == 288 and len(timer.seconds) == 2 and timer.seconds[1] > 0
    # two epochs of 288 images in batches of 50 (the last one 38), each image once an epoch
    assert [len(s) for s in seen] == [50] * 5 + [38] + [50] * 5 + [38]
    for epoch in (seen[:6], seen[6:]):
        assert sorted(torch.cat(epoch).tolist()) == list(range(288))
