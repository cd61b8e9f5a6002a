"""Tests of the exercise: they fail on the skeleton and pass once its TODOs are done.

    python -m pytest mnist_pl/exercises                              # your work
    MNIST_PL_EXERCISE=solutions python -m pytest mnist_pl/exercises  # the worked solution
"""

from __future__ import annotations

import copy

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from mnist_pl.exercises import load

exercise = load()


def bar_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` noisy 28x28 images whose class is the row of a bright bar: learnable in seconds."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    for i, label in enumerate(labels.tolist()):
        images[i, 0, 2 + 2 * label:4 + 2 * label, 4:24] = 1.0
    return images, labels


def test_todo1_small_cnn_shapes_and_layers():
    torch.manual_seed(0)
    model = exercise.SmallCNN()
    images = torch.zeros(4, 1, 28, 28)
    assert tuple(model.features(images).shape) == (4, 32, 7, 7), "features should end at [N, 32, 7, 7]"
    assert tuple(model(images).shape) == (4, 10), "the logits should be [N, 10]"
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(nn.Conv2d) == 2 and nn.Flatten in kinds and kinds.count(nn.Linear) == 1
    assert tuple(exercise.SmallCNN(num_classes=3)(images).shape) == (4, 3), "num_classes sets the outputs"


def test_todo2_train_step_lowers_the_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))  # not SmallCNN: this checks TODO 2 alone
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = bar_digits(64, seed=0)
    losses = [exercise.train_step(model, optimizer, images, labels) for _ in range(15)]
    assert all(isinstance(loss, float) for loss in losses), "train_step should return loss.item()"
    assert losses[-1] < 0.5 * losses[0], f"15 steps on one batch should halve the loss: {losses}"


def test_todo2_train_step_starts_from_fresh_gradients():
    """Two steps of plain gradient descent, done here by hand: each step uses its own gradient
    only. Without zero_grad, the second step would add the first one's gradient again."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    by_hand = copy.deepcopy(model)
    images, labels = bar_digits(32, seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        exercise.train_step(model, optimizer, images, labels)
        gradients = torch.autograd.grad(F.cross_entropy(by_hand(images), labels), list(by_hand.parameters()))
        with torch.no_grad():
            for parameter, gradient in zip(by_hand.parameters(), gradients):
                parameter -= 0.5 * gradient
    for got, expected in zip(model.parameters(), by_hand.parameters()):
        assert torch.allclose(got, expected, atol=1e-6), \
            "the second step differs from w - lr * (its own gradient): clear the old gradients first"


def test_todo3_optimizer_uses_the_learning_rate():
    """Adam's first step moves each weight by about lr (its update is lr * g / |g|): the step
    taken with configure_optimizers' optimiser must scale with hparams.lr."""
    images, labels = bar_digits(32, seed=4)
    for lr in (1e-3, 2e-2):
        torch.manual_seed(0)
        model = exercise.LitSmallCNN(lr=lr)
        optimizer = model.configure_optimizers()
        before = [p.detach().clone() for p in model.parameters()]
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        largest = max((p.detach() - b).abs().max().item() for p, b in zip(model.parameters(), before))
        assert abs(largest - lr) < 0.01 * lr, \
            f"with lr={lr} Adam's first step should move weights by up to {lr}, not {largest:.2g}: use self.hparams.lr"


def test_todo3_lightning_module_learns_to_classify():
    """Needs TODO 1 as well: LitSmallCNN trains a SmallCNN."""
    L.seed_everything(0, verbose=False)
    model = exercise.LitSmallCNN(lr=3e-3)
    train = torch.utils.data.TensorDataset(*bar_digits(512, seed=1))
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(train, batch_size=32, shuffle=True))
    images, labels = bar_digits(200, seed=2)  # images it never saw
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.9, f"after 2 epochs the CNN should tell the bars apart, got accuracy {accuracy:.2f}"
