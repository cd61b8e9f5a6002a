"""Run directories under a log directory (LOGDIR/MODEL/version_N, as train.py makes them), and
the newest run's last checkpoint: what `--resume last` and `--checkpoint last` name. No torch."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import UserError


def newest_last_checkpoint(logdir: str | Path, models: Sequence[str], flag: str) -> Path:
    """The last.ckpt of the newest run of any of `models` under `logdir` (by the time it was
    written), or a UserError, for `flag` ("--resume last"), saying what to do."""
    candidates = [path for model in models for path in Path(logdir, model).glob("version_*/checkpoints/last.ckpt")]
    if not candidates:
        looked = ", ".join(str(Path(logdir, model, "version_*", "checkpoints", "last.ckpt")) for model in models)
        raise UserError(f"{flag}: no run has a last.ckpt ({looked}). Train one first "
                        f"(python train.py --model {models[-1]} --logdir {logdir}), or give the run's "
                        "--logdir, or a .ckpt file.")
    return max(candidates, key=lambda path: path.stat().st_mtime)
