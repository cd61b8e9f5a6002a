"""What training puts in TensorBoard besides scalars: validation figures and the model graph."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_pl import GAN, CNNClassifier, MNISTDataModule, build_trainer
from mnist_pl.loggers import GraphLogger


def events(log_dir: str) -> EventAccumulator:
    accumulator = EventAccumulator(log_dir, size_guidance={"images": 0})
    accumulator.Reload()
    return accumulator


def fit(model, idx_dir, tmp_path, **trainer_args):
    logger = GraphLogger(str(tmp_path), name="run", log_graph=True, default_hp_metric=False)
    trainer = build_trainer(model, logger, accelerator="cpu",
                            enable_model_summary=False, limit_train_batches=2, **trainer_args)
    normalize = "symmetric" if isinstance(model, GAN) else "standard"
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize=normalize))
    return events(trainer.logger.log_dir)


@pytest.mark.slow
@pytest.mark.parametrize("every, epochs, steps", [(2, 3, [1, 2]), (0, 1, [])])
def test_validation_figures_every_n_epochs_and_after_the_last(every, epochs, steps, idx_dir, tmp_path):
    model = CNNClassifier(channels=[4, 8], hidden_size=16, figures_every_n_epochs=every)
    logged = fit(model, idx_dir, tmp_path, max_epochs=epochs)
    for tag in ("val/confusion_matrix", "val/misclassified"):
        logged_steps = [e.step for e in logged.Images(tag)] if tag in logged.Tags()["images"] else []
        assert logged_steps == steps
    assert logged.Tags()["graph"]  # log_graph: the model graph goes to TensorBoard too


def test_gan_graph_goes_to_tensorboard(idx_dir, tmp_path):
    gan = GAN(latent_dim=8, generator_hidden=[16], discriminator_hidden=[16], num_samples=4)
    nodes = [node.name for node in fit(gan, idx_dir, tmp_path, max_epochs=1).Graph().node]
    assert "input/noise" in nodes and any("Generator[generator]" in name for name in nodes)


def test_kept_mistakes_are_the_most_confident_wrong_ones():
    model = CNNClassifier(channels=[4], hidden_size=8)
    model.MISTAKES_SHOWN = 3
    labels = torch.tensor([0, 1, 0, 1])
    for offset in (0.0, 0.5):  # two batches; the second one's mistakes are more confident
        images = torch.arange(4).float().view(4, 1, 1, 1) + 10 * offset
        logits = torch.tensor([[3.0, 0], [0, 3.0], [0, 1.0 + offset], [2.0 + offset, 0]])
        model._keep_mistakes(images, labels, logits)
    images, true, predicted, confidence = model._mistakes
    wrong = confidence >= 0
    # the mistakes are images 2 and 3 of each batch; the top three by confidence are kept
    assert images[wrong].flatten().tolist() == [8.0, 3.0, 7.0]
    assert true[wrong].tolist() == [1, 1, 0] and predicted[wrong].tolist() == [0, 0, 1]
