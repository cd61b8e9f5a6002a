"""--compile: the same training as without it, checkpoints and resume unchanged, the graph still drawn.

Compiling takes 20-60 s a process on a 2-core CPU, so these tests are marked slow.
"""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_pl import CNNClassifier
from mnist_pl.cli import main
from mnist_pl.compiling import compile_mode, compile_model, eager_networks
from mnist_pl.errors import UserError

# (a constant learning rate: a run resumed for more epochs than it began with cannot go on with
# a one-cycle schedule sized for the first length)
TINY_CNN = ["--set", "model.channels=[4]", "--set", "model.hidden_size=8", "--set", "model.augment=false",
            "--set", "model.scheduler=none"]
TINY_GAN = ["--set", "model.arch=fc", "--set", "model.generator_hidden=[16]",
            "--set", "model.discriminator_hidden=[16]", "--set", "model.conditional=false"]


def test_compile_mode_follows_the_device():
    assert compile_mode(False, torch.device("cuda")) is None
    assert compile_mode(True, torch.device("cuda")) == "reduce-overhead"  # CUDA graphs
    assert compile_mode(True, torch.device("cpu")) == "default"
    assert compile_mode("max-autotune", torch.device("cpu")) == "max-autotune"
    with pytest.raises(UserError, match="not a torch.compile mode"):
        compile_mode("fastest", torch.device("cpu"))


@pytest.mark.slow  # importing the compiler takes 5-15 s
def test_compile_keeps_checkpoint_keys_and_traces_uncompiled():
    model = CNNClassifier(channels=[4], hidden_size=8)
    keys = list(model.state_dict())
    assert compile_model(model) == ["net"]  # metrics have no weights to train
    assert list(model.state_dict()) == keys
    with eager_networks(model):
        traced = torch.jit.trace(model.net.eval(), torch.zeros(1, 1, 28, 28))  # compiled: a RuntimeError
    assert traced is not None and model.net._compiled_call_impl is not None  # compiled again afterwards


def _train(idx_dir, logdir, model, *extra):
    # no dropout and no augmentation: compiled code draws its random numbers differently from
    # eager code, and without them a compiled and an eager run must agree. In-process: what
    # train.py runs, without importing PyTorch again for each run
    assert main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(logdir),
                 "--accelerator", "cpu", "--batch-size", "32", "--seed", "3", "--set", "model.dropout=0",
                 *(TINY_CNN if model == "cnn" else TINY_GAN), *extra]) == 0
    return json.loads((logdir / model / "version_0" / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "gan"])
def test_compiled_training_tests_checkpoints_resumes_and_matches_eager(model, idx_dir, tmp_path):
    # 288 training images, 9 steps an epoch. CNN: two epochs eager; one compiled, then resumed
    # compiled. GAN (slower to compile: three variants of its discriminator's step): one epoch each
    epochs = 2 if model == "cnn" else 1
    eager = _train(idx_dir, tmp_path / "eager", model, "--max-epochs", str(epochs))
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    compiled = _train(idx_dir, tmp_path / "compiled", model, "--max-epochs", "1", "--compile")
    assert counters["stats"]["unique_graphs"] > graphs_before, "--compile compiled nothing"
    if model == "cnn":
        compiled = _train(idx_dir, tmp_path / "compiled", model, "--max-epochs", "2", "--compile", "--resume", "last")
        assert compiled["resumed_from"]
    assert compiled["global_step"] == eager["global_step"] == 9 * epochs
    if model == "cnn":  # tested from its best checkpoint
        assert compiled["test"]["test/acc"] == pytest.approx(eager["test"]["test/acc"], abs=1 / 64)
    else:
        assert (tmp_path / "compiled" / "gan" / "version_0" / "samples.png").is_file()
    weights = [torch.load(r["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
               for r in (eager, compiled)]
    assert list(weights[0]) == list(weights[1]), "compiled checkpoints keep the keys of uncompiled ones"
    # the same arithmetic, fused and reordered by the compiler: float rounding only, after 18 Adam
    # steps and a resume. 1e-3 is far above such rounding (about 1e-6 a step) and far below what
    # a lost step, a changed data order or a reset optimiser would change
    for key in weights[0]:
        assert torch.allclose(weights[1][key].float(), weights[0][key].float(), atol=1e-3), key
    events = EventAccumulator(compiled["run_dir"])
    events.Reload()
    assert events.Tags()["graph"], "the TensorBoard graph of the uncompiled network"
