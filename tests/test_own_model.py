"""A model of your own, defined outside the package: trained by train.py (`--model module:Class`)
or train() (a registered name), its checkpoints reloaded by every command in a fresh process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from mnist_pl import (DemoClassifier, DenseClassifier, UserError, load_classifier, load_config, load_model, register_model,
                      train)
from mnist_pl import registry
from mnist_pl.cli import main
from mnist_pl.module import MODEL_NAME_KEY

# the documentation's model of your own (a classifier handed its network with set_net) and its
# YAML, in README.md or a page under docs/
DOCS = "".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
OWN_MODEL, OWN_CONFIG = re.search(r"<!-- snippet: own-model.*?-->\s*```python\n(.*?)```\s*```yaml\n(.*?)```",
                                  DOCS, re.S).groups()
# and a subclass that takes no argument of its own
PLAIN_DENSE = """
from mnist_pl import DenseClassifier


class PlainDense(DenseClassifier):
    pass
"""


def write_models(folder: Path, module: str) -> Path:
    """The module `module` of TinyNet and PlainDense in `folder`, and tiny.yaml beside it."""
    (folder / f"{module}.py").write_text(OWN_MODEL + PLAIN_DENSE)
    (folder / "tiny.yaml").write_text(OWN_CONFIG)
    return folder


@pytest.fixture
def registry_kept():
    """Registrations a test makes are forgotten after it."""
    saved = (dict(registry.MODEL_CLASSES), dict(registry._REGISTERED_CLASSES), dict(registry._REGISTERED_CONFIGS))
    yield
    for table, before in zip((registry.MODEL_CLASSES, registry._REGISTERED_CLASSES, registry._REGISTERED_CONFIGS),
                             saved):
        table.clear()
        table.update(before)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:FutureWarning")
def test_train_py_trains_your_model_and_every_command_reloads_it(idx_dir, tmp_path):
    write_models(tmp_path, "my_models")
    proc = run_cli(str(ROOT / "train.py"), "--model", "my_models:TinyNet", "--config", "tiny.yaml",
                   "--data-dir", str(idx_dir), "--logdir", "runs", "--batch-size", "64", "--accelerator", "cpu",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "runs" / "my_models.TinyNet" / "version_0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == "my_models:TinyNet" and results["epochs"] == 2
    assert results["best_validation"]["metric"] == "val/acc"
    best = results["best_checkpoint"]
    checkpoint = torch.load(tmp_path / best, weights_only=True)
    assert checkpoint[MODEL_NAME_KEY] == "my_models:TinyNet" and checkpoint["hyper_parameters"]["width"] == 24

    # each command in a process of its own, which has never seen the class
    evaluated = run_cli("-m", "mnist_pl", "evaluate", "--checkpoint", best, "--data-dir", str(idx_dir),
                        "--out-dir", "evaluation", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(results["test"]["test/acc"], abs=1e-6)

    digit = np.zeros((28, 28), np.uint8)
    digit[6:8, 4:24] = 255
    Image.fromarray(digit).save(tmp_path / "digit.png")
    predicted = run_cli("-m", "mnist_pl", "predict", "--checkpoint", best, "--json", "digit.png", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    [prediction] = json.loads(predicted.stdout)
    assert len(prediction["probabilities"]) == 10

    exported = run_cli("-m", "mnist_pl", "export", "--checkpoint", best, "--out", "tiny.pt", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    scripted = torch.jit.load(str(tmp_path / "tiny.pt"))
    assert scripted(torch.zeros(3, 28, 28, dtype=torch.uint8)).shape == (3, 10)

    # from a folder where the module cannot be imported, the error says so
    elsewhere = run_cli("-m", "mnist_pl", "evaluate", "--checkpoint", str(tmp_path / best),
                        "--data-dir", str(idx_dir), cwd=idx_dir)
    assert elsewhere.returncode == 2 and "Traceback" not in elsewhere.stderr
    assert "no module named 'my_models' can be imported; run from the folder that holds my_models.py" in elsewhere.stderr


BROKEN = {
    "own_broken.py": "raise RuntimeError('the model file is broken')\n",
    "own_plain.py": "import lightning as L\n\nclass NotAModel:\n    pass\n\n"
                    "class Bare(L.LightningModule):\n    pass\n",
}


@pytest.mark.parametrize("model, message", [
    ("cnnn", "error: unknown --model 'cnnn'; did you mean 'cnn'? (choose dense, cnn, gan, or module:Class"),
    ("no_such_module:Net", "model no_such_module:Net: no module named 'no_such_module' can be imported; run from"),
    ("own_plain:Missing", "model own_plain:Missing: module own_plain ("),
    ("own_broken:Net", "model own_broken:Net: importing own_broken failed (RuntimeError: the model file is broken)"),
    ("own_plain:NotAModel", "model own_plain:NotAModel must be a LightningModule class"),
    ("own_plain:Bare", "Bare is a LightningModule, but train() needs the rules of its run"),
])
def test_a_bad_model_is_one_line_and_exit_2(model, message, idx_dir, tmp_path, monkeypatch, capsys):
    for name, text in BROKEN.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("own_broken", "own_plain"):
        monkeypatch.delitem(__import__("sys").modules, module, raising=False)
    try:
        status = main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(tmp_path / "runs"),
                       "--accelerator", "cpu", "--max-epochs", "1"])
    except SystemExit as exit_:  # a mistake the parser sees
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_subclass_without_arguments_of_its_own_loads_as_itself(tmp_path, monkeypatch):
    write_models(tmp_path, "own_plain_dense")
    monkeypatch.syspath_prepend(str(tmp_path))
    from own_plain_dense import PlainDense

    model = PlainDense(hidden_sizes=[8])
    trainer = L.Trainer(max_steps=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "plain.ckpt", weights_only=True)
    loaded, checkpoint = load_model(tmp_path / "plain.ckpt")
    assert checkpoint[MODEL_NAME_KEY] == "own_plain_dense:PlainDense"
    assert type(loaded) is PlainDense and list(loaded.hparams.hidden_sizes) == [8]
    assert isinstance(loaded, DenseClassifier)


def test_register_model_gives_your_model_a_name_and_a_config(idx_dir, tmp_path, monkeypatch, registry_kept):
    write_models(tmp_path, "own_registered")
    monkeypatch.syspath_prepend(str(tmp_path))
    from own_registered import TinyNet

    register_model("tiny", TinyNet, config=tmp_path / "tiny.yaml")
    config = load_config("tiny", overrides={"data.data_dir": str(idx_dir), "logdir": str(tmp_path / "runs"),
                                            "trainer.max_epochs": 1, "trainer.accelerator": "cpu"})
    assert config["model"] == {"width": 24, "lr": 0.003}  # from the registered YAML
    results = train("tiny", config, progress_bar=False)
    assert Path(results["run_dir"]) == tmp_path / "runs" / "tiny" / "version_0"
    # the checkpoint names the class, which loads where "tiny" was never registered
    checkpoint = torch.load(results["best_checkpoint"], weights_only=True)
    assert checkpoint[MODEL_NAME_KEY] == "own_registered:TinyNet"
    assert type(DemoClassifier.from_checkpoint(results["best_checkpoint"]).model) is TinyNet

    with pytest.raises(UserError, match="'cnn' is a shipped model's name"):
        register_model("cnn", TinyNet)
    with pytest.raises(UserError, match="must be a LightningModule class"):
        register_model("nothing", dict)


def test_resume_last_looks_in_your_models_run_folder(tmp_path, capsys):
    assert main(["train", "--model", "own_models:Net", "--resume", "last", "--logdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"({tmp_path}/own_models.Net/version_*/checkpoints/last.ckpt)" in err
    assert "(python train.py --model own_models:Net --logdir" in err


def test_a_model_without_export_or_classes_is_one_clear_error(tmp_path, monkeypatch):
    from mnist_pl.export import exportable_of

    (tmp_path / "own_bare.py").write_text("from torch import nn\n\nfrom mnist_pl import MNISTModule\n\n\n"
                                          "class Bare(MNISTModule):\n    def __init__(self):\n"
                                          "        super().__init__()\n        self.net = nn.Linear(2, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from own_bare import Bare

    trainer = L.Trainer(max_steps=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(Bare())
    trainer.save_checkpoint(tmp_path / "bare.ckpt", weights_only=True)
    with pytest.raises(UserError, match="holds a Bare, which says nothing of what to export"):
        exportable_of(tmp_path / "bare.ckpt")
    with pytest.raises(UserError, match="holds a own_bare:Bare model, but evaluate needs a dense or cnn checkpoint, "
                                        "or one of a class of your own derived from ImageClassifier"):
        load_classifier(tmp_path / "bare.ckpt", purpose="evaluate")
