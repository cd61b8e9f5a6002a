"""A student's mistakes: each is one line `error: ...` on stderr after no other output, exit status 2,
no traceback, and the log and data folders exactly as they were before (nothing made, nothing lost).

The cases run through the CLI's main() in this process, to keep the suite fast; the real
script's exit status and stderr are checked in subprocesses by the slow tests at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SUBSET, run_cli
from mnist_pl.cli import main


def tree(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folders`, with each file's size and modification time: what a failed
    run may not change (a folder's own time changes when a run folder is made and removed)."""
    found = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")] if folder.exists() else []:
            stat = path.stat()
            found[str(path)] = (stat.st_size, stat.st_mtime_ns) if path.is_file() else (-1, -1)
    return found


@pytest.fixture
def world(tmp_path: Path, idx_dir: Path, gan_checkpoint: Path, classifier_checkpoint: Path) -> dict[str, Path]:
    """A user's folders: runs/ with an earlier run in it, data/ with a data set, a folder of
    PNGs, a text file, a broken YAML file, a GAN and a classifier checkpoint."""
    runs = tmp_path / "runs"
    earlier = runs / "dense" / "version_0"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "results.json").write_text("{}\n")
    data = tmp_path / "data"
    subset = data / "mnist-subset"
    shutil.copytree(idx_dir, subset)
    partial = data / "three-files"
    shutil.copytree(idx_dir, partial)
    next(partial.glob("t10k-labels*")).unlink()
    pictures = data / "pictures"
    pictures.mkdir()
    from PIL import Image

    Image.new("L", (28, 28), 255).save(pictures / "blank.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes: train the CNN for 15 epochs\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  lr: 0.1\n   dropout: 0.2\n")
    return {"runs": runs, "data": data, "subset": subset, "partial": partial, "pictures": pictures,
            "notes": notes, "bad_yaml": bad_yaml, "gan": gan_checkpoint,
            "classifier": classifier_checkpoint, "tmp": tmp_path}


def train_args(w: dict[str, Path], *extra: str, model: str = "dense") -> list[str]:
    return ["train", "--model", model, "--data-dir", str(w["subset"]), "--logdir", str(w["runs"]),
            "--accelerator", "cpu", *extra]


