"""train.py end to end, as a user runs it: results, checkpoints, TensorBoard, and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import NO_GPU, accuracy_on_test_file, make_idx_folder, run_cli
from mnist_pl.cli import main

SMALL_MODELS = {
    "dense": ["--set", "model.hidden_sizes=[32]"],
    "cnn": ["--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16"],
    "gan": ["--set", "model.generator_hidden=[32]", "--set", "model.discriminator_hidden=[32]"],
}


def train(idx_dir: Path, logdir: Path, model: str, *extra: str) -> int:
    """`python train.py ...`, run in-process (train.py only forwards to main; the script itself
    is run in test_script_exit_status_and_no_traceback)."""
    return main(["train", "--model", model, "--data-dir", str(idx_dir), "--logdir", str(logdir),
                 "--max-epochs", "2", "--batch-size", "64", "--accelerator", "cpu",
                 "--set", "trainer.log_every_n_steps=2", *extra])


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
@pytest.mark.parametrize("model", SMALL_MODELS)
def test_train_end_to_end(model, idx_dir, tmp_path, capsys):
    assert train(idx_dir, tmp_path, model, *SMALL_MODELS[model]) == 0
    stdout = capsys.readouterr().out
    results = json.loads((tmp_path / model / "version_0" / "results.json").read_text())
    run_dir = Path(results["run_dir"])
    assert run_dir == tmp_path / model / "version_0" and results["epochs"] == 2
    assert f"tensorboard --logdir {run_dir}" in stdout and str(run_dir / "results.json") in stdout
    assert Path(results["last_checkpoint"]).is_file() and Path(results["best_checkpoint"]).is_file()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "hparams.yaml").is_file()

    tensorboard = events(run_dir)
    scalars = set(tensorboard.Tags()["scalars"])
    if model == "gan":
        assert {"train/loss_d_step", "train/loss_g_epoch", "train/d_real", "train/d_fake"} <= scalars
        grids = tensorboard.Images("samples")
        assert [g.step for g in grids] == [0, 1] and grids[0].width > 200
        assert Path(results["samples"]).is_file() and "test" not in results
    else:
        assert {"train/loss_step", "train/acc", "val/acc", "val/loss", "test/acc", "test/loss"} <= scalars
        assert len(tensorboard.Scalars("val/acc")) == 2
        # the best checkpoint's accuracy on the test file, counted here image by image
        assert results["test"]["test/acc"] == pytest.approx(accuracy_on_test_file(results["best_checkpoint"], idx_dir), abs=1e-6)
        assert f"test/acc:         {results['test']['test/acc']:.4f}" in stdout


def test_second_run_gets_its_own_directory(idx_dir, tmp_path, capsys):
    for _ in range(2):
        assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                     "--max-epochs", "1", "--accelerator", "cpu", *SMALL_MODELS["dense"]]) == 0
    assert (tmp_path / "dense" / "version_0" / "results.json").is_file()
    assert (tmp_path / "dense" / "version_1" / "results.json").is_file()


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert exit_.value.code == 0
    for flag in ("--model", "--config", "--dataset", "--data-dir", "--accelerator", "--devices",
                 "--precision", "--max-epochs", "--batch-size", "--lr", "--seed", "--logdir",
                 "--fast-dev-run", "--set"):
        assert flag in help_text


def bad_inputs(idx_dir: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    corrupt = make_idx_folder(tmp_path / "corrupt", gz=False)
    (corrupt / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x40" + b"\x01" * 10)
    return {
        "unknown config key": (["--set", "model.dropuot=0.5"], "unknown config key 'model.dropuot'"),
        "unknown key in config file": (["--config", str(_write(tmp_path / "c.yaml", "model:\n  size: 3\n"))],
                                       "unknown config key 'model.size'"),
        "missing config file": (["--config", str(tmp_path / "missing.yaml")], "does not exist"),
        "gpu without one": (["--accelerator", "gpu"], "no CUDA GPU"),
        "missing data": (["--data-dir", str(tmp_path / "empty"), "--set", "data.download=false"],
                         "no mnist data: folder"),
        "corrupt data": (["--data-dir", str(corrupt)], "t10k-labels-idx1-ubyte: 18 bytes, but its header"),
        "unknown dataset": (["--dataset", "cifar10"], "--dataset cifar10: data.dataset must be one of mnist"),
        "bad value": (["--set", "model.lr=fast"], "model.lr must be a number"),
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_inputs_give_one_clear_line_and_exit_2(idx_dir, tmp_path, capsys, monkeypatch):
    """Each case through the CLI's main(), in this process to keep the suite fast; the exit
    status of the real script is checked once below."""
    logdir = tmp_path / "runs"
    kept = logdir / "dense" / "version_0"
    kept.mkdir(parents=True)
    (kept / "results.json").write_text("{}")
    for case, (args, message) in bad_inputs(idx_dir, tmp_path).items():
        with monkeypatch.context() as patch:
            if case == "gpu without one":  # make it true on a machine with a GPU too
                patch.setattr(torch.cuda, "is_available", lambda: False)
            status = main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(logdir), *args])
        stderr = capsys.readouterr().err
        assert status == 2, (case, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (case, stderr[-2000:])
    assert (kept / "results.json").read_text() == "{}", "an earlier run must survive failed runs"


@pytest.mark.slow
def test_script_exit_status_and_no_traceback(tmp_path):
    # CUDA_VISIBLE_DEVICES="": no GPU for PyTorch, on a machine with one too
    proc = run_cli("train.py", "--model", "cnn", "--accelerator", "gpu", "--logdir", str(tmp_path), env=NO_GPU)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --accelerator gpu was asked for")


def test_unknown_model_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--model", "resnet"])
    assert exit_.value.code == 2 and "error: unknown --model 'resnet' (choose dense, cnn, gan, or module:Class" in capsys.readouterr().err


def test_fast_dev_run_flag_saves_nothing(idx_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory either
    status = main(["train", "--model", "cnn", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                   "--fast-dev-run", "--accelerator", "cpu", *SMALL_MODELS["cnn"]])
    assert status == 0 and "fast_dev_run saves none" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_hyperparameters_reach_tensorboard(idx_dir, tmp_path, capsys):
    assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                 "--max-epochs", "1", "--accelerator", "cpu", *SMALL_MODELS["dense"]]) == 0
    run_dir = tmp_path / "dense" / "version_0"
    tags = events(run_dir).Tags()["scalars"]
    assert "hparams/test_acc" in tags
    assert "hparams/best_val_acc" in tags  # what a sweep chooses by, beside the test numbers
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2
    multiplexer = EventMultiplexer({"run": str(run_dir)})
    multiplexer.Reload()
    content = multiplexer.PluginRunToTagToContent("hparams")["run"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert session.session_start_info.hparams["hidden_sizes"].string_value == "[32]"


def test_run_prints_no_lightning_advert_nor_chatter(idx_dir, tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)  # under pytest, Lightning's lines go to its log capture
    assert main(["train", "--model", "dense", "--data-dir", str(idx_dir), "--logdir", str(tmp_path),
                 "--fast-dev-run", "--accelerator", "cpu", *SMALL_MODELS["dense"]]) == 0
    out = "".join(capfd.readouterr()) + caplog.text
    assert "litlogger" not in out and "litmodels" not in out and "Tip:" not in out
    # nor its lines about hardware this run does not use (tests/test_mistakes.py checks a real run)
    assert "GPU available:" not in out and "TPU available:" not in out
    assert "Epoch 0" in out  # the progress bar stays
