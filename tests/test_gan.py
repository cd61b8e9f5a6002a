"""The GAN variants (fully connected / DCGAN, unconditional / conditional), the EMA, and what
it logs during training (the sample-quality callback: tests/test_quality.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnist_pl import GAN, MNISTDataModule, UserError

TINY = {"latent_dim": 8, "generator_channels": [8, 4], "discriminator_channels": [4, 8],
        "generator_hidden": [16], "discriminator_hidden": [16], "num_samples": 20}
VARIANTS = [("fc", False), ("fc", True), ("dcgan", False), ("dcgan", True)]


def gan_data(idx_dir) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize="symmetric")


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **kwargs)


@pytest.mark.parametrize("arch, conditional", VARIANTS)
def test_each_variant_trains(arch, conditional, idx_dir):
    gan = GAN(arch=arch, conditional=conditional, **TINY)
    before = {name: p.detach().clone() for name, p in gan.named_parameters()}
    quiet_trainer(fast_dev_run=True).fit(gan, datamodule=gan_data(idx_dir))
    unchanged = [name for name, p in gan.named_parameters() if torch.equal(before[name], p)]
    assert not unchanged, f"not updated by a training step: {unchanged}"  # generator, discriminator, EMA
    assert gan.ema_steps == 1
    images = gan.sample(6, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 28, 28) and images.min() >= -1 and images.max() <= 1


def test_conditional_generator_uses_the_class():
    gan = GAN(conditional=True, **TINY)
    noise = torch.randn(4, 8)
    threes, sevens = gan.generate(noise, torch.full((4,), 3)), gan.generate(noise, torch.full((4,), 7))
    assert not torch.allclose(threes, sevens)
    assert gan.make_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert gan.make_labels(3, digit=7).tolist() == [7, 7, 7]
    with pytest.raises(UserError, match="outside 0-9"):
        gan.make_labels(3, digit=10)
    with pytest.raises(UserError, match="unconditional"):
        GAN(**TINY).sample(3, digit=7)


def test_conditional_grid_has_one_row_per_class():
    gan = GAN(conditional=True, **TINY)  # num_samples 20: two columns per class
    assert gan.fixed_labels.tolist() == [d for d in range(10) for _ in range(2)]
    grid = gan.sample_grid()
    assert grid.shape == (3, 10 * 30 + 2, 2 * 30 + 2)  # 28-pixel images, 2-pixel padding


def test_ema_follows_the_generator():
    gan = GAN(ema_decay=0.9, **TINY)
    ema, live = gan.generator_ema.project[0].weight, gan.generator.project[0].weight
    ema_mean, live_mean = gan.generator_ema.project[1].running_mean, gan.generator.project[1].running_mean
    with torch.no_grad():
        live.fill_(1.0), ema.fill_(0.0), live_mean.fill_(1.0)
    gan.update_ema()  # first step: the warm-up decay 1/10 wins over 0.9
    assert torch.allclose(ema, torch.full_like(ema, 0.9))
    assert torch.allclose(ema_mean, torch.full_like(ema_mean, 0.9))  # batch-norm statistics too
    for _ in range(200):
        gan.update_ema()
    assert torch.allclose(ema, torch.ones_like(ema), atol=1e-6) and gan.ema_steps == 201
    with torch.no_grad():
        live.fill_(2.0)
    gan.update_ema()  # now the full decay: 10% of the way to the new weights
    assert torch.allclose(ema, torch.full_like(ema, 1.1))


@pytest.mark.slow
def test_no_ema_means_sampling_the_generator(idx_dir):
    gan = GAN(ema_decay=0.0, **TINY)
    quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, logger=False,
                  enable_checkpointing=False).fit(gan, datamodule=gan_data(idx_dir))
    noise = torch.randn(5, 8)
    assert torch.equal(gan.generate(noise), gan.generate(noise, use_ema=False))


def test_ema_is_saved_and_restored_with_checkpoints(idx_dir, tmp_path):
    gan = GAN(**TINY)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, logger=False,
                            enable_checkpointing=False)
    trainer.fit(gan, datamodule=gan_data(idx_dir))
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    reloaded = GAN.load_from_checkpoint(tmp_path / "gan.ckpt", map_location="cpu")
    assert reloaded.ema_steps == 3
    noise = torch.randn(5, 8)
    assert torch.equal(gan.generate(noise), reloaded.generate(noise))
    assert not torch.equal(reloaded.generate(noise), reloaded.generate(noise, use_ema=False))


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="arch must be one of fc, dcgan"):
        GAN(arch="stylegan")
    with pytest.raises(UserError, match="ema_decay"):
        GAN(ema_decay=1.0)
    with pytest.raises(UserError, match="generator_channels must have 2 entries"):
        GAN(generator_channels=[8, 8, 8])


def test_no_evaluator_means_no_quality_metrics(idx_dir):
    gan = GAN(**TINY)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False)
    trainer.fit(gan, datamodule=gan_data(idx_dir))
    assert not [k for k in trainer.callback_metrics if k.startswith("quality/")]
    assert {"train/loss_d_epoch", "train/loss_g_epoch", "train/d_real", "train/d_fake"} <= set(trainer.callback_metrics)


def test_unconditional_options_train_together(idx_dir):
    gan = GAN(loss="hinge", spectral_norm=True, minibatch_std=True, augment=True, lr=1e-4, lr_d=4e-4, **TINY)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gan.discriminator.modules())
    assert sum("parametrizations" in name for name, _ in gan.discriminator.named_parameters()) == 3  # 2 convs, head
    trainer = quiet_trainer(fast_dev_run=True)
    trainer.fit(gan, datamodule=gan_data(idx_dir))
    opt_g, opt_d = trainer.optimizers
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert gan.ema_steps == 1


def test_hinge_loss_values():
    gan = GAN(loss="hinge", **TINY)
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: relu(1 - 2), relu(1 - 0.5) -> mean 0.25; fake: relu(1 - 2), relu(1 + 0) -> mean 0.5
    assert gan.discriminator_loss(real, fake).item() == pytest.approx(0.75)
    assert gan.generator_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_minibatch_std_sees_the_batch_spread():
    from mnist_pl.nets import MinibatchStd

    same = MinibatchStd()(torch.ones(4, 2, 7, 7))
    assert same.shape == (4, 3, 7, 7) and torch.all(same[:, 2] == 0)
    varied = MinibatchStd()(torch.randn(4, 2, 7, 7))
    assert torch.all(varied[:, 2] > 0)
    with pytest.raises(UserError, match="minibatch_std needs arch dcgan"):
        GAN(arch="fc", minibatch_std=True, **TINY)
    with pytest.raises(UserError, match="hinge"):
        GAN(loss="wasserstein", **TINY)


def test_augment_moves_what_the_discriminator_sees():
    gan = GAN(augment=True, **TINY).eval()
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    torch.manual_seed(0)
    moved = gan.judge(images, None)
    assert not torch.allclose(moved, gan.discriminator(images))


def test_kmeans_finds_separate_groups():
    from mnist_pl.clusters import kmeans

    g = torch.Generator().manual_seed(0)
    groups = [torch.randn(n, 784, generator=g) * 0.1 + centre for n, centre in ((50, 0.0), (30, 3.0), (20, -3.0))]
    centres, assigned = kmeans(torch.cat(groups), 3)
    # each group is one cluster, whatever the clusters' order
    truth = torch.cat([torch.full((len(group),), i) for i, group in enumerate(groups)])
    pairs = set(zip(truth.tolist(), assigned.tolist()))
    assert len(pairs) == 3 and len({c for _, c in pairs}) == 3
    for i, group in enumerate(groups):
        assert torch.allclose(centres[assigned[truth == i][0]], group.mean(0), atol=1e-5)


def test_a_generator_reads_its_class_from_the_noise_in_each_class_share():
    from mnist_pl import DCGANGenerator

    generator = DCGANGenerator(latent_dim=8, channels=[8, 4], num_classes=3, code_from_noise=True).eval()
    noise = torch.randn(100_000, 8, generator=torch.Generator().manual_seed(0))
    equal = torch.bincount(generator.code_of(noise), minlength=3) / len(noise)
    assert torch.allclose(equal, torch.full((3,), 1 / 3), atol=0.01), equal
    generator.set_class_shares(torch.tensor([0.5, 0.3, 0.2]))
    shares = torch.bincount(generator.code_of(noise), minlength=3) / len(noise)
    assert torch.allclose(shares, torch.tensor([0.5, 0.3, 0.2]), atol=0.01), shares
    with torch.no_grad():  # without a class, it draws the one the noise stands for
        assert torch.equal(generator(noise[:16]), generator(noise[:16], generator.code_of(noise[:16])))
        assert not torch.equal(generator(noise[:16]), generator(noise[:16], (generator.code_of(noise[:16]) + 1) % 3))


def test_clusters_are_fitted_once_and_judged_with_each_image(idx_dir, tmp_path):
    from mnist_pl.clusters import kmeans

    gan = GAN(clusters=4, **TINY)
    assert not gan.cluster_centres.any()
    data = gan_data(idx_dir)
    quiet_trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False).fit(gan, datamodule=data)
    images = data.train_set.normalised_images()
    centres, assigned = kmeans(images.flatten(1), 4)  # what training computed, computed here
    assert torch.equal(gan.cluster_centres, centres)
    assert torch.equal(gan.cluster_of(images), assigned)
    shares = torch.bincount(assigned, minlength=4) / len(assigned)
    noise = torch.randn(50_000, 8, generator=torch.Generator().manual_seed(1))
    for generator in (gan.generator, gan.generator_ema):
        drawn = torch.bincount(generator.code_of(noise), minlength=4) / len(noise)
        assert torch.allclose(drawn, shares, atol=0.01), (drawn, shares)
    # fitted clusters stay: a further fit (as after resuming) does not sort the images again
    gan.cluster_centres += 0.5
    quiet_trainer(max_steps=2, limit_val_batches=0, logger=False).fit(gan, datamodule=data)
    assert torch.equal(gan.cluster_centres, centres + 0.5)
    path = tmp_path / "gan.ckpt"  # and checkpoints keep them
    gan.trainer.save_checkpoint(path)
    reloaded = GAN.load_from_checkpoint(path)
    assert torch.equal(reloaded.cluster_centres, centres + 0.5)
    assert torch.equal(reloaded.generator_ema.code_edges, gan.generator_ema.code_edges)
    with pytest.raises(UserError, match="clusters is for an unconditional GAN"):
        GAN(conditional=True, clusters=4, **TINY)