# Each case: the command line (from the folders of `world`) and a piece of the one error line.
# The first block is the list; the second are further mistakes a student makes.
CASES = {
    # the cases
    "max-epochs -1": (lambda w: train_args(w, "--max-epochs", "-1"), "--max-epochs -1: trainer.max_epochs must be at least 1"),
    "max-epochs 0": (lambda w: train_args(w, "--max-epochs", "0"), "--max-epochs 0: trainer.max_epochs must be at least 1"),
    "lr -1": (lambda w: train_args(w, "--lr", "-1"), "--lr -1.0: model.lr must be above 0"),
    "hidden_sizes not a list": (lambda w: train_args(w, "--set", "model.hidden_sizes=256"),
                                "model.hidden_sizes must be a list of whole numbers, such as [512, 256]"),
    "predict: text file as checkpoint": (lambda w: ["predict", "--checkpoint", str(w["notes"]), str(w["pictures"])],
                                         "cannot be read (it is a text file)"),
    "generate: text file as checkpoint": (lambda w: ["generate", "--checkpoint", str(w["notes"]),
                                                     "--out", str(w["tmp"] / "g.png")], "it is a text file"),
    "evaluate: text file as checkpoint": (lambda w: ["evaluate", "--checkpoint", str(w["notes"]),
                                                     "--out-dir", str(w["tmp"] / "ev")], "it is a text file"),
    "score: text file as evaluator": (lambda w: ["score", "--evaluator", str(w["notes"]), "--data-dir",
                                                 str(w["subset"])], "it is a text file"),
    "resume: text file as checkpoint": (lambda w: train_args(w, "--resume", str(w["notes"])), "it is a text file"),
    "data-dir typo": (lambda w: train_args(w, "--data-dir", str(w["data"] / "mnist-subsett")),
                      "mnist-subsett does not exist (did you mean"),
    "data-dir of pictures": (lambda w: train_args(w, "--data-dir", str(w["pictures"])),
                             "holds none of the four IDX files"),
    "key without its section": (lambda w: train_args(w, "--set", "hidden_sizes=[64]"),
                                "did you mean 'model.hidden_sizes'?"),
    "cnn key given to dense": (lambda w: train_args(w, "--set", "model.channels=[8]"),
                               "model.channels belongs to the cnn model"),
    "misspelt key": (lambda w: train_args(w, "--set", "model.dropuot=0.1"), "did you mean 'model.dropout'?"),
    "YAML error": (lambda w: train_args(w, "--config", str(w["bad_yaml"])), "bad.yaml, line 3, column 11"),
    # the cases the issue found already right, kept right
    "batch size 0": (lambda w: train_args(w, "--batch-size", "0"), "--batch-size 0: data.batch_size must be at least 1"),
    "lr not a number": (lambda w: train_args(w, "--set", "model.lr=abc"), "model.lr must be a number"),
    "resume last without a run": (lambda w: train_args(w, "--resume", "last", model="cnn"), "nothing to resume"),
    "GAN checkpoint to predict": (lambda w: ["predict", "--checkpoint", str(w["gan"]), str(w["pictures"])],
                                  "holds a GAN"),
    "text file as image": (lambda w: ["predict", "--checkpoint", str(w["classifier"]), str(w["notes"])],
                           "not an image"),
    "show index out of range": (lambda w: ["show", "--data-dir", str(w["subset"]), "--index", "99999"],
                                "--index 99999 is outside"),
    # further mistakes (listed in the closing note)
    "optimizer misspelt": (lambda w: train_args(w, "--set", "model.optimizer=adamm"), "did you mean 'adam'?"),
    "dropout above 1": (lambda w: train_args(w, "--set", "model.dropout=1.5"), "model.dropout must be in [0, 1)"),
    "precision unknown": (lambda w: train_args(w, "--precision", "15"), "--precision 15: trainer.precision must be one of"),
    "accelerator misspelt": (lambda w: train_args(w, "--accelerator", "gpuu"), "did you mean 'gpu'?"),
    "devices not a number": (lambda w: train_args(w, "--devices", "abc"), "check trainer.devices='abc' (from --devices)"),
    "key mnist-pl sets itself": (lambda w: train_args(w, "--set", "trainer.logger=false"),
                                 "mnist-pl sets trainer.logger itself"),
    "section misspelt": (lambda w: train_args(w, "--set", "modle.lr=0.1"), "there is no section 'modle'; did you mean 'model'?"),
    "GAN betas of one number": (lambda w: train_args(w, "--set", "model.betas=[0.5]", model="gan"),
                                "model.betas must have 2 entries"),
    "dataset misspelt": (lambda w: train_args(w, "--dataset", "mnsit"), "did you mean 'mnist'?"),
    "data-dir is a file": (lambda w: train_args(w, "--data-dir", str(w["notes"])), "is a file, not a folder"),
    "data-dir lacks a file": (lambda w: train_args(w, "--data-dir", str(w["partial"])), "lacks t10k-labels-idx1-ubyte"),
    "data-dir one level too high": (lambda w: train_args(w, "--data-dir", str(w["data"])),
                                    "did you mean {data}/mnist-subset?"),
    "run folder as checkpoint": (lambda w: ["predict", "--checkpoint", str(w["runs"] / "dense" / "version_0"),
                                            str(w["pictures"])], "is a folder"),
    "validation takes every image": (lambda w: train_args(w, "--set", "data.val_size=0.999999", "--max-epochs", "1"),
                                     "leaves no training or no validation images"),
    "epochs not a number": (lambda w: train_args(w, "--set", "trainer.max_epochs=ten"),
                            "trainer.max_epochs must be a whole number"),
    # the command line itself: argparse's mistakes are one line too
    "model misspelt": (lambda w: train_args(w, "--model", "cnnn"),
                       "error: unknown --model 'cnnn'; did you mean 'cnn'? (choose dense, cnn, gan, or module:Class of "
                       "your own, such as my_models:FocalCNN)\n"),
    "command misspelt": (lambda w: ["trian", "--model", "cnn"], "unknown command 'trian'; did you mean 'train'?"),
    "flag misspelt": (lambda w: train_args(w, "--epochs", "3"),
                      "unknown flag '--epochs'; did you mean '--max-epochs'? (see mnist-pl train --help)"),
    "flag without its value": (lambda w: train_args(w, "--data-dir"), "--data-dir needs a value"),
    "choice misspelt": (lambda w: ["show", "--data-dir", str(w["subset"]), "--split", "tset"],
                        "unknown --split 'tset'; did you mean 'test'?"),
    "whole number expected": (lambda w: train_args(w, "--max-epochs", "ten"), "--max-epochs 'ten' is not a whole number"),
    "checkpoint missing": (lambda w: ["generate"], "mnist-pl generate needs --checkpoint"),
    "no command": (lambda w: [], "give a command: train, sweep, download"),
    "checkpoint last without a run": (lambda w: ["generate", "--checkpoint", "last", "--logdir", str(w["runs"])],
                                      "--checkpoint last: no run has a last.ckpt"),
}


