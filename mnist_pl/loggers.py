"""TensorBoard logging of a run: the logger that draws the model graph once, and the wait that
keeps a resumed run's event file in order."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger

from .compiling import eager_networks


class GraphLogger(TensorBoardLogger):
    """A TensorBoardLogger that puts the model graph in TensorBoard's Graphs tab once per run.

    The graph is traced from the model's example_input_array in eval mode (so that the trace
    leaves batch-norm statistics alone), without the deprecation warnings of torch.jit's tracer,
    which tell a user nothing they can act on.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._graph_logged = False

    def log_graph(self, model: LightningModule,  # type: ignore[override]  # as Lightning's own logger narrows it
                  input_array: torch.Tensor | None = None) -> None:
        if self._graph_logged:  # trainer.test after trainer.fit would log it a second time
            return
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", r".*torch\.jit\.trace.* is deprecated", FutureWarning)
                # the tracer reads every attribute of the torchmetrics metrics, deprecated ones too
                warnings.filterwarnings("ignore", r".*Metric\.updated_called", DeprecationWarning)
                with eager_networks(model):  # the tracer refuses compiled networks
                    super().log_graph(model, input_array)
        finally:
            model.train(was_training)
        self._graph_logged = True


def wait_to_sort_after_events_in(run_dir: Path) -> None:
    """Wait, at most a second, until an event file made now sorts after those in `run_dir`.

    TensorBoard reads a run's event files in name order, and a name starts with the second the
    file was made, then the process id: a run resumed within the second of the crash would
    otherwise be read before the crashed one, and its steps drawn out of order."""
    newest = max((int(match.group(1)) for path in run_dir.glob("events.out.tfevents.*")
                  if (match := re.match(r"events\.out\.tfevents\.(\d+)\.", path.name))), default=None)
    if newest is not None and newest >= int(time.time()):
        time.sleep(newest + 1 - time.time())
