"""Shared fixtures: small IDX data sets made on the fly, and the real-MNIST subset when present."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread a test worker (the README's command runs two): workers sharing the cores with
    # two threads each would wait on each other; subprocesses of the tests inherit this too
    os.environ["OMP_NUM_THREADS"] = "1"

import torch
from filelock import FileLock

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
# MNIST_PL_SUBSET points elsewhere, e.g. on a machine where ../shared is not copied
SUBSET = Path(os.environ.get("MNIST_PL_SUBSET") or ROOT.parent / "shared" / "data" / "mnist-subset")


def write_idx(path: Path, tensor: torch.Tensor) -> Path:
    """Write a uint8 tensor as an IDX file (gzipped when the name ends in .gz)."""
    header = bytes([0, 0, 0x08, tensor.dim()]) + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    raw = header + tensor.to(torch.uint8).contiguous().numpy().tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def make_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` 28x28 images whose label is drawn as a bright bar in one of ten places: learnable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 40, (n, 28, 28), generator=g)
    for i, label in enumerate(labels.tolist()):
        row = 2 + 2 * label
        images[i, row:row + 2, 4:24] = 255
    return images.to(torch.uint8), labels.to(torch.uint8)


def make_idx_folder(folder: Path, n_train: int = 320, n_test: int = 64, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = make_digits(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", labels)
    return folder


def load_classifier_checkpoint(path: str | Path):
    """The dense or CNN classifier in a checkpoint, in eval mode (by Lightning's own loader)."""
    from mnist_pl import CNNClassifier, DenseClassifier

    hyper = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    cls = CNNClassifier if "channels" in hyper else DenseClassifier
    return cls.load_from_checkpoint(path, map_location="cpu").eval()


def accuracy_on_test_file(checkpoint: str | Path, folder: Path) -> float:
    """The share of the t10k images in `folder` that `checkpoint`'s classifier gets right,
    normalised with MNIST's published statistics (mean 0.1307, std 0.3081), counted here."""
    from mnist_pl import read_idx

    model = load_classifier_checkpoint(checkpoint)
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz", 3).float().unsqueeze(1)
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz", 1).long()
    with torch.no_grad():
        predicted = torch.cat([model((chunk / 255 - 0.1307) / 0.3081).argmax(1) for chunk in images.split(500)])
    return (predicted == labels).float().mean().item()


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    """A folder of the four IDX files (gzipped): 320 training and 64 test images."""
    return make_idx_folder(tmp_path_factory.mktemp("idx"))


@pytest.fixture
def subset_dir() -> Path:
    """The real-MNIST subset in ../shared, or a skip saying why."""
    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET} (it ships in the project's shared/ folder)")
    return SUBSET


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python ARGS...` as a user would, from the repository root, capturing output;
    `env` adds to (or overrides) the environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # a subprocess's environment in which PyTorch sees no GPU


@pytest.fixture(scope="session")
def subset_cnn_run(tmp_path_factory) -> dict:
    """results.json of the default CNN trained for 2 epochs on the real-MNIST subset (about 15 s).

    Session-scoped: tests that need a trained classifier checkpoint (evaluation, prediction, the
    GAN's evaluator) share this one run.
    """
    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET} (it ships in the project's shared/ folder)")
    from mnist_pl import load_config, train

    # trained once for all test workers (pytest-xdist): the first one trains, the others wait
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    with FileLock(shared / "subset_cnn.lock"):
        saved = shared / "subset_cnn_results.json"
        if saved.is_file():
            return json.loads(saved.read_text())
        config = load_config("cnn", overrides={
            "data.data_dir": str(SUBSET), "trainer.max_epochs": 2, "trainer.accelerator": "cpu",
            "trainer.enable_model_summary": False, "logdir": str(shared / "subset_cnn")})
        results = train("cnn", config)
        saved.write_text(json.dumps(results))
        return json.loads(saved.read_text())


@pytest.fixture(scope="session")
def gan_checkpoint(idx_dir, tmp_path_factory) -> Path:
    """A checkpoint of a tiny GAN after one training step: the wrong kind for classifier commands."""
    import lightning as L

    from mnist_pl import GAN, MNISTDataModule

    model = GAN(latent_dim=8, generator_hidden=[16], discriminator_hidden=[16], num_samples=4)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32, normalize="symmetric"))
    path = tmp_path_factory.mktemp("gan") / "gan.ckpt"
    trainer.save_checkpoint(path)
    return path


def fit_classifier(folder: Path, path: Path, dataset: str = "mnist", **model_args) -> Path:
    """A small dense classifier trained for one epoch on the IDX files in `folder`, saved at
    `path` with its data settings (as train.py saves them)."""
    import lightning as L

    from mnist_pl import DenseClassifier, MNISTDataModule

    model = DenseClassifier(**{"hidden_sizes": [16], "dropout": 0.0, **model_args})
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(dataset=dataset, data_dir=str(folder), batch_size=32))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def classifier_checkpoint(idx_dir, tmp_path_factory) -> Path:
    """A small dense classifier trained on the generated digits: for the classifier commands'
    error paths, which need no real digits."""
    return fit_classifier(idx_dir, tmp_path_factory.mktemp("classifier") / "dense.ckpt")


# The two longest tests (about 2 minutes each on 2 cores): started first, so that the other
# tests fill in around them instead of waiting for them at the end
LONGEST = ("test_workshop.py::test_every_block_of_the_guide_runs[python]",
           "test_demo_browser.py::test_a_person_draws_digits_and_asks_for_sevens")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of the CNN trained on the real subset are slow (it trains for about 15 s); the
    longest tests run first, then the slow ones, then the rest."""
    for item in items:
        if "subset_cnn_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: (not item.nodeid.endswith(LONGEST), item.get_closest_marker("slow") is None))


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path, monkeypatch):
    """Trainers made without a folder write lightning_logs/ and checkpoints/ into the working
    directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)
