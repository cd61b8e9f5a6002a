"""Process-wide set-up for training: glibc's malloc kept from handing memory back, and
Lightning's log lines and library warnings that a user cannot act on kept out of the output."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import platform
import re
import warnings
from typing import Any, Iterator


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MB for reuse instead of handing them back.

    By default glibc returns large freed blocks to the kernel and the next step's tensors of the
    same size fault every page back in, a sizeable and varying share of a CPU step's time. Kept,
    they cost no memory beyond the training's own peak. Process-wide, so train.py calls it (call it yourself in your own
    scripts); returns False, changing nothing, where the C library is not glibc (macOS, Windows).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    # blocks below 32 MB (glibc's largest mmap threshold) from the heap; no trimming below 1 GB free
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))


# Lightning's lines that tell a user nothing to act on: which hardware it saw (and did not use),
# that fit stopped at max_epochs, that test reloaded the best checkpoint (the summary names it),
# and its adverts for a cloud service. Its warnings and errors still show.
_CHATTER = re.compile(r"^\s*((GPU|TPU|HPU|IPU) available:|LOCAL_RANK: \d+ - |`Trainer\.fit` stopped: "
                      r"|Restoring states from the checkpoint path|Loaded model weights from the checkpoint)"
                      r"|Tip:.*(litlogger|litmodels)")
# warnings that are Lightning's and torch's business, or wrong for mnist-pl: its classifiers and
# GAN log their step losses every log_every_n_steps steps across epochs, however short an epoch
_IGNORED_WARNINGS: list[dict[str, Any]] = [
    dict(message=r"The number of training batches \(\d+\) is smaller than the logging interval"),
    # a resumed run writes into its own checkpoints folder again, on purpose
    dict(message=r"Checkpoint directory .* exists and is not empty"),
    *(dict(category=category, module=module) for category in (DeprecationWarning, FutureWarning)
      for module in (r"lightning(_fabric|_utilities)?\.", r"torch\.", r"torchmetrics\.")),
]


class _NoChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _CHATTER.search(record.getMessage())


def hide_lightning_chatter() -> None:
    """Keep Lightning's informational lines that a user cannot act on (see _CHATTER) out of the
    output of every Trainer in this process (idempotent); its warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoChatter) for f in log.filters):
            log.addFilter(_NoChatter())


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Hide, inside the block, the warnings of _IGNORED_WARNINGS (library deprecations a user
    cannot act on); every other warning still shows."""
    with warnings.catch_warnings():
        for spec in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", **spec)
        yield
