"""`mnist-pl generate`: digits from a checkpoint alone, as pictures or arrays, and its errors."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from mnist_pl import GAN, DenseClassifier, MNISTDataModule, load_gan
from mnist_pl.cli import EXIT_USER_ERROR, main
from mnist_pl.generate import slerp

TINY = {"latent_dim": 8, "generator_channels": [8, 4], "discriminator_channels": [4, 8], "num_samples": 10}


def fit_and_save(model: L.LightningModule, idx_dir, path, normalize: str):
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize=normalize))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def checkpoints(idx_dir, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("generate")
    return {
        "gan": fit_and_save(GAN(**TINY), idx_dir, folder / "gan.ckpt", "symmetric"),
        "cgan": fit_and_save(GAN(conditional=True, **TINY), idx_dir, folder / "cgan.ckpt", "symmetric"),
        "dense": fit_and_save(DenseClassifier(hidden_sizes=[8]), idx_dir, folder / "dense.ckpt", "standard"),
    }


def generate(*args) -> int:
    return main(["generate", *map(str, args)])


def test_npy_and_pt_hold_the_raw_images(checkpoints, tmp_path):
    assert generate("--checkpoint", checkpoints["gan"], "--num", 12, "--out", tmp_path / "a.npy") == 0
    images = np.load(tmp_path / "a.npy")
    assert images.shape == (12, 1, 28, 28) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
    assert generate("--checkpoint", checkpoints["gan"], "--num", 12, "--out", tmp_path / "a.pt") == 0
    assert torch.equal(torch.load(tmp_path / "a.pt"), torch.from_numpy(images))  # same seed, same digits


def test_seed_fixes_the_digits(checkpoints, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate("--checkpoint", checkpoints["cgan"], "--num", 5, "--seed", seed, "--out", tmp_path / f"{name}.npy")
    a, b, c = (np.load(tmp_path / f"{name}.npy") for name in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_digit_asks_the_conditional_generator_for_one_class(checkpoints, tmp_path, monkeypatch):
    """The generator is asked for class 7 only, with noise that the seed fixes; the file holds
    what it drew for that noise, and class 3 would have drawn something else."""
    asked = []
    draw = GAN.generate

    def recording_generate(self, noise, labels=None, use_ema=True):
        asked.append((noise.clone(), labels.clone()))
        return draw(self, noise, labels, use_ema)

    monkeypatch.setattr(GAN, "generate", recording_generate)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        generate("--checkpoint", checkpoints["cgan"], "--num", 6, "--digit", 7, "--seed", seed, "--out", tmp_path / f"{name}.pt")
    (noise, labels), (again, _), (other, _) = asked
    assert labels.tolist() == [7] * 6 and noise.shape == (6, 8)
    assert torch.equal(noise, again) and not torch.equal(noise, other)
    monkeypatch.undo()
    gan = GAN.load_from_checkpoint(checkpoints["cgan"], map_location="cpu")
    sevens = torch.load(tmp_path / "a.pt")
    assert torch.equal(sevens, gan.generate(noise, torch.full((6,), 7)))
    assert not torch.equal(sevens, gan.generate(noise, torch.full((6,), 3)))


def test_png_grid(checkpoints, tmp_path):
    assert generate("--checkpoint", checkpoints["gan"], "--num", 64, "--out", tmp_path / "grid.png") == 0
    # 8 columns of 28 pixels and 2-pixel gaps, enlarged 3 times to reach 600 pixels
    assert Image.open(tmp_path / "grid.png").size == (3 * (8 * 30 + 2), 3 * (8 * 30 + 2))
    # a conditional model without --digit: one row per class, as samples.png (23 digits: 3 columns)
    assert generate("--checkpoint", checkpoints["cgan"], "--num", 23, "--out", tmp_path / "c.png") == 0
    grid = torch.from_numpy(np.array(Image.open(tmp_path / "c.png").convert("L"))).float()
    assert grid.shape == (2 * (10 * 30 + 2), 2 * (3 * 30 + 2))
    tiles = grid[::2, ::2][2:, 2:].unfold(0, 28, 30).unfold(1, 28, 30)  # [row, column, 28, 28]
    blank = (tiles == 255).flatten(2).all(2)
    assert blank.sum() == 7 and not blank[:3].any() and blank[3:, 2].all()  # 0-2 get 3 digits, 3-9 get 2


def test_interpolation_strip(checkpoints, tmp_path):
    out = tmp_path / "walk.pt"
    assert generate("--checkpoint", checkpoints["cgan"], "--num", 3, "--interpolate", 7, "--digit", 2, "--out", out) == 0
    walks = torch.load(out)
    assert walks.shape == (3, 7, 1, 28, 28) and walks.min() >= -1 and walks.max() <= 1
    steps = (walks[:, 1:] - walks[:, :-1]).abs().mean()
    assert steps < (walks[:, -1] - walks[:, 0]).abs().mean()  # a walk, not independent samples
    assert generate("--checkpoint", checkpoints["gan"], "--num", 2, "--interpolate", 5, "--out", tmp_path / "w.png") == 0
    assert Image.open(tmp_path / "w.png").size == (4 * (5 * 30 + 2), 4 * (2 * 30 + 2))


def test_slerp_ends_at_its_endpoints():
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert path.shape == (4, 5, 16)
    assert torch.allclose(path[:, 0], a, atol=1e-5) and torch.allclose(path[:, -1], b, atol=1e-5)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("classifier", "holds a dense model, but generating digits needs a gan checkpoint"),
    ("digit_unconditional", "unconditional GAN"),
    ("digit_out_of_range", "outside 0-9"),
    ("suffix", "unknown suffix '.gif'"),
    ("interpolate_one", "at least 2 steps"),
])
def test_user_errors_exit_2_with_one_line(case, message, checkpoints, tmp_path, capsys):
    args = {
        "missing": ["--checkpoint", tmp_path / "nope.ckpt"],
        "classifier": ["--checkpoint", checkpoints["dense"]],
        "digit_unconditional": ["--checkpoint", checkpoints["gan"], "--digit", 3],
        "digit_out_of_range": ["--checkpoint", checkpoints["cgan"], "--digit", 12],
        "suffix": ["--checkpoint", checkpoints["gan"], "--out", tmp_path / "x.gif"],
        "interpolate_one": ["--checkpoint", checkpoints["gan"], "--interpolate", 1],
    }[case]
    out = [] if case == "suffix" else ["--out", tmp_path / "x.png"]
    assert generate(*args, *out) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_module_entry_point_on_a_checkpoint_alone(checkpoints, tmp_path, monkeypatch):
    """As a user runs it, from a folder with no data and no configs."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this checkout's mnist_pl, whatever is installed
    result = run_cli("-m", "mnist_pl", "generate", "--checkpoint", str(checkpoints["cgan"]), "--digit", "4",
                     "--num", "8", "--out", "fours.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "8 digits" in result.stdout and (tmp_path / "fours.png").stat().st_size > 0