def run_main(argv: list[str]) -> int:
    """main()'s exit status, also where argparse exits itself."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_is_one_line_and_changes_nothing(case, world, capfd, monkeypatch):
    monkeypatch.chdir(world["tmp"])
    make_argv, expected = CASES[case]
    expected = expected.format(data=world["data"])
    before = tree(world["runs"], world["data"], world["tmp"])
    status = run_main(make_argv(world))
    out, err = capfd.readouterr()
    assert status == 2, (case, out[-2000:], err[-2000:])
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: "), (case, out[-2000:], err[-2000:])
    assert expected in err, (case, err)
    assert tree(world["runs"], world["data"], world["tmp"]) == before, f"{case}: the folders changed"


def test_a_failed_download_leaves_no_folder_and_says_why(tmp_path, capfd, monkeypatch):
    """The default data/ downloads; here the download fails (as without internet): the error
    gives its reason and the folders the download made are gone again."""
    import torchvision

    def no_network(self, *args, **kwargs):
        (Path(self.root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example.org/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\n")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "dense", "--logdir", str(tmp_path / "runs"), "--accelerator", "cpu"]) == 2
    out, err = capfd.readouterr()
    assert err.startswith("error: mnist data not found in data, and the download failed (Error downloading "
                          "train-images-idx3-ubyte.gz: [Errno -2] Name or service not known)"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in out + err
    assert list(tmp_path.iterdir()) == [], "the failed run left folders behind"


def test_an_existing_data_folder_is_never_downloaded_into(tmp_path, capfd):
    """A folder the user named that lacks the data is an error, not a download target."""
    empty = tmp_path / "my-data"
    empty.mkdir()
    assert main(["show", "--data-dir", str(empty)]) == 2
    assert "python -m mnist_pl download --dataset mnist --data-dir" in capfd.readouterr().err
    assert list(empty.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["train.py", "--model", "dense", "--max-epochs", "-1"], "error: --max-epochs -1: trainer.max_epochs"),
])
def test_the_real_script_prints_one_line_and_exits_2(args, expected, tmp_path):
    """train.py itself (the mistakes above run in-process; `python -m mnist_pl` itself runs in
    test_generate and in the piped-output case below)."""
    proc = run_cli(*args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert proc.stderr.startswith(expected) and len(proc.stderr.splitlines()) == 1, proc.stderr[-2000:]


@pytest.mark.slow
def test_a_training_run_on_the_subset_prints_no_warning_and_no_lightning_chatter(tmp_path):
    """What a student sees: the model summary, the progress bar and the final summary; no
    deprecation warnings, no "GPU available", no logging-interval warning."""
    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET}")
    proc = run_cli(str(ROOT / "train.py"), "--model", "dense", "--data-dir", str(SUBSET), "--max-epochs", "1",
                   "--logdir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch 0: 100%" in proc.stdout + proc.stderr  # the progress bar
    assert "Model:            dense on mnist (1 epoch, 29 steps" in proc.stdout
    assert "Best checkpoint:  " + str(tmp_path / "dense" / "version_0" / "checkpoints") in proc.stdout
    bar_free = [line for line in proc.stderr.splitlines() if line.strip() and "it/s" not in line and "%|" not in line]
    assert bar_free == [], bar_free
    for chatter in ("Warning", "deprecated", "GPU available", "TPU available", "logging interval", "`Trainer.fit` stopped"):
        assert chatter not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["train", "show", "evaluate", "predict", "generate", "score", "summary"])
def test_help_shows_real_defaults_and_never_none(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    if command == "train":  # each model's shipped value, as its YAML file says
        import yaml

        from mnist_pl.registry import CONFIG_DIR

        configs = {m: yaml.safe_load((CONFIG_DIR / f"{m}.yaml").read_text()) for m in ("dense", "cnn", "gan")}
        epochs = {m: c["trainer"]["max_epochs"] for m, c in configs.items()}
        epochs = (str(epochs["cnn"]) if len(set(epochs.values())) == 1
                  else ", ".join(f"{m} {n}" for m, n in epochs.items()))
        assert f"(trainer.max_epochs; config: {epochs})" in text
        assert f"(config: {configs['cnn']['seed']})" in text


def test_checkpoint_last_is_the_newest_run_of_the_right_model(tmp_path, capfd):
    """`--checkpoint last` resolves to the newest run's last.ckpt of the models the command takes."""
    import os

    from mnist_pl.commands.flags import resolve_checkpoint_flags
    from mnist_pl.cli import build_parser

    for model, version, age in (("cnn", 0, 300), ("cnn", 1, 200), ("dense", 0, 100), ("gan", 0, 0)):
        last = tmp_path / model / f"version_{version}" / "checkpoints" / "last.ckpt"
        last.parent.mkdir(parents=True)
        last.write_bytes(b"")
        os.utime(last, (1e9 - age, 1e9 - age))
    for argv, expected in ((["predict", "x.png"], "dense/version_0"), (["generate"], "gan/version_0"),
                           (["score", "--data-dir", "d", "--evaluator"], "dense/version_0")):
        flag = [] if argv[-1] == "--evaluator" else ["--checkpoint"]
        args = build_parser().parse_args([*argv, *flag, "last", "--logdir", str(tmp_path)])
        resolve_checkpoint_flags(args)
        assert (args.evaluator if "score" in argv else args.checkpoint) == str(
            tmp_path / expected / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_output_piped_into_head_ends_quietly(tmp_path):
    """`... | head -2` closes the pipe early: no BrokenPipeError traceback, exit status 0."""
    proc = subprocess.run(f"{sys.executable} -m mnist_pl summary --model dense | head -2", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.startswith("dense: DenseClassifier") and proc.stderr == "", proc.stderr[-2000:]
