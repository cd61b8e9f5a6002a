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


# graphs dynamo compiles in a 2-epoch compiled run, and how many of those compiles are recompiles:
#   dense, cnn: one graph of the network's training step. Nothing is compiled for the model
#     summary, the sanity check, validation or test (they run eager), and the last, smaller batch
#     of each epoch is left out, so no second batch shape makes a second (dynamic) graph.
#   gan: the generator once; the discriminator twice, once for its own step (gradients for its
#     weights, none for its inputs) and once for the generator's step (gradients through its
#     input, its weights frozen by toggled_optimizer): two jobs, two graphs, the second one a
#     recompile of the first. Nothing more over two epochs: toggling requires_grad back and forth
#     picks between the two, and stays far below dynamo's recompile limit (8).
EXPECTED_COMPILES = {"dense": (1, 0), "cnn": (1, 0), "gan": (3, 1)}  # (graphs, of which recompiles)
TINY = {"dense": ["--set", "model.hidden_sizes=[16]"],
        "cnn": ["--set", "model.channels=[4]", "--set", "model.hidden_size=8"],
        "gan": ["--set", "model.generator_channels=[8, 4]", "--set", "model.discriminator_channels=[4, 8]"]}


@pytest.fixture(scope="module")
def uneven_idx_dir(tmp_path_factory):
    from conftest import make_idx_folder

    # 330 images: 297 to train on, 9 batches of 32 and 9 images left over
    return make_idx_folder(tmp_path_factory.mktemp("uneven"), n_train=330)


@pytest.mark.slow  # 15-40 s a model on 2 cores, most of it Lightning's start and the CPU training
@pytest.mark.parametrize("model", list(EXPECTED_COMPILES))
def test_compiled_training_compiles_each_graph_once(model, uneven_idx_dir, tmp_path, monkeypatch):
    import torch._dynamo
    from torch._dynamo.utils import clear_compilation_metrics, counters, get_compilation_metrics

    # Which graphs dynamo makes, and when it recompiles, is decided by its guards before any
    # backend sees a graph: the "eager" backend counts the same graphs as inductor, in seconds
    # instead of minutes (test_compiled_training_tests_checkpoints_resumes_and_matches_eager
    # runs the real compiler)
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **_: compile_module(self, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    clear_compilation_metrics()
    try:
        assert main(["train", "--model", model, "--data-dir", str(uneven_idx_dir), "--logdir", str(tmp_path),
                     "--accelerator", "cpu", "--batch-size", "32", "--max-epochs", "2", "--compile",
                     *TINY[model]]) == 0
        compiles = [m for m in get_compilation_metrics() if m.co_name == "forward"]
        graphs, recompiles = EXPECTED_COMPILES[model]
        assert len(compiles) == counters["frames"]["ok"] == counters["stats"]["unique_graphs"] == graphs, \
            [(m.compile_id, m.recompile_reason) for m in get_compilation_metrics()]
        assert sum(m.recompile_reason is not None for m in compiles) == recompiles
        assert not counters["graph_break"], dict(counters["graph_break"])
        assert all(m.shape_env_guard_count == 0 for m in compiles), "static shapes only"
    finally:
        torch._dynamo.reset()
    results = json.loads((tmp_path / model / "version_0" / "results.json").read_text())
    assert results["global_step"] == 2 * 9, "the 9 images left over make no batch"
    assert 0 < results["compile_seconds"] < results["seconds"]
