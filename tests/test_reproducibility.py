"""Same seed, same result: two seeded, deterministic runs agree to the last bit."""

from __future__ import annotations

import json

import torch

from mnist_pl.cli import main


def run(idx_dir, logdir, model, *extra):
    assert main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(logdir),
                 "--max-epochs", "2", "--accelerator", "cpu", "--seed", "7", "--deterministic", *extra]) == 0
    results = json.loads((logdir / model / "version_0" / "results.json").read_text())
    weights = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    return results, weights


def test_two_seeded_runs_are_identical(idx_dir, tmp_path, capsys):
    small = ["--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16"]
    first, first_weights = run(idx_dir, tmp_path / "a", "cnn", *small)
    second, second_weights = run(idx_dir, tmp_path / "b", "cnn", *small)
    assert first["test"] == second["test"]
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    third, third_weights = run(idx_dir, tmp_path / "c", "cnn", *small, "--set", "seed=8")
    assert any(not torch.equal(first_weights[k], third_weights[k]) for k in first_weights)


def test_seed_fixes_split_and_gan_noise(idx_dir, tmp_path, capsys):
    tiny_gan = ["--set", "model.arch=fc", "--set", "model.generator_hidden=[16]",
                "--set", "model.discriminator_hidden=[16]", "--set", "trainer.limit_train_batches=1"]
    _, weights = run(idx_dir, tmp_path / "g", "gan", *tiny_gan)
    config = (tmp_path / "g" / "gan" / "version_0" / "config.yaml").read_text()
    assert "split_seed: 7" in config and "sample_seed: 7" in config
    expected = torch.randn(80, 64, generator=torch.Generator().manual_seed(7))
    assert torch.equal(weights["fixed_noise"], expected)
