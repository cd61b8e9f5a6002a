"""`summary` and `graph`: the layer table and the graph picture of every model, and their errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from PIL import Image

from mnist_pl import MODELS, load_config
from mnist_pl.cli import main

from conftest import ROOT

# graphviz's `dot` is a system program that pip cannot install: without it these tests skip
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's `dot` program is not installed "
                               "(sudo apt-get install graphviz, or brew install graphviz)")


@pytest.mark.parametrize("model", MODELS)
def test_summary_counts_parameters_and_shapes(model, capsys):
    assert main(["summary", "--model", model]) == 0
    out = capsys.readouterr().out
    net = MODELS[model](**load_config(model)["model"])
    # the GAN's summary shows the two halves that train; its EMA copy of the generator is left out
    parts = [net.generator, net.discriminator] if model == "gan" else [net]
    total = sum(p.numel() for part in parts for p in part.parameters())
    total_line = next(line for line in out.splitlines() if line.endswith("Total params"))
    assert total_line.split()[:2] == get_human_readable_count(total).split()
    # the output of the whole network: ten logits for a classifier, one per image for the GAN
    assert ("[2]" if model == "gan" else "[1, 10]") in out


def test_gan_summary_shows_both_halves_with_shapes(capsys):
    assert main(["summary", "--model", "gan"]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.count("|") > 4}
    assert "[2, 64]" in rows["generator"] and "[2, 1, 28, 28]" in rows["generator"]
    # the discriminator is reached too, so its rows have real shapes instead of "?"
    assert "[2, 1, 28, 28]" in rows["discriminator"] and "?" not in rows["discriminator.features.0"]


def test_summary_follows_config_overrides(capsys):
    assert main(["summary", "--model", "cnn", "--set", "model.channels=[8, 16]"]) == 0
    out = capsys.readouterr().out
    assert "[1, 8, 28, 28]" in out and "[1, 16, 7, 7]" in out and "[1, 32, 28, 28]" not in out


def test_summary_bad_key_exits_2(capsys):
    assert main(["summary", "--model", "cnn", "--set", "model.chanels=[8]"]) == 2
    assert "unknown config key 'model.chanels'" in capsys.readouterr().err


@needs_dot
def test_cnn_graph_png(tmp_path, capsys):
    out = tmp_path / "cnn.png"
    assert main(["graph", "--model", "cnn", "--out", str(out)]) == 0
    with Image.open(out) as picture:
        assert picture.format == "PNG"
        assert picture.height > 2 * picture.width > 400  # one layer below the other


@needs_dot
def test_gan_graph_svg_has_both_halves_and_shapes(tmp_path):
    out = tmp_path / "gan.svg"
    assert main(["graph", "--model", "gan", "--out", str(out)]) == 0
    svg = out.read_text()
    assert "Generator" in svg and "Discriminator" in svg and "(2, 1, 28, 28)" in svg


def test_graph_without_graphviz_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    assert main(["graph", "--model", "dense", "--out", str(tmp_path / "dense.png")]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not (tmp_path / "dense.png").exists()


def test_graph_unknown_format_exits_2(tmp_path, capsys):
    assert main(["graph", "--model", "dense", "--out", str(tmp_path / "dense.gif")]) == 2
    assert "end the name in .png, .svg, .pdf" in capsys.readouterr().err


@pytest.mark.slow
def test_graph_tests_skip_with_the_reason_where_dot_is_absent(tmp_path):
    """On a machine without graphviz the suite passes: the drawing tests skip and say why."""
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no `dot`
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-n", "0", "-p", "no:cacheprovider",
                           f"{__file__}::test_cnn_graph_png", f"{__file__}::test_gan_graph_svg_has_both_halves_and_shapes",
                           f"{__file__}::test_graph_without_graphviz_says_how_to_install"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 skipped" in proc.stdout
    assert proc.stdout.count("graphviz's `dot` program is not installed") == 2
