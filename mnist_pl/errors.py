"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""

from __future__ import annotations

from typing import Any, Mapping


def first_line(err: BaseException, empty: str = "") -> str:
    """The first line of `err`'s message, for a one-line error (PyTorch's and the user's own
    messages may run over many), or `empty` where it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else empty


class UserError(Exception):
    """A problem with the user's input (data, config, flags, checkpoint) and how to fix it.

    The command-line interface prints the message alone, without a traceback, and exits with
    status 2. Library users catch it like any other exception. `report=False` marks the copy
    raised on the other processes of a multi-process run, where the first process says it: the
    command line exits with status 2 without saying it again.
    """

    def __init__(self, *args: object, report: bool = True):
        super().__init__(*args)
        self.report = report


class ArgumentError(UserError):
    """A constructor argument its declaration does not allow (mnist_pl.rules), or arguments that
    do not fit together, named with the class: "CNNClassifier(lr=-1): lr must be above 0.".

    `owner` is the class's name, `arguments` the offending arguments with their values, and
    `problem` what is wrong ("lr must be above 0."), for messages that name them otherwise (the
    command line names config keys).
    """

    def __init__(self, owner: str, arguments: Mapping[str, Any], problem: str):
        self.owner, self.arguments, self.problem = owner, dict(arguments), problem
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments.items())
        super().__init__(f"{owner}({shown}): {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (e.g. between processes) with its parts
        return type(self), (self.owner, self.arguments, self.problem)


class ArgumentValueError(ArgumentError, ValueError):
    """An argument of the right type whose value is not allowed (out of range, not a choice)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (text for a number, a number for a list, ...)."""


class TrainingStopped(Exception):
    """Training stopped on a scheduler's signal (SIGTERM or SIGUSR1) after writing last.ckpt at
    the step it had reached: the same command with `--resume auto` continues it exactly.

    The command line prints the message as one line and exits with `exit_status`, 128 plus the
    signal's number as a shell reports a process the signal stopped (143 for SIGTERM, 138 for
    SIGUSR1 on Linux): neither success (0) nor a failure to retry differently (1, 2).
    """

    def __init__(self, message: str, signal_number: int, report: bool = True):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_status = 128 + signal_number
        self.report = report  # False on all but the first of several processes: one of them says it
