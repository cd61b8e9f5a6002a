"""Each LightningModule: a fast_dev_run, and a checkpoint that reloads to the same outputs."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnist_pl import CNNClassifier, DenseClassifier, GAN, MNISTDataModule
from mnist_pl.augment import random_affine, random_erasing, random_flip
from mnist_pl.optim import OPTIMIZERS, SCHEDULERS

SMALL = {
    "dense": (DenseClassifier, {"hidden_sizes": [32], "augment": True}),
    "dense-batch-norm": (DenseClassifier, {"hidden_sizes": [32, 16], "batch_norm": True}),
    "cnn": (CNNClassifier, {"channels": [4, 8], "hidden_size": 16, "scheduler": "onecycle"}),
    "gan": (GAN, {"arch": "fc", "latent_dim": 8, "generator_hidden": [16], "discriminator_hidden": [16], "num_samples": 4}),
}


def datamodule(idx_dir, model_name):
    return MNISTDataModule(data_dir=str(idx_dir), batch_size=32,
                           normalize="symmetric" if model_name == "gan" else "standard")


@pytest.mark.parametrize("name", SMALL)
def test_fast_dev_run(name, idx_dir):
    cls, kwargs = SMALL[name]
    model = cls(**kwargs)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule(idx_dir, name))
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed), "every parameter should have been updated by one training step"


@pytest.mark.parametrize("name", SMALL)
def test_checkpoint_reloads_same_model(name, idx_dir, tmp_path):
    cls, kwargs = SMALL[name]
    model = cls(**kwargs)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        default_root_dir=tmp_path, enable_progress_bar=False, logger=False)
    trainer.fit(model, datamodule=datamodule(idx_dir, name))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    reloaded = cls.load_from_checkpoint(path)
    assert reloaded.hparams == model.hparams
    model.eval(), reloaded.eval()
    inputs = torch.randn(3, kwargs["latent_dim"]) if name == "gan" else torch.randn(3, 1, 28, 28)
    assert torch.equal(model(inputs), reloaded(inputs))


@pytest.mark.slow
def test_classifier_learns_generated_digits(idx_dir):
    """Not just runs: a small CNN fits the generated bars, so the loop really learns."""
    model = CNNClassifier(channels=[4, 8], hidden_size=16, lr=0.01)
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=32)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"] > 0.9


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_optimizer_and_schedule_configures(optimizer, scheduler, idx_dir):
    model = DenseClassifier(hidden_sizes=[8], optimizer=optimizer, scheduler=scheduler, label_smoothing=0.1)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu",
                        enable_progress_bar=False, logger=False, enable_checkpointing=False,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    assert type(trainer.optimizers[0]).__name__.lower() == optimizer
    assert bool(trainer.lr_scheduler_configs) == (scheduler != "none")


@pytest.mark.parametrize("convs, expected", [(2, [(1, 4), (4, 4), (4, 8), (8, 8)]), (1, [(1, 4), (4, 8)]),
                                              ([1, 3], [(1, 4), (4, 8), (8, 8), (8, 8)])])
def test_convs_per_block_sets_each_blocks_convolutions(convs, expected):
    net = CNNClassifier(channels=[4, 8], hidden_size=16, convs_per_block=convs).net
    convs_found = [(m.in_channels, m.out_channels) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs_found == expected
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2 and net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("batch_norm, expected", [
    (False, ["Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]),
    (True, ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout",
            "Linear"])])
def test_dense_batch_norm_follows_each_hidden_layer(batch_norm, expected):
    net = DenseClassifier(hidden_sizes=[32, 16], batch_norm=batch_norm).net
    assert [type(m).__name__ for m in net.layers] == expected
    hidden = [m for m in net.layers if isinstance(m, torch.nn.Linear)][:-1]
    assert all((m.bias is None) == batch_norm for m in hidden)  # batch norm's shift replaces the bias
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_no_blocks_is_still_a_network():
    """channels=[] leaves the head alone on the pixels, as it did before convs_per_block."""
    net = CNNClassifier(channels=[], hidden_size=16).net
    assert not any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("convs", [[1], [1, 0]])
def test_convs_per_block_must_fit_the_blocks(convs):
    with pytest.raises(ValueError, match="convs_per_block"):
        CNNClassifier(channels=[4, 8], convs_per_block=convs)


def test_random_affine_keeps_shape_and_background():
    images = torch.full((4, 1, 28, 28), -0.42)
    images[:, :, 10:18, 10:18] = 2.8
    warped = random_affine(images)
    assert warped.shape == images.shape
    assert torch.allclose(warped[:, :, 0, 0], torch.tensor(-0.42))  # corners stay background
    assert not torch.equal(warped, images)


def test_random_flip_mirrors_about_half_of_the_images_and_nothing_else():
    torch.manual_seed(0)
    images = torch.randn(400, 1, 28, 28)
    flipped = random_flip(images)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    kept = (flipped == images).flatten(1).all(1)
    assert torch.equal(mirrored | kept, torch.ones(400, dtype=torch.bool))  # each image one or the other
    assert 150 < mirrored.sum() < 250


def test_random_erasing_blanks_one_rectangle_of_the_asked_size_per_image():
    torch.manual_seed(0)
    images = torch.rand(300, 1, 28, 28) + 1.0  # background (the minimum) will be below every pixel
    images[0, 0, 0, 0] = -0.5
    erased = random_erasing(images, 1.0)
    assert torch.equal(random_erasing(images, 0.0), images)
    changed = erased != images
    for image, mask in zip(erased[1:], changed[1:, 0]):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # exactly a filled rectangle, of background, covering 2-33% of the image (give or take rounding)
        assert mask.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        assert torch.all(image[0][mask] == -0.5)
        assert 0.01 <= mask.float().mean() <= 0.36
    half = (random_erasing(images, 0.5) != images).flatten(1).any(1).float().mean()
    assert 0.4 < half < 0.6


@pytest.mark.parametrize("kwargs", [{"flip": True}, {"erase": 0.5}])
def test_flip_and_erase_change_only_training_batches(kwargs):
    torch.manual_seed(0)
    model = CNNClassifier(channels=[4], hidden_size=8, **kwargs)
    plain = CNNClassifier(channels=[4], hidden_size=8)
    plain.load_state_dict(model.state_dict())
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    model.eval(), plain.eval()
    assert torch.equal(model(images), plain(images))  # predictions see the images as they are
    model.train(), plain.train()
    model.trainer = plain.trainer = L.Trainer(logger=False, log_every_n_steps=0)
    torch.manual_seed(1)
    loss = model.training_step((images, labels), 0)
    torch.manual_seed(1)
    assert loss != plain.training_step((images, labels), 0)  # training sees them changed


def test_gan_generator_range_and_sampling():
    gan = GAN(**SMALL["gan"][1])
    images = gan.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    again = gan.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)
    assert gan.sample_grid().shape[0] == 3
