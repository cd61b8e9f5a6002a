"""How the package is put together: no import loops, and each model's rules on the model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from torch import nn

from mnist_pl import MODELS, MNISTModule, UserError, build_trainer, load_config, train

PACKAGE = Path(__file__).resolve().parent.parent / "mnist_pl"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere, inside functions too."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules and c not in (name, "mnist_pl")}
    return found


def test_no_import_loops():
    """mnist_pl/__init__.py is left out: it imports nothing of the package until a name is used."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(paths)) for name, path in paths.items()}

    def loop_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path and (found := loop_from(start, [*path, nxt])):
                return found
        return None

    loops = [loop for name in graph if (loop := loop_from(name, [name]))]
    assert not loops, " ; ".join(" -> ".join(loop) for loop in loops)


def test_training_does_not_ask_which_model_it_has():
    tree = ast.parse((PACKAGE / "training.py").read_text())
    model_types = {cls.__name__ for cls in MODELS.values()} | {"ImageClassifier", "GAN"}
    named = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not model_types & named


class Regressor(MNISTModule):
    """A model training.py has never heard of, with rules of its own."""

    checkpoint_monitor = "val/loss"
    checkpoint_mode = "min"
    ddp_find_unused_parameters = True

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(28 * 28, 1)

    def logs_learning_rate(self) -> bool:
        return True


def test_a_new_model_brings_its_own_rules(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import TensorBoardLogger

    trainer = build_trainer(Regressor(), TensorBoardLogger(tmp_path), accelerator="cpu", strategy="ddp",
                            devices=1)
    assert trainer.checkpoint_callback.monitor == "val/loss" and trainer.checkpoint_callback.mode == "min"
    assert trainer.checkpoint_callback.filename == "epoch{epoch:03d}-val_loss{val/loss:.4f}"
    assert any(isinstance(c, LearningRateMonitor) for c in trainer.callbacks)
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True


def test_train_holds_a_model_to_its_data_normalisation(idx_dir, tmp_path):
    config = load_config("gan", overrides={"data.normalize": "standard", "data.data_dir": str(idx_dir),
                                           "logdir": str(tmp_path)})
    with pytest.raises(UserError, match="GAN trains on data normalised as 'symmetric', not 'standard'.*data.normalize: symmetric"):
        train("gan", config)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_the_readme_layout_names_every_module():
    layout = (PACKAGE.parent / "README.md").read_text().split("## Layout", 1)[1]
    modules = [path for path in PACKAGE.glob("*.py")] + [PACKAGE / "commands", PACKAGE / "exercises", PACKAGE / "configs"]
    missing = [path.name for path in modules if path.name not in layout]
    assert not missing, f"modules the README's Layout section does not name: {missing}"
