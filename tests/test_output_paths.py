"""Where commands write: a path that is a file, a folder, or cannot be made is one line and exit
status 2 before any work; a disk that fills up while a checkpoint is written keeps the previous
last.ckpt whole and says how to continue."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from mnist_pl.cli import main


def one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_logdir_that_is_a_file_or_under_one(idx_dir, tmp_path, capsys):
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    train = ["train", "--model", "dense", "--data-dir", str(idx_dir), "--accelerator", "cpu", "--max-epochs", "1"]
    assert main([*train, "--logdir", str(note)]) == 2
    assert f"--logdir {note} is a file, not a folder" in one_error(capsys)
    assert main([*train, "--logdir", str(note / "runs")]) == 2
    assert f"{note} is a file, so no folder can be made there" in one_error(capsys)
    assert note.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [note]


def test_a_folder_that_cannot_be_written(idx_dir, tmp_path, monkeypatch, capsys):
    # the tests run as root, who may write anywhere: the folder's permission is what os.access says
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and access(path, mode, **kw))
    train = ["train", "--model", "dense", "--data-dir", str(idx_dir), "--accelerator", "cpu", "--max-epochs", "1"]
    assert main([*train, "--logdir", str(locked / "runs")]) == 2
    assert one_error(capsys) == (f"error: --logdir {locked / 'runs'}: {locked} cannot be written (permission "
                                 "denied); give a path you can write to.")
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("command, flag, kind", [
    (["evaluate", "--checkpoint", "{classifier}"], "--out-dir", "file"),
    (["predict", "{image}", "--checkpoint", "{classifier}"], "--out", "folder"),
    (["export", "--checkpoint", "{classifier}"], "--out", "folder"),
    (["generate", "--checkpoint", "{gan}"], "--out", "folder"),
    (["show", "--data-dir", "{data}"], "--out", "under a file"),
    (["graph", "--model", "dense"], "--out", "under a file"),
])
def test_every_output_path_is_checked_before_the_work(command, flag, kind, classifier_checkpoint, gan_checkpoint,
                                                       idx_dir, tmp_path, capsys):
    values = {"classifier": str(classifier_checkpoint), "gan": str(gan_checkpoint), "data": str(idx_dir),
              "image": str(tmp_path / "digit.png")}
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    target = {"file": note, "folder": tmp_path / "folder.png", "under a file": note / "picture.png"}[kind]
    if kind == "folder":
        target.mkdir()
    assert main([word.format(**values) for word in command] + [flag, str(target)]) == 2
    message = one_error(capsys)
    assert f"{flag} {target}" in message and {"file": "is a file, not a folder", "folder": "is a folder",
                                              "under a file": "no folder can be made"}[kind] in message
    assert note.read_text() == "keep me"


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one_and_says_how_to_continue(idx_dir, tmp_path, capsys,
                                                                                     monkeypatch):
    # 288 training images, 9 steps an epoch; last.ckpt every 3 steps: the write at step 6 fails
    args = ["train", "--model", "dense", "--data-dir", str(idx_dir), "--accelerator", "cpu", "--max-epochs", "2",
            "--batch-size", "32", "--logdir", str(tmp_path), "--set", "model.hidden_sizes=[16]",
            "--set", "checkpoint_every_n_steps=3", "--resume", "auto"]
    save = torch.save

    def fill_the_disk(obj, file, *rest, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == 6:
            file.write(b"PK\x03\x04 the first bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, file, *rest, **kwargs)

    monkeypatch.setattr(torch, "save", fill_the_disk)
    assert main(args) == 2
    last = tmp_path / "dense" / "version_0" / "checkpoints" / "last.ckpt"
    message = one_error(capsys)
    assert message == (f"error: could not write checkpoint {last}: the disk is full (No space left on device); "
                       "the previous last.ckpt is kept whole. Free some space (or fix the folder), then run the "
                       "same command with --resume auto to continue from the last checkpoint.")
    assert torch.load(last, weights_only=True)["global_step"] == 3
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no partial file left

    monkeypatch.undo()  # space freed: the same command continues
    assert main(args) == 0
    results = json.loads((last.parent.parent / "results.json").read_text())
    assert results["global_step"] == 18 and results["resumed_from"] == str(last)
