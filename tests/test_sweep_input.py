"""`mnist-pl sweep` refuses bad input in one line, exit status 2, leaving the log folder as it was."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mnist_pl.cli import main
from mnist_pl.space import load_space


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(args: list[str], logdir: Path, capsys) -> str:
    """Run `mnist-pl sweep ARGS`; check exit status 2, one `error:` line and an unchanged
    logdir; return the line."""
    logdir.mkdir(exist_ok=True)
    (logdir / "earlier-run.txt").write_text("kept")
    before = listing(logdir)
    try:
        status = main(["sweep", "--logdir", str(logdir), *args])
    except SystemExit as done:  # argparse's mistakes leave through sys.exit
        status = done.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert listing(logdir) == before
    return err


@pytest.fixture
def space(tmp_path):
    """A space file with the given text, for --space."""
    def write(text: str) -> str:
        path = tmp_path / "space.yaml"
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def sweep_args(idx_dir):
    return ["--model", "dense", "--data-dir", str(idx_dir), "--trials", "2"]


def test_an_unknown_key_gets_did_you_mean(space, sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--space", space("model.dropuot: {low: 0.0, high: 0.5}\n")], tmp_path / "runs", capsys)
    assert "unknown config key 'model.dropuot'" in err and "did you mean 'model.dropout'?" in err
    assert "space.yaml" in err


def test_a_range_beyond_what_the_key_accepts_gets_the_configs_message(space, sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--space", space("model.dropout: {low: 0.0, high: 1.5}\n")], tmp_path / "runs", capsys)
    assert "model.dropout: 1.5 in the search space" in err and "model.dropout must be in [0, 1)" in err
    err = refused([*sweep_args, "--space", space("model.lr: {low: -0.1, high: 0.1}\n")], tmp_path / "runs", capsys)
    assert "model.lr must be above 0" in err


def test_a_choice_the_key_refuses(space, sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--space", space("model.optimizer: [adam, adamx]\n")], tmp_path / "runs", capsys)
    assert "model.optimizer must be one of" in err and "did you mean 'adam" in err


def test_an_empty_range_or_no_choices(space, sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--space", space("model.lr: {low: 0.01, high: 0.001, log: true}\n")],
                  tmp_path / "runs", capsys)
    assert "the range [0.01, 0.001]" in err and "is empty" in err
    err = refused([*sweep_args, "--space", space("model.optimizer: []\n")], tmp_path / "runs", capsys)
    assert "model.optimizer" in err and "no choices" in err


def test_an_unknown_space_name(sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--space", "dens"], tmp_path / "runs", capsys)
    assert "--space dens: no such search space; did you mean 'dense'?" in err and "cnn, dense, gan" in err


def test_a_storage_that_cannot_be_reached_names_its_host_within_seconds(sweep_args, tmp_path, capsys):
    started = time.monotonic()
    err = refused([*sweep_args, "--storage", "postgresql://nobody@127.0.0.1:1/studies"], tmp_path / "runs", capsys)
    assert time.monotonic() - started < 15
    assert "cannot reach the study's database at 127.0.0.1:1" in err


def test_zero_trials(sweep_args, tmp_path, capsys):
    err = refused([*sweep_args, "--trials", "0"], tmp_path / "runs", capsys)
    assert err.startswith("error: --trials: must be at least 1, not 0")


def test_a_gan_needs_a_metric(idx_dir, tmp_path, capsys):
    err = refused(["--model", "gan", "--data-dir", str(idx_dir)], tmp_path / "runs", capsys)
    assert "has no validation metric of its own" in err and "--metric" in err


def test_the_shipped_spaces_hold_the_configs_own_values():
    """Each model's shipped space contains its shipped config's values: the first trial of a
    sweep is the config itself, so a sweep never ends worse than it."""
    from mnist_pl import load_config

    for model in ("dense", "cnn", "gan"):
        space = load_space(model, model)
        assert space.values_of(load_config(model)) is not None, model


def test_whole_number_keys_get_whole_number_ranges(space):
    loaded = load_space("cnn", space("model.hidden_size: {low: 32, high: 256, step: 32}\n"
                                     "model.dropout: {low: 0, high: 1}\n".replace("1}", "0.5}")))
    hidden, dropout = loaded.dimensions
    assert hidden.integer and not dropout.integer
