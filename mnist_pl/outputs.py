"""Where commands write (a run's --logdir, evaluate's --out-dir, every --out file): checked before
the slow part, so that a path that cannot be written is one clear error, not a traceback after
the work. No torch."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import UserError

# what an OSError raised by a write means for the user: the disk, the folder, the path
WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder",
                errno.EISDIR: "it is a folder"}


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_can_make(path: Path, what: str) -> None:
    """A UserError, starting with `what`, if folder `path` can neither be made nor written."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise UserError(f"{what}: {existing} is a file, so no folder can be made there; give another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what}: {existing} cannot be written (permission denied); give a path you can write to.")


def output_folder(path: str | Path, flag: str) -> Path:
    """`path` as a folder a command can make (if missing) and write in, or a UserError naming
    `flag` (the option or config key that gave it) and what to do."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: give a folder (it is made if missing), "
                        "or move the file away.")
    _check_can_make(path, f"{flag} {path}")
    return path


def output_file(path: str | Path, flag: str) -> Path:
    """`path` as a file a command can write (its folder made if missing; an existing file is
    overwritten), or a UserError naming `flag` and what to do."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name in it, such as {path / 'out'}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} cannot be overwritten (permission denied); give another file.")
    _check_can_make(path.parent, f"{flag} {path}")
    return path


def explain_write_error(err: OSError) -> str | None:
    """One line for an OSError raised while writing a file (None: not a write mistake)."""
    reason = WRITE_ERRNOS.get(err.errno or 0)
    if reason is None:
        return None
    where = f" {err.filename}" if err.filename else ""
    return (f"cannot write{where}: {reason} ({err.strerror}). Free some space or give another path; "
            "files written before are kept.")


@contextlib.contextmanager
def removed_if_failed(folder: Path | None, kept_once: str,
                      failures: tuple[type[BaseException], ...] = (Exception,)) -> Iterator[None]:
    """Remove the folders made for `folder` while the block runs if it raises one of `failures`
    before `folder` holds anything matching the glob `kept_once` (the work worth keeping): a
    command that fails leaves no empty folder behind (and the next run takes its number).
    Folders that existed before are never removed. `folder` None: nothing to remove."""
    made = [f for f in (folder, *folder.parents) if not f.exists()] if folder is not None else []
    try:
        yield
    except failures:
        if folder is not None and made and not any(folder.glob(kept_once)):
            shutil.rmtree(made[-1], ignore_errors=True)  # the outermost folder made for it
        raise
