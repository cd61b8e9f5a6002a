"""`mnist-pl sweep`: trials are ordinary runs, the results a table, trials.csv, best.yaml and
pictures; a rerun continues the study; a failing trial is recorded and the sweep goes on."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import optuna
import pytest
import yaml
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import metadata

from mnist_pl.cli import main

# a dense network small enough for a trial of a second or two on the generated digits
SMALL = ["--model", "dense", "--set", "model.hidden_sizes=[16]", "--set", "model.ema_decay=0.0",
         "--max-epochs", "2", "--pruner", "none"]


def sweep(*args: str, capsys) -> str:
    assert main(["sweep", *args]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def trials_of(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    return study.get_trials()


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text("model.lr: {low: 0.001, high: 0.01, log: true}\nmodel.optimizer: [adam, sgd]\n")
    return path


@pytest.mark.slow
def test_a_sweep_leaves_runs_a_table_and_a_best_config_that_trains(idx_dir, space, tmp_path, capsys):
    logdir = tmp_path / "runs"
    args = [*SMALL, "--space", str(space), "--trials", "3", "--data-dir", str(idx_dir), "--logdir", str(logdir)]
    out = sweep(*args, capsys=capsys)
    study_dir = logdir / "sweeps" / "small"
    assert "Sweep 'small': 3 of 3 trials finished (3 complete, 0 pruned, 0 failed)" in out
    header = next(line for line in out.splitlines() if line.startswith("trial ") and "state" in line)
    assert header.split() == ["trial", "lr", "optimizer", "val/acc", "state", "minutes"]
    assert f"optuna-dashboard sqlite:///{study_dir.resolve() / 'study.db'}" in out
    assert f"tensorboard --logdir {study_dir}" in out

    # each trial is an ordinary run in its own folder, judged on validation data
    trials = trials_of(study_dir)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    for trial in trials:
        results = json.loads(Path(trial.user_attrs["run_dir"], "results.json").read_text())
        assert Path(trial.user_attrs["run_dir"]).parent.parent.name == f"trial_{trial.number:04d}"
        assert trial.value == results["best_validation"]["value"]
        assert results["resumed_from"] is None
    # the first trial is the config's own values (adam, lr 0.002)
    assert trials[0].params == {"model.lr": 0.002, "model.optimizer": "adam"}

    # TensorBoard pointed at the study: each trial's values beside its metrics in HPARAMS
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(study_dir))
    multiplexer.Reload()
    hparams = multiplexer.PluginRunToTagToContent("hparams")
    for trial in trials:
        run = f"trial_{trial.number:04d}/dense/version_0"
        session = metadata.parse_session_start_info_plugin_data(hparams[run][metadata.SESSION_START_INFO_TAG])
        assert session.hparams["lr"].number_value == pytest.approx(trial.params["model.lr"])
        assert session.hparams["optimizer"].string_value == trial.params["model.optimizer"]
        assert multiplexer.Scalars(run, "hparams/best_val_acc")[-1].value == pytest.approx(trial.value)

    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]
    assert {r["state"] for r in rows} == {"complete"}
    for picture in ("history.png", "importances.png", "curves.png"):
        assert (study_dir / picture).stat().st_size > 10_000, picture

    best = max(trials, key=lambda t: t.value)
    best_config = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best_config["model"]["lr"] == best.params["model.lr"]
    assert best_config["logdir"] == str(logdir)
    assert main(["train", "--model", "dense", "--config", str(study_dir / "best.yaml"), "--max-epochs", "1"]) == 0
    assert (logdir / "dense" / "version_0" / "results.json").is_file()  # a run of its own, beside the sweep
    capsys.readouterr()

    # the same command again: nothing left to do, the same study; asking for more continues it
    again = sweep(*args, capsys=capsys)
    assert "3 of 3 trials finished" in again and "started" not in again
    more = sweep(*args[:-6], "--trials", "4", *args[-4:], capsys=capsys)
    assert "trial 3 started" in more and "4 of 4 trials finished" in more
    assert len(trials_of(study_dir)) == 4


def test_a_different_sweep_under_the_same_study_name_is_refused(idx_dir, space, tmp_path, capsys):
    args = [*SMALL, "--trials", "1", "--data-dir", str(idx_dir), "--logdir", str(tmp_path)]
    sweep(*args, "--space", str(space), capsys=capsys)
    other = tmp_path / "other.yaml"
    other.write_text("model.lr: {low: 0.0001, high: 0.01, log: true}\nmodel.optimizer: [adam, sgd]\n")
    assert main(["sweep", *args, "--space", str(other), "--study", "small"]) == 2
    err = capsys.readouterr().err
    assert "study 'small'" in err and "was made by another sweep" in err and "model.lr" in err


def test_a_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(idx_dir, tmp_path, capsys):
    space = tmp_path / "diverging.yaml"
    space.write_text("model.lr: [1.0e+30]\n")  # SGD this fast turns the weights into NaN at once
    out = sweep(*SMALL, "--set", "model.optimizer=sgd", "--space", str(space), "--trials", "2",
                "--data-dir", str(idx_dir), "--logdir", str(tmp_path), capsys=capsys)
    assert "2 of 2 trials finished (0 complete, 0 pruned, 2 failed)" in out
    assert "Traceback" not in out + capsys.readouterr().err
    trials = trials_of(tmp_path / "sweeps" / "diverging")
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    for trial in trials:
        assert trial.user_attrs["fail_reason"] == "the training diverged: val/loss is nan at epoch 0 (a learning rate too high?)"
        assert f"trial {trial.number}: the training diverged" in out


def test_a_setting_that_cannot_be_built_fails_its_trial(idx_dir, tmp_path, capsys):
    space = tmp_path / "unbuildable.yaml"
    space.write_text("data.val_size: [100000]\n")  # more validation images than there are
    out = sweep(*SMALL, "--space", str(space), "--trials", "1", "--data-dir", str(idx_dir),
                "--logdir", str(tmp_path), capsys=capsys)
    assert "1 of 1 trials finished (0 complete, 0 pruned, 1 failed)" in out
    assert "trial 0: val_size=100000 leaves no training or no validation images out of 320" in out


@pytest.mark.slow
def test_two_workers_on_one_machine_finish_exactly_the_trials_asked_for(idx_dir, space, tmp_path, capsys):
    out = sweep(*SMALL, "--space", str(space), "--trials", "3", "--workers", "2", "--data-dir", str(idx_dir),
                "--logdir", str(tmp_path), capsys=capsys)
    assert "3 of 3 trials finished (3 complete" in out
    trials = trials_of(tmp_path / "sweeps" / "small")
    assert len(trials) == 3  # the workers decide in turn whether to start one: never a fourth
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2  # in the worker processes
