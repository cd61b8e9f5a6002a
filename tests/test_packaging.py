"""Packaging: the wheel carries the shipped configs, search spaces and the py.typed marker, and a missing
config says how to get one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mnist_pl import UserError, load_config
from mnist_pl import config as config_module
from mnist_pl import registry

ROOT = Path(__file__).resolve().parent.parent
# caches and run folders a working copy's package folder may hold: not part of a wheel
LEFT_OUT = shutil.ignore_patterns("*.egg-info", "__pycache__", "runs", "lightning_logs")


def test_top_level_configs_are_the_package_configs():
    """One set of files: the folder users read is the one the package loads."""
    assert (ROOT / "configs").resolve() == config_module.CONFIG_DIR.resolve()
    assert config_module.CONFIG_DIR.parent == Path(config_module.__file__).resolve().parent


@pytest.mark.slow
def test_wheel_holds_every_module_and_the_configs(tmp_path):
    source = tmp_path / "source"
    # what the build reads, not the whole checkout (whose virtual environment may hold gigabytes)
    shutil.copytree(ROOT / "mnist_pl", source / "mnist_pl", ignore=LEFT_OUT)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "wheels"), str(source)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = (tmp_path / "wheels").glob("mnist_pl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        packed = {Path(name).name: archive.read(name) for name in names if name.startswith("mnist_pl/configs/")}
    # every module of the source tree, subpackages included
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "mnist_pl").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))
    assert "mnist_pl/py.typed" in names  # type checkers read the package's hints (PEP 561)
    shipped = {path.name: path.read_bytes() for path in (ROOT / "configs").glob("*.yaml")}
    assert {"dense.yaml", "cnn.yaml", "gan.yaml"} <= set(shipped)  # and any other shipped config
    assert packed == shipped
    spaces = {path.name for path in (ROOT / "mnist_pl" / "spaces").glob("*.yaml")}
    assert {"dense.yaml", "cnn.yaml", "gan.yaml"} <= spaces  # the sweeps' shipped search spaces
    assert {f"mnist_pl/spaces/{name}" for name in spaces} <= set(names)


def test_missing_config_names_a_file_that_exists(tmp_path):
    with pytest.raises(UserError, match="does not exist") as caught:
        load_config("cnn", tmp_path / "nope.yaml")
    suggested = re.search(r"(/\S+/cnn\.yaml)", str(caught.value)).group(1)
    assert Path(suggested).is_file()


def test_install_without_configs_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path / "configs")
    monkeypatch.setattr(registry, "CONFIG_DIR", tmp_path / "configs")
    with pytest.raises(UserError, match=r"lacks its shipped configs.*reinstall mnist-pl"):
        load_config("cnn")
