"""Same seed, same result: two seeded, deterministic runs agree to the last bit."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_pl import MNISTDataModule

from mnist_pl.cli import main


def run(idx_dir, logdir, model, *extra):
    assert main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(logdir),
                 "--max-epochs", "2", "--accelerator", "cpu", "--seed", "7", "--deterministic", *extra]) == 0
    results = json.loads((logdir / model / "version_0" / "results.json").read_text())
    weights = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    return results, weights


@pytest.mark.slow
def test_two_seeded_runs_are_identical(idx_dir, tmp_path, capsys):
    small = ["--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16"]
    first, first_weights = run(idx_dir, tmp_path / "a", "cnn", *small)
    second, second_weights = run(idx_dir, tmp_path / "b", "cnn", *small)
    assert first["test"] == second["test"]
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    third, third_weights = run(idx_dir, tmp_path / "c", "cnn", *small, "--set", "seed=8")
    assert any(not torch.equal(first_weights[k], third_weights[k]) for k in first_weights)


@pytest.mark.slow
def test_seed_fixes_split_and_gan_noise(idx_dir, tmp_path, capsys, monkeypatch):
    """The run's seed picks the validation images (as a fresh data module with that split seed
    does) and the GAN's fixed noise (the same in two runs, another with another seed)."""
    datamodules = []
    setup = MNISTDataModule.setup

    def recording_setup(self, stage=None):
        datamodules.append(self)
        return setup(self, stage)

    monkeypatch.setattr(MNISTDataModule, "setup", recording_setup)
    tiny_gan = ["--set", "model.arch=fc", "--set", "model.generator_hidden=[16]",
                "--set", "model.discriminator_hidden=[16]", "--set", "trainer.limit_train_batches=1"]
    noise = [run(idx_dir, tmp_path / name, "gan", *tiny_gan, *extra)[1]["fixed_noise"]
             for name, extra in (("a", []), ("b", []), ("c", ["--set", "seed=8"]))]
    assert torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])

    def validation_images(split_seed):
        fresh = MNISTDataModule(data_dir=str(idx_dir), split_seed=split_seed)
        setup(fresh)
        return fresh.val_set.images
    assert torch.equal(datamodules[0].val_set.images, validation_images(7))
    assert torch.equal(datamodules[-1].val_set.images, validation_images(8))
    assert not torch.equal(validation_images(7), validation_images(8))
