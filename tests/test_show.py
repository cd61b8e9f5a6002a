"""`show`: labelled pictures of data set images, and its errors."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from mnist_pl import MNISTDataModule
from mnist_pl.cli import main



def shown_labels(stdout: str) -> list[str]:
    return re.search(r"labels (.+) ->", stdout).group(1).split(", ")


def test_grid_has_the_split_labels(idx_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["show", "--data-dir", str(idx_dir), "--split", "test", "--num", "6", "--start", "3",
                 "--out", str(out), "--no-download"]) == 0
    dm = MNISTDataModule(data_dir=str(idx_dir))
    dm.setup()
    assert shown_labels(capsys.readouterr().out) == [str(int(y)) for y in dm.test_set.labels[3:9]]
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 200 and picture.height > 100


def test_single_image_by_index_from_validation(idx_dir, tmp_path, capsys):
    out = tmp_path / "one.png"
    assert main(["show", "--data-dir", str(idx_dir), "--split", "val", "--index", "5", "--out", str(out)]) == 0
    dm = MNISTDataModule(data_dir=str(idx_dir))
    dm.setup()
    assert f"val[5] of mnist: label {int(dm.val_set.labels[5])}" in capsys.readouterr().out
    assert Image.open(out).size[0] > 200


def test_random_grid_is_seeded(idx_dir, tmp_path, capsys):
    def labels(seed: int) -> list[str]:
        main(["show", "--data-dir", str(idx_dir), "--random", "--seed", str(seed), "--num", "12",
              "--out", str(tmp_path / f"r{seed}.png")])
        return shown_labels(capsys.readouterr().out)
    assert labels(1) == labels(1) != labels(2)


@pytest.mark.parametrize("args, message", [
    (["--index", "320"], "outside the train split, which has 288 images"),
    (["--num", "0"], "--num must be at least 1"),
    (["--out", "grid.nosuchformat"], "cannot write the picture"),
])
def test_bad_requests_exit_2(idx_dir, tmp_path, capsys, args, message):
    assert main(["show", "--data-dir", str(idx_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_data_exits_2_without_download(tmp_path, capsys):
    assert main(["show", "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "no mnist data:" in capsys.readouterr().err


def test_real_digits_from_the_command_line(subset_dir, tmp_path, capsys):
    assert main(["show", "--data-dir", str(subset_dir), "--split", "test", "--num", "10",
                 "--out", str(tmp_path / "test.png")]) == 0
    stdout = capsys.readouterr().out
    # the first ten test digits of the subset, as read from its IDX file
    dm = MNISTDataModule(data_dir=str(subset_dir))
    dm.setup()
    assert shown_labels(stdout) == [str(int(y)) for y in dm.test_set.labels[:10]]
    assert (tmp_path / "test.png").stat().st_size > 10_000
