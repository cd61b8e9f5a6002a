"""The flags several commands share, defined once, and the helper that adds a command.

Nothing here imports torch or Lightning: the parser is built from these before any command
runs, so `--help` answers at once. Handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ..registry import model_names

Handler = Callable[[argparse.Namespace], int]
Subcommands = argparse._SubParsersAction


def add_command(sub: Subcommands, name: str, handler: Handler, help: str, description: str | None = None
                ) -> argparse.ArgumentParser:
    """A subcommand `name` whose arguments go to `handler`; its --help shows each flag's default."""
    parser = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def add_model_flags(parser: argparse.ArgumentParser, what: str = "which model") -> None:
    """--model, --config and --set: a model and its full config (see config.load_config)."""
    parser.add_argument("--model", choices=model_names(), default="cnn", help=what)
    parser.add_argument("--config", default=None, help="YAML config (default: the shipped configs/<model>.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set model.dropout=0.1 (repeatable)")


def add_checkpoint_flag(parser: argparse.ArgumentParser, what: str = "a .ckpt file written by train.py",
                        required: bool = True) -> None:
    parser.add_argument("--checkpoint", required=required, help=what)


def add_data_flags(parser: argparse.ArgumentParser, dataset: str | None = "mnist", data_dir: str | None = "data",
                   dataset_help: str = "mnist, fashion-mnist or kmnist",
                   data_dir_help: str = "folder with the four IDX files, or where to download") -> None:
    """--dataset and --data-dir, with the defaults and meaning each command gives them."""
    parser.add_argument("--dataset", default=dataset, help=dataset_help)
    parser.add_argument("--data-dir", default=data_dir, help=data_dir_help)


def add_no_download_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")


def build_model(args: argparse.Namespace) -> Any:
    """The model of --model, built from its config (--config, --set)."""
    from ..config import load_config, parse_set
    from ..registry import model_class

    config = load_config(args.model, args.config, parse_set(args.set))
    return model_class(args.model)(**config["model"])
