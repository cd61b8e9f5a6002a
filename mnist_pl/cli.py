"""`python -m mnist_pl COMMAND` (and `mnist-pl`, and train.py): the one shell of every command.

The parser is built from the command modules in mnist_pl/commands/ without importing torch or
Lightning, so `--help` answers at once; a command's handler imports what it needs when it runs.
A mistake the user can fix (a UserError, or Lightning's MisconfigurationException) is printed
here, for every command, as one line on stderr with exit status 2; a traceback means a bug in
mnist-pl. Training stopped by a scheduler's signal (TrainingStopped) says so in one line and
exits with 128 + the signal's number (143 for SIGTERM, 138 for SIGUSR1); Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, NoReturn, Sequence

from .commands import classifiers, data, deploy, gans, models, sweep, train
from .commands.flags import resolve_checkpoint_flags
from .errors import TrainingStopped, UserError
from .outputs import explain_write_error
from .rules import did_you_mean

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_SIGTERM = 128 + 15  # TrainingStopped's status for SIGTERM, as a shell reports it
# in the order `--help` lists their commands
COMMAND_MODULES = (train, sweep, data, models, classifiers, gans, deploy)


class Parser(argparse.ArgumentParser):
    """argparse with each mistake as one line `error: ...` and exit status 2 (no usage block),
    and a "did you mean" for an unknown command, choice or flag. Subcommands use it too."""

    def parse_known_args(  # type: ignore[override]  # one signature for argparse's overloads
            self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        self.words = list(sys.argv[1:] if args is None else args)  # for the messages below
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        print(f"error: {explain_parse_error(message, self)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)

    def command_parser(self) -> argparse.ArgumentParser:
        """The subcommand's parser named in the words parsed (for flags argparse left over)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for word in getattr(self, "words", []):
                    if word in action.choices:
                        return action.choices[word]
        return self


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """The flags of `parser` and of all its subcommands."""
    found = list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [flag for flag in _option_strings(sub) if flag not in found]
    return found


def explain_parse_error(message: str, parser: argparse.ArgumentParser) -> str:
    """argparse's message as one line that says what to do instead."""
    choice = re.match(r"argument (?P<arg>[^:]+): invalid choice: '?(?P<value>.*?)'? \(choose from (?P<options>.*)\)$",
                      message)
    if choice:
        arg, value = choice["arg"].split("/")[-1], choice["value"]
        options = [o.strip().strip("'\"") for o in choice["options"].split(",")]
        what = "command" if arg == "COMMAND" else arg
        return f"unknown {what} {value!r}{did_you_mean(value, options)} (choose {', '.join(options)})"
    typed = re.match(r"argument (?P<arg>[^:]+): invalid (?P<type>int|float) value: (?P<value>.*)$", message)
    if typed:
        kind = "a whole number" if typed["type"] == "int" else "a number"
        return f"{typed['arg'].split('/')[-1]} {typed['value']} is not {kind} (see {parser.prog} --help)"
    unknown = re.match(r"unrecognized arguments: (?P<args>.*)$", message)
    if unknown:
        command = parser.command_parser() if isinstance(parser, Parser) else parser
        flags = [a for a in unknown["args"].split() if a.startswith("-")]
        word = flags[0].split("=")[0] if flags else unknown["args"].split()[0]
        close = did_you_mean(word, _option_strings(command)) if flags else ""
        return f"unknown {'flag' if flags else 'argument'} {word!r}{close} (see {command.prog} --help)"
    missing_value = re.match(r"argument (?P<arg>[^:]+): expected one argument$", message)
    if missing_value:
        return f"{missing_value['arg'].split('/')[-1]} needs a value (see {parser.prog} --help)"
    named = re.match(r"argument (?P<arg>[^:]+): (?P<text>.*)$", message)
    if named and any(flag in named["text"] for flag in named["arg"].split("/")):
        return named["text"]  # a flag's own check (its type), whose message names the flag already
    required = re.match(r"the following arguments are required: (?P<args>.*)$", message)
    if required:
        if required["args"] == "COMMAND":
            commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            return f"give a command: {', '.join(commands)} (see {parser.prog} --help)"
        return f"{parser.prog} needs {required['args']} (see {parser.prog} --help)"
    return f"{message.removeprefix('argument ')} (see {parser.prog} --help)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnist-pl", description="MNIST with PyTorch Lightning: "
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
        resolve_checkpoint_flags(args)
        return args.handler(args)
    except BrokenPipeError:
        # the reader stopped early (`| head`): it had what it wanted; silence the final flush too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TrainingStopped as stop:
        if stop.report:
            print(str(stop), file=sys.stderr)
        return stop.exit_status
    except Exception as err:
        write_error = explain_write_error(err) if isinstance(err, OSError) else None
        if write_error is None and not isinstance(err, user_error_types()):
            raise
        if getattr(err, "report", True):  # (another process of the run said it)
            print(f"error: {write_error or err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except SystemExit as exit_:
        if type(exit_).__name__ != "SIGTERMException":  # Lightning's, on SIGTERM outside training
            raise
        print("stopped by SIGTERM outside training: checkpoints written so far are kept; "
              "run the same command with --resume auto to continue.", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are kept in the run directory.", file=sys.stderr)
        return EXIT_INTERRUPTED
