"""The package's type hints hold: mypy finds no error in mnist_pl/ (settings: pyproject.toml's
[tool.mypy]; `python -m mypy` in the repository root runs the same check)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_mypy_finds_no_errors_in_the_package(request):
    # mypy's cache (its reading of torch and Lightning) in pytest's: a rerun takes seconds
    cache = request.config.cache.mkdir("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert "No module named mypy" not in proc.stderr, "install the dev extra: pip install -e '.[dev]'"
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
