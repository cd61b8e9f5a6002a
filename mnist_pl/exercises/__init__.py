"""The workshop's exercise: a small CNN, one training step and a LightningModule, to fill in.

`small_cnn.py` is the skeleton, with TODOs that raise NotImplementedError until they are done;
`solutions/small_cnn.py` is a worked solution. The tests in this folder check whichever one
`MNIST_PL_EXERCISE` names (unset: the skeleton, your work):

    python -m pytest mnist_pl/exercises                              # your work
    MNIST_PL_EXERCISE=solutions python -m pytest mnist_pl/exercises  # the solution
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ..errors import UserError

IMPLEMENTATIONS = {"exercise": "mnist_pl.exercises.small_cnn", "solutions": "mnist_pl.exercises.solutions.small_cnn"}


def load(which: str | None = None) -> ModuleType:
    """The small_cnn module to test: `which` ("exercise" or "solutions"), else $MNIST_PL_EXERCISE."""
    which = which or os.environ.get("MNIST_PL_EXERCISE") or "exercise"
    if which not in IMPLEMENTATIONS:
        raise UserError(f"MNIST_PL_EXERCISE={which!r} is not one of {', '.join(IMPLEMENTATIONS)}; "
                        "leave it unset to test your own work.")
    return importlib.import_module(IMPLEMENTATIONS[which])
