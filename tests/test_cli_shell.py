"""The command-line shell: every command's --help without torch, lazy package exports, the model registry."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import mnist_pl
from conftest import ROOT
from mnist_pl.cli import build_parser, main
from mnist_pl.registry import MODEL_CLASSES, model_class

COMMANDS = ["train", "sweep", "download", "show", "summary", "graph", "evaluate", "predict", "generate", "score", "demo", "export"]
HEAVY = ("torch", "lightning", "torchvision", "torchmetrics", "matplotlib", "numpy", "gradio", "onnx", "optuna")


def loaded_after(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_parser_and_package_import_load_no_torch():
    """What keeps --help quick: building the parser imports neither torch nor Lightning."""
    assert loaded_after("import mnist_pl; from mnist_pl.cli import build_parser; build_parser()") == []


def test_help_of_train_py_loads_no_torch():
    code = "import runpy, sys\nsys.argv = ['train.py', '--help']\ntry:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == []


def test_every_command_is_in_the_parser_with_help(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == COMMANDS
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert f"usage: mnist-pl {command}" in capsys.readouterr().out


def test_model_choices_come_from_the_registry(capsys):
    with pytest.raises(SystemExit) as done:
        main(["summary", "--model", "resnet"])
    assert done.value.code == 2
    assert capsys.readouterr().err == ("error: unknown --model 'resnet' (choose dense, cnn, gan, or module:Class "
                                       "of your own, such as my_models:FocalCNN)\n")


def test_registry_names_the_model_classes():
    assert list(mnist_pl.MODELS) == list(MODEL_CLASSES)
    for name, cls in mnist_pl.MODELS.items():
        assert model_class(name) is cls
        assert MODEL_CLASSES[name] == f"{cls.__module__}:{cls.__qualname__}"


def test_lazy_exports_match_the_type_checking_imports():
    """__init__.py names each public export twice (at run time, for type checkers): the same."""
    tree = ast.parse((ROOT / "mnist_pl" / "__init__.py").read_text())
    checking = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in checking.body for alias in node.names}
    assert imported == mnist_pl._EXPORTS
    assert mnist_pl.__all__ == sorted(imported)
    for name in mnist_pl.__all__:
        assert getattr(mnist_pl, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mnist_pl.nope  # noqa: B018
