"""Sample-quality metrics on inputs whose answers are known, the real-data noise floor, and the
SampleQuality callback that scores a GAN while it trains."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from conftest import make_digits
from mnist_pl import GAN, CNNClassifier, MNISTDataModule, SampleQuality, UserError, load_config, load_evaluator, train
from mnist_pl.cli import main
from mnist_pl.normalization import SYMMETRIC
from mnist_pl.quality import (Evaluator, classifier_score, format_scores, frechet_distance, noise_floor, sample_quality,
                              score_over_seeds)

TINY_GAN = {"latent_dim": 8, "generator_channels": [8, 4], "discriminator_channels": [4, 8],
            "generator_hidden": [16], "discriminator_hidden": [16], "num_samples": 20}


def bar_reader() -> nn.Module:
    """A hand-made "classifier" of conftest's bar digits: class k = a bright bar at row 2 + 2k.

    It has a 10-feature penultimate layer (the bar brightness per row pair), then a linear layer.
    """
    rows = nn.Linear(28 * 28, 10)
    with torch.no_grad():
        rows.weight.zero_(), rows.bias.zero_()
        for k in range(10):
            mask = torch.zeros(28, 28)
            mask[2 + 2 * k: 4 + 2 * k, 4:24] = 1 / 40
            rows.weight[k] = mask.flatten()
    head = nn.Linear(10, 10)
    with torch.no_grad():
        head.weight.copy_(torch.eye(10) * 10), head.bias.zero_()
    return nn.Sequential(nn.Flatten(), rows, nn.ReLU(), head)


def bar_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = make_digits(n, seed)
    return images.float().unsqueeze(1) / 127.5 - 1, labels.long()


@pytest.fixture
def evaluator() -> Evaluator:
    return Evaluator(bar_reader(), SYMMETRIC)  # it reads images in [-1, 1] as they are


def test_evaluator_reads_known_digits(evaluator):
    images, labels = bar_images(200)
    features, logits = evaluator(images, batch_size=64)
    assert features.shape == (200, 10) and logits.shape == (200, 10)
    assert torch.equal(logits.argmax(1), labels)


def test_identical_sets_have_zero_distance_and_shifted_sets_do_not(evaluator):
    images, _ = bar_images(300)
    features, _ = evaluator(images)
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-3)
    assert frechet_distance(features, features + 1.0) == pytest.approx(10, rel=1e-3)  # |mean shift|^2


def test_collapsed_set_scores_one_and_balanced_confident_set_scores_ten():
    collapsed = torch.randn(1, 10).repeat(500, 1)
    assert classifier_score(collapsed) == pytest.approx(1.0, abs=1e-4)
    confident = 30 * nn.functional.one_hot(torch.arange(1000) % 10, 10).float()
    assert classifier_score(confident) == pytest.approx(10.0, rel=1e-3)
    two_classes = 30 * nn.functional.one_hot(torch.arange(1000) % 2, 10).float()
    assert classifier_score(two_classes) == pytest.approx(2.0, rel=1e-3)


def test_sample_quality_on_known_digits(evaluator):
    images, labels = bar_images(400, seed=3)
    real, _ = bar_images(400, seed=4)
    quality = sample_quality(evaluator, images, real=real, labels=labels)
    expected = torch.bincount(labels, minlength=10).float() / 400
    assert quality["class_fractions"] == pytest.approx(expected.tolist(), abs=1e-4)
    assert quality["min_class_fraction"] == pytest.approx(float(expected.min()), abs=1e-4)
    assert quality["conditional_accuracy"] == 1.0
    entropy = -(expected * expected.log()).sum()
    assert quality["classifier_score"] == pytest.approx(math.exp(entropy), rel=0.01)
    assert quality["frechet_distance"] < 0.5  # two draws of the same distribution

    sevens = images[labels == 7]
    collapsed = sample_quality(evaluator, sevens, labels=torch.full((len(sevens),), 3))
    assert collapsed["classifier_score"] == pytest.approx(1.0, abs=0.01)
    assert collapsed["class_fractions"][7] == 1.0 and collapsed["min_class_fraction"] == 0
    assert collapsed["conditional_accuracy"] == 0.0 and "frechet_distance" not in collapsed


def test_evaluator_checkpoint_errors(tmp_path, idx_dir):
    with pytest.raises(UserError, match="does not exist"):
        load_evaluator(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_evaluator(tmp_path / "junk.ckpt")
    gan = GAN(arch="fc", latent_dim=4, generator_hidden=[8], discriminator_hidden=[8])
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(gan, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize="symmetric"))
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    with pytest.raises(UserError, match="holds a GAN.*evaluator needs a dense or cnn checkpoint"):
        load_evaluator(tmp_path / "gan.ckpt")


def test_noise_floor_of_real_digits(subset_cnn_run, subset_dir):
    """Real held-out digits against real training digits: what a perfect generator would score.

    The shared CNN is trained with label smoothing 0.1, which caps its confidence: the score of
    real digits lands near 6.4 instead of 9.6, and loading it says so.
    """
    with pytest.warns(UserWarning, match="label_smoothing=0.1"):
        evaluator = load_evaluator(subset_cnn_run["best_checkpoint"])
    assert isinstance(evaluator.classifier, CNNClassifier) and evaluator.num_features == 128
    floor = noise_floor(evaluator, MNISTDataModule(data_dir=subset_dir), num=1000)
    assert 5.0 < floor["classifier_score"] < 8.0
    assert floor["min_class_fraction"] > 0.07
    assert floor["conditional_accuracy"] > 0.95  # the CNN's own test accuracy
    assert floor["frechet_distance"] < 10.0


def test_scores_over_seeds_give_mean_and_spread(evaluator, idx_dir):
    def draw(num: int, seed: int) -> tuple[torch.Tensor, None]:
        images, _ = bar_images(num, seed=100 + seed)
        if seed == 1:  # a worse generator on the second seed: only the first half of the classes
            images = images[bar_images(num, seed=100 + seed)[1] < 5]
        return images, None

    scores = score_over_seeds(evaluator, MNISTDataModule(data_dir=idx_dir), seeds=[0, 1], num=60, draw=draw)
    assert list(scores) == ["real test vs train", "generated"]
    per_seed = [sample_quality(evaluator, draw(60, seed)[0]) for seed in (0, 1)]
    score = scores["generated"]["classifier_score"]
    values = [q["classifier_score"] for q in per_seed]
    assert [score[k] for k in ("mean", "min", "max")] == pytest.approx([sum(values) / 2, min(values), max(values)])
    assert score["min"] < 6 < 9 < score["max"]  # about 5 classes, then about 10
    assert scores["generated"]["class_fractions"][9] == pytest.approx(per_seed[0]["class_fractions"][9] / 2, abs=1e-4)
    assert "conditional_accuracy" not in scores["generated"]
    table = format_scores(scores, [0, 1])
    assert table.splitlines()[-1].startswith("seeds 0 1: mean (min-max)")
    assert f"{score['mean']:.3f} ({score['min']:.3f}-{score['max']:.3f})" in table
    floor = scores["real test vs train"]["conditional_accuracy"]
    assert floor["min"] == floor["max"] == 1.0  # the bar reader reads every real bar digit


def test_score_command_reports_several_seeds(subset_cnn_run, subset_dir, capsys):
    from mnist_pl.cli import main

    with pytest.warns(UserWarning, match="label_smoothing"):
        assert main(["score", "--evaluator", subset_cnn_run["best_checkpoint"], "--data-dir", str(subset_dir),
                     "--num", "200", "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("real test vs train") and out[-1].startswith("seeds 0 1: mean (min-max)")


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, logger=False,
                     enable_checkpointing=False, **kwargs)


def gan_data(idx_dir) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize="symmetric")


@pytest.fixture(scope="module")
def tiny_cnn_checkpoint(idx_dir, tmp_path_factory) -> Path:
    """A small CNN trained briefly on the bar digits: an evaluator checkpoint in seconds."""
    path = tmp_path_factory.mktemp("evaluator") / "cnn.ckpt"
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(CNNClassifier(channels=[4, 8], hidden_size=16), datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    trainer.save_checkpoint(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("conditional", [False, True])
def test_callback_logs_quality_every_epoch(conditional, idx_dir, tiny_cnn_checkpoint, tmp_path, capsys):
    gan = GAN(conditional=conditional, **TINY_GAN)
    quality = SampleQuality(str(tiny_cnn_checkpoint), num_samples=50)
    trainer = quiet_trainer(max_epochs=2, limit_train_batches=2, callbacks=[quality])
    trainer.fit(gan, datamodule=gan_data(idx_dir))
    metrics = trainer.callback_metrics
    for key in ("classifier_score", "frechet_distance", "min_class_fraction"):
        assert f"quality/{key}" in metrics
    # the figures `mnist-pl score` gives the saved GAN with the same evaluator, seed and count
    # (test_score.py checks that command against figures computed by hand)
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    assert main(["score", "--evaluator", str(tiny_cnn_checkpoint), "--data-dir", str(idx_dir), "--checkpoint",
                 str(tmp_path / "gan.ckpt"), "--num", "50", "--seed", "0"]) == 0
    generated = [line for line in capsys.readouterr().out.splitlines() if line.startswith("generated")][0].split()
    assert float(generated[1]) == pytest.approx(float(metrics["quality/classifier_score"]), abs=6e-4)
    assert float(generated[3]) == pytest.approx(float(metrics["quality/min_class_fraction"]), abs=6e-4)
    assert 1 <= metrics["quality/classifier_score"] <= 10
    assert ("quality/conditional_accuracy" in metrics) == conditional
    assert sum(quality.last_quality["class_fractions"]) == pytest.approx(1, abs=1e-3)
    assert "evaluator" not in str(list(gan.state_dict()))  # the judge is not saved with the GAN


def test_missing_evaluator_is_a_user_error(idx_dir, tmp_path):
    quality = SampleQuality(str(tmp_path / "nope.ckpt"))
    with pytest.raises(UserError, match="does not exist"):
        quiet_trainer(fast_dev_run=True, callbacks=[quality]).fit(GAN(**TINY_GAN), datamodule=gan_data(idx_dir))


def test_a_classifier_has_no_samples_to_score(idx_dir, tiny_cnn_checkpoint):
    quality = SampleQuality(str(tiny_cnn_checkpoint))
    with pytest.raises(UserError, match="draws no samples to score"):
        quiet_trainer(fast_dev_run=True, callbacks=[quality]).fit(
            CNNClassifier(channels=[4, 8], hidden_size=16), datamodule=MNISTDataModule(data_dir=str(idx_dir)))


@pytest.mark.slow
def test_train_adds_the_callback_from_the_quality_section(idx_dir, tiny_cnn_checkpoint, tmp_path):
    """The config's quality section (here through the key of older configs, model.evaluator_checkpoint)
    makes train() score samples: TensorBoard's quality/... tags and results.json's "quality"."""
    config = load_config("gan", overrides={
        "model.evaluator_checkpoint": str(tiny_cnn_checkpoint), "quality.num_samples": 40,
        "model.arch": "fc", "model.generator_hidden": [16], "model.discriminator_hidden": [16],
        "data.data_dir": str(idx_dir), "trainer.max_epochs": 1, "trainer.accelerator": "cpu",
        "trainer.enable_model_summary": False, "logdir": str(tmp_path)})
    assert config["quality"]["evaluator_checkpoint"] == str(tiny_cnn_checkpoint)
    results = train("gan", config)
    assert sum(results["quality"]["class_fractions"]) == pytest.approx(1, abs=1e-3)
    assert json.loads((Path(results["run_dir"]) / "results.json").read_text())["quality"] == results["quality"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(results["run_dir"])
    events.Reload()
    assert {"quality/classifier_score", "quality/frechet_distance"} <= set(events.Tags()["scalars"])
