"""`mnist-pl export`: ONNX and TorchScript files give the PyTorch model's outputs, any batch size."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import lightning as L
import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli
from mnist_pl import GAN, CNNClassifier, DenseClassifier, MNISTDataModule
from mnist_pl.checkpoints import datamodule_for, load_model
from mnist_pl.cli import main
from mnist_pl.export import export_checkpoint
from mnist_pl.predict import classify

MODELS = {
    "dense": lambda: DenseClassifier(hidden_sizes=[32]),
    "cnn": lambda: CNNClassifier(channels=[4, 8], hidden_size=16),
    "gan": lambda: GAN(conditional=True, latent_dim=64, generator_channels=[8, 4], discriminator_channels=[4, 8],
                       num_samples=10),
    "gan-fc": lambda: GAN(arch="fc", latent_dim=8, generator_hidden=[16], discriminator_hidden=[16], num_samples=4),
    # the cluster read from the noise inside the exported generator
    "gan-clusters": lambda: GAN(clusters=4, latent_dim=8, generator_channels=[8, 4], discriminator_channels=[4, 8],
                                num_samples=8),
}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoints(idx_dir, tmp_path_factory) -> dict:
    """A checkpoint of each kind after two training steps on the tiny IDX data (batch norm statistics
    and the GAN's moving average have moved away from their initial values)."""
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for name, make in MODELS.items():
        trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, accelerator="cpu",
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        normalize = "symmetric" if name.startswith("gan") else "standard"
        trainer.fit(make(), datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize=normalize))
        paths[name] = folder / f"{name}.ckpt"
        trainer.save_checkpoint(paths[name])
    return paths


def example_inputs(model: L.LightningModule, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    if isinstance(model, GAN):
        inputs = {"noise": torch.randn(batch, model.hparams.latent_dim, generator=g)}
        if model.hparams.conditional:
            inputs["digit"] = torch.randint(0, 10, (batch,), generator=g)
        return inputs
    return {"images": torch.randint(0, 256, (batch, 28, 28), generator=g, dtype=torch.uint8)}


def pytorch_outputs(checkpoint, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """What mnist-pl itself computes for these raw inputs."""
    model, saved = load_model(checkpoint)
    if isinstance(model, GAN):  # trained on [-1, 1] images
        return ((model.generate(inputs["noise"], inputs.get("digit")) + 1) / 2).clamp(0, 1).numpy()
    return classify(model, inputs["images"].float() / 255, datamodule_for(saved).normalization).numpy()


def run_torchscript(path, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, not gone
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(*inputs.values()).numpy()


def run_onnx(path, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(inputs)
    return session.run(None, {name: value.numpy() for name, value in inputs.items()})[0]


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", list(MODELS))
def test_export_gives_the_pytorch_outputs_for_any_batch(checkpoints, tmp_path, kind, fmt):
    out = tmp_path / f"{kind}.{'onnx' if fmt == 'onnx' else 'pt'}"
    exported = export_checkpoint(checkpoints[kind], out, fmt)
    model, _ = load_model(checkpoints[kind])
    run = run_onnx if fmt == "onnx" else run_torchscript
    for batch in (1, 37):
        inputs = example_inputs(model, batch)
        got, expected = run(out, inputs), pytorch_outputs(checkpoints[kind], inputs)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < TOLERANCE
    if kind.startswith("gan"):
        assert expected.shape[1:] == (1, 28, 28) and 0 <= got.min() and got.max() <= 1
        assert ("input.digit" in exported.metadata) == (kind == "gan")
    else:
        assert np.allclose(got.sum(1), 1, atol=1e-5)
        assert "uint8" in exported.metadata["input.images"]


def test_the_files_carry_their_metadata(checkpoints, tmp_path):
    export_checkpoint(checkpoints["cnn"], tmp_path / "cnn.pt")  # format from the suffix
    files = {"metadata.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(tmp_path / "cnn.pt"), _extra_files=files)
    metadata = json.loads(files["metadata.json"])
    assert metadata["model"] == "CNNClassifier" and metadata["checkpoint"] == "cnn.ckpt"
    assert json.loads(metadata["classes"]) == [str(d) for d in range(10)]
    assert "0-255" in metadata["input.images"] and "[batch, 10]" in metadata["output.probabilities"]


@pytest.mark.slow
def test_onnx_metadata_and_the_command(checkpoints, tmp_path, capsys):
    import onnxruntime

    assert main(["export", "--checkpoint", str(checkpoints["gan"]), "--format", "onnx",
                 "--out", str(tmp_path / "gan.onnx")]) == 0
    assert "input.digit: int64 [batch]" in capsys.readouterr().out
    meta = onnxruntime.InferenceSession(str(tmp_path / "gan.onnx")).get_modelmeta().custom_metadata_map
    assert meta["model"] == "GAN" and "[0, 1]" in meta["output.images"]


@pytest.mark.slow
def test_docs_onnxruntime_example_runs_without_torch(checkpoints, idx_dir, tmp_path):
    page = (ROOT / "docs" / "deploy.md").read_text()
    snippet = re.search(r"<!-- snippet: onnxruntime.*?-->\s*```python\n(.*?)```", page, re.S).group(1)
    assert "import torch" not in snippet
    work = tmp_path / "project"
    work.mkdir()
    shutil.copytree(idx_dir, tmp_path / "shared" / "data" / "mnist-subset")  # the snippet's ../shared/...
    for name in ("cnn", "gan"):
        export_checkpoint(checkpoints[name], work / f"{name}.onnx")
    # torch made unimportable: the example needs only numpy and onnxruntime
    (work / "snippet.py").write_text("import sys\nsys.modules['torch'] = None\n" + snippet)
    proc = run_cli("snippet.py", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"accuracy 0\.\d{4} on 64 test digits", proc.stdout), proc.stdout
    assert "sevens (10, 1, 28, 28)" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", ["missing", "damaged", "no format", "folder"])
def test_export_mistakes_are_one_line_and_status_2(checkpoints, tmp_path, case, capsys, monkeypatch):
    """In-process (the script's own exit status is tested in test_train_cli and test_mistakes)."""
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"not a checkpoint")
    args = {"missing": ["--checkpoint", str(tmp_path / "nope.ckpt"), "--out", "m.onnx"],
            "damaged": ["--checkpoint", str(damaged), "--out", "m.onnx"],
            "no format": ["--checkpoint", str(checkpoints["cnn"]), "--out", "m.model"],
            "folder": ["--checkpoint", str(checkpoints["cnn"]), "--out", str(tmp_path), "--format", "onnx"]}[case]
    monkeypatch.chdir(tmp_path)
    status = main(["export", *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    expected = {"missing": "does not exist", "damaged": "cannot be read", "no format": "--format onnx",
                "folder": "is a folder"}[case]
    assert expected in err
    assert not (tmp_path / "m.onnx").exists()
