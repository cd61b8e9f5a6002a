"""Reading checkpoints back: each names its model, and those written before that still load."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from mnist_pl import CNNClassifier, DenseClassifier, GAN, UserError, datamodule_for, load_gan, load_model
from mnist_pl.module import MODEL_NAME_KEY

# written by mnist-pl before checkpoints named their model (weights only, a few KB each): a
# DenseClassifier(hidden_sizes=[8]) and a fully connected GAN with the evaluator_checkpoint and
# quality_samples hyperparameters it took then
OLD = Path(__file__).resolve().parent / "fixtures"


def same_weights(model: L.LightningModule, checkpoint: dict) -> bool:
    saved = checkpoint["state_dict"]
    return model.state_dict().keys() == saved.keys() and all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def save(model: L.LightningModule, path: Path) -> Path:
    trainer = L.Trainer(max_steps=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)  # save without training
    trainer.save_checkpoint(path, weights_only=True)
    return path


@pytest.mark.parametrize("name, cls", [("dense", DenseClassifier), ("cnn", CNNClassifier), ("gan", GAN)])
def test_checkpoints_name_their_model(name, cls, tmp_path):
    model = cls()
    checkpoint = torch.load(save(model, tmp_path / "model.ckpt"), weights_only=True)
    assert checkpoint[MODEL_NAME_KEY] == name
    loaded, _ = load_model(tmp_path / "model.ckpt")
    assert type(loaded) is cls


def test_the_name_decides_not_the_hyperparameters(tmp_path):
    """Hyperparameters both classifiers take would be guessed as dense (the first that fits)."""
    path = save(CNNClassifier(), tmp_path / "cnn.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"] = {"lr": 1e-3}
    torch.save(checkpoint, path)
    loaded, _ = load_model(path)
    assert type(loaded) is CNNClassifier


def test_an_unknown_name_is_no_mnist_pl_model(tmp_path):
    path = save(DenseClassifier(), tmp_path / "dense.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint[MODEL_NAME_KEY] = "resnet"
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match="holds no mnist-pl model"):
        load_model(path)


def test_old_classifier_checkpoint_loads():
    checkpoint = torch.load(OLD / "old_dense.ckpt", weights_only=True)
    assert MODEL_NAME_KEY not in checkpoint  # the old format: the model is guessed
    model, _ = load_model(OLD / "old_dense.ckpt")
    assert type(model) is DenseClassifier and list(model.hparams.hidden_sizes) == [8]
    assert same_weights(model, checkpoint)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert datamodule_for(checkpoint).normalize == "standard"


def test_hyperparameters_are_checked_as_they_load(tmp_path):
    checkpoint = torch.load(OLD / "old_dense.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["lr"] = -1.0
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(UserError, match=r"edited.ckpt holds hyperparameters its dense model does not allow: "
                                        r"DenseClassifier\(lr=-1.0\): lr must be above 0."):
        load_model(tmp_path / "edited.ckpt")


def test_old_gan_checkpoint_with_its_evaluator_hyperparameters_loads():
    checkpoint = torch.load(OLD / "old_gan.ckpt", weights_only=True)
    assert {"evaluator_checkpoint", "quality_samples"} <= set(checkpoint["hyper_parameters"])
    gan = load_gan(OLD / "old_gan.ckpt")
    assert gan.hparams.arch == "fc" and gan.hparams.latent_dim == 4
    assert "evaluator_checkpoint" not in gan.hparams
    assert same_weights(gan, checkpoint)
    assert gan.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 28, 28)
