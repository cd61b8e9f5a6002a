"""docs/workshop.md cannot go stale: every code block in it runs, and its outputs still hold.

The guide's blocks run in order, from the repository root, on the real-MNIST subset the guide
names, its commands in one test and its Python blocks in another: bash blocks of `python
train.py` and `python -m mnist_pl` commands through the function those call, other bash blocks
as bash scripts, Python blocks in one shared namespace, as in a notebook. Everything the guide writes under runs/workshop goes to a temporary
folder instead. A ```text block right after a code block is that block's output: each of its
lines must still appear (numbers aside), each accuracy it quotes must be within 0.03 of the
accuracy measured now, and each step count it quotes must be the one measured now. Only the
blocks in NOT_RUN, each marked `<!-- not run: REASON -->` in the guide, are skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess

import pytest

from conftest import ROOT, SUBSET

GUIDE = ROOT / "docs" / "workshop.md"
BLOCK = re.compile(r"(?:<!-- not run: (?P<reason>[^>]*?) -->\s*\n)?^```(?P<lang>\w+)\n(?P<code>.*?)^```",
                   re.S | re.M)
# The blocks a test cannot run, by their first line: installing, Docker, the exercise (which
# fails until it is done; tests/test_exercises.py runs it on the skeleton and the solution).
NOT_RUN = ["python -m venv .venv && . .venv/bin/activate", "docker build -t mnist-pl .",
           "python -m pytest mnist_pl/exercises"]
OUTPUT_DIR = "runs/workshop"
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
ACCURACY = re.compile(r"(?:accuracy|acc:)\s+(\d\.\d+)")
STEPS = re.compile(r"(\d[\d,]*) steps")


def blocks() -> list[dict[str, str]]:
    return [m.groupdict() for m in BLOCK.finditer(GUIDE.read_text())]


def test_only_the_listed_blocks_are_not_run():
    skipped = [b["code"].splitlines()[0] for b in blocks() if b["reason"]]
    assert skipped == NOT_RUN
    assert all(b["lang"] in ("bash", "python", "text") for b in blocks())
    # each output block follows a block that runs, so one of the two tests below checks it
    for before, block in zip(blocks(), blocks()[1:]):
        if block["lang"] == "text":
            assert before["lang"] != "text" and not before["reason"], block["code"]


def check_output(expected: str, actual: str, where: str) -> None:
    """Each expected line appears in `actual` with its numbers masked; quoted accuracies hold."""
    masked = {NUMBER.sub("N", line.strip()) for line in actual.splitlines()}
    for line in expected.splitlines():
        if line.strip() and line.strip() != "...":
            assert NUMBER.sub("N", line.strip()) in masked, f"{where}: output line {line!r} not in:\n{actual}"
    quoted, measured = ACCURACY.findall(expected), ACCURACY.findall(actual)
    assert len(quoted) == len(measured), f"{where}: accuracies quoted {quoted}, measured {measured}"
    for q, m in zip(quoted, measured):
        assert abs(float(q) - float(m)) <= 0.03, f"{where}: the guide says {q}, the code now gives {m}"
    # step counts follow from the data, the batch size and the epochs: they must match exactly
    quoted, measured = STEPS.findall(expected), STEPS.findall(actual)
    assert quoted == measured[:len(quoted)], f"{where}: the guide says {quoted} steps, the code now gives {measured}"


def cli_arguments(line: str) -> list[str] | None:
    """mnist-pl's arguments in a `python train.py ...` or `python -m mnist_pl ...` line, else None."""
    if any(char in line for char in "|&;<>$`"):
        return None  # shell syntax: for bash
    words = shlex.split(line)
    if words[:2] == ["python", "train.py"]:
        return ["train", *words[2:]]
    if words[:3] == ["python", "-m", "mnist_pl"]:
        return words[3:]
    return None


def run_in_process(code: str, where: str) -> str:
    """A bash block of mnist-pl commands, each run by the function that train.py and
    `python -m mnist_pl` call (the same code, without starting Python and importing PyTorch
    for each); returns their output."""
    from mnist_pl.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    for line in code.splitlines():
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(cli_arguments(line))
        assert status == 0, f"{where} failed:\n{line}\n{stderr.getvalue()[-3000:]}"
    return stdout.getvalue()


# The guide's commands and its Python blocks (one notebook) share nothing but the data, so they
# run as two tests, which the two test workers can run side by side.
@pytest.mark.slow
@pytest.mark.parametrize("lang", ["bash", "python"])
def test_every_block_of_the_guide_runs(lang, tmp_path, monkeypatch):
    if not SUBSET.is_dir():
        pytest.skip(f"real MNIST subset not found at {SUBSET}: the guide runs on it")
    outputs = tmp_path / OUTPUT_DIR
    outputs_in_repo = (ROOT / OUTPUT_DIR).exists()
    monkeypatch.chdir(ROOT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    namespace: dict = {"__name__": "workshop"}
    last_output, ran = None, 0
    for number, block in enumerate(blocks(), 1):
        where = f"block {number} ({block['lang']})"
        if block["reason"] or block["lang"] not in (lang, "text"):
            last_output = None  # an output block after it is not checked here either
            continue
        code = block["code"].replace(OUTPUT_DIR, str(outputs))
        if block["lang"] == "bash" and all(map(cli_arguments, code.splitlines())):
            last_output, ran = run_in_process(code, where), ran + 1
        elif block["lang"] == "bash":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{where} failed:\n{code}\n{proc.stderr[-3000:]}"
            last_output, ran = proc.stdout, ran + 1
        elif block["lang"] == "python":
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                exec(compile(code, f"workshop.md {where}", "exec"), namespace)
            last_output, ran = stdout.getvalue(), ran + 1
        elif last_output is not None:  # an output block, after a block this test ran
            check_output(block["code"].replace(OUTPUT_DIR, str(outputs)), last_output, where)
            last_output = None
    assert ran == sum(b["lang"] == lang and not b["reason"] for b in blocks()) >= 4
    assert outputs.is_dir()  # the guide wrote where it said, and the test redirected it
    assert (ROOT / OUTPUT_DIR).exists() == outputs_in_repo, "the guide wrote into the repository"
