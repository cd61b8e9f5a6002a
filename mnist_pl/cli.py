"""`python -m mnist_pl COMMAND` (and `mnist-pl`, and train.py): the one shell of every command.

The parser is built from the command modules in mnist_pl/commands/ without importing torch or
Lightning, so `--help` answers at once; a command's handler imports what it needs when it runs.
A mistake the user can fix (a UserError, or Lightning's MisconfigurationException) is printed
here, for every command, as one line on stderr with exit status 2; a traceback means a bug in
mnist-pl.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .commands import classifiers, data, gans, models, train
from .errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
# in the order `--help` lists their commands
COMMAND_MODULES = (train, data, models, classifiers, gans)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-pl", description="MNIST with PyTorch Lightning: "
                                     "dense, CNN and GAN models, with TensorBoard logging.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return parser


def user_error_types() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake: UserError, and Lightning's
    MisconfigurationException once a command has imported Lightning (never imported just for this)."""
    types: list[type[Exception]] = [UserError]
    lightning_exceptions = sys.modules.get("lightning.fabric.utilities.exceptions")
    if lightning_exceptions is not None:
        types.append(lightning_exceptions.MisconfigurationException)
    return tuple(types)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 on success, 2 for a user mistake)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as err:
        if not isinstance(err, user_error_types()):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are kept in the run directory.", file=sys.stderr)
        return EXIT_INTERRUPTED
