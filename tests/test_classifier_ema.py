"""The classifiers' moving average of weights (model.ema_decay): its arithmetic, that eval mode,
checkpoints and loaders predict with it, and that a resumed run continues it exactly."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnist_pl import CNNClassifier, DenseClassifier, MNISTDataModule, build_trainer
from mnist_pl.checkpoints import load_classifier
from mnist_pl.errors import UserError


def test_no_average_by_default_and_a_bad_decay_is_a_user_error():
    assert DenseClassifier(hidden_sizes=[8]).net_ema is None
    assert "ema_steps" not in DenseClassifier(hidden_sizes=[8]).state_dict()
    with pytest.raises(UserError, match="ema_decay"):
        DenseClassifier(ema_decay=1.0)


def fit(model: L.LightningModule, idx_dir, tmp_path, epochs: int, resume=None) -> L.Trainer:
    L.seed_everything(0, verbose=False)
    trainer = build_trainer(model, False, accelerator="cpu", max_epochs=epochs, enable_progress_bar=False,
                            default_root_dir=tmp_path, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32), ckpt_path=resume)
    return trainer


def test_the_average_is_updated_each_step_and_predicts_in_eval_mode(idx_dir, tmp_path):
    model = CNNClassifier(channels=[4], hidden_size=8, ema_decay=0.9, lr=0.01)
    start = model.net_ema.state_dict()["head.5.weight"].clone()
    trainer = fit(model, idx_dir, tmp_path, epochs=1)
    assert model.ema_steps == trainer.global_step == 9  # 288 training images, 32 a batch
    average, live = model.net_ema.state_dict(), model.net.state_dict()
    assert not torch.equal(average["head.5.weight"], start)
    assert not torch.equal(average["head.5.weight"], live["head.5.weight"])
    assert not torch.equal(average["features.1.running_mean"], live["features.1.running_mean"])

    images = torch.randn(5, 1, 28, 28)
    model.eval()
    assert torch.equal(model(images), model.net_ema.eval()(images))
    assert not torch.allclose(model(images), model.net.eval()(images))
    model.train()
    torch.manual_seed(0)
    in_train_mode = model(images)
    torch.manual_seed(0)
    assert torch.equal(in_train_mode, model.net.train()(images))

    # the best checkpoint holds the average, and mnist-pl's loader predicts with it
    best = trainer.checkpoint_callback.best_model_path
    loaded, _ = load_classifier(best)
    saved = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(loaded.net_ema.state_dict()["head.5.weight"], saved["net_ema.head.5.weight"])
    assert torch.equal(loaded(images), loaded.net_ema(images))
    assert torch.equal(CNNClassifier.load_from_checkpoint(best).eval()(images), loaded(images))


@pytest.mark.slow  # three short fits
def test_a_resumed_run_continues_the_average_exactly(idx_dir, tmp_path):
    def dense() -> DenseClassifier:
        torch.manual_seed(1)  # the same initial weights each time
        return DenseClassifier(hidden_sizes=[16], ema_decay=0.95)

    straight = dense()
    fit(straight, idx_dir, tmp_path / "straight", epochs=2)
    trainer = fit(dense(), idx_dir, tmp_path / "first", epochs=1)
    resumed = dense()
    fit(resumed, idx_dir, tmp_path / "resumed", epochs=2, resume=trainer.checkpoint_callback.last_model_path)
    assert resumed.ema_steps == straight.ema_steps == 18
    for name, value in straight.net_ema.state_dict().items():
        assert torch.equal(resumed.net_ema.state_dict()[name], value), name
