"""The flags several commands share, defined once, and the helper that adds a command.

Nothing here imports torch or Lightning: the parser is built from these before any command
runs, so `--help` answers at once. Handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ..errors import UserError
from ..registry import CLASS_PATH_HINT, SHIPPED_MODELS, check_model_name, model_names, shipped_values

Handler = Callable[[argparse.Namespace], int]
Subcommands = argparse._SubParsersAction


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where it has one: not "(default: None)" for a flag whose value
    comes from elsewhere (the config), nor "(default: False)" for a switch."""

    def _get_help_string(self, action: argparse.Action) -> str:
        no_default = action.default is None or action.default is False or action.default == []
        if no_default or action.default is argparse.SUPPRESS or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


def with_config_default(help: str, key: str) -> str:
    """`help` ending in what the shipped configs set `key` to, for a flag that overrides it:
    "... (trainer.max_epochs; config: dense 20, cnn 15, gan 20)", or "(config: 42)"."""
    values = shipped_values(key)
    if not values:
        return help
    texts = {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in values.items()}
    if len(set(texts.values())) == 1 and len(texts) == len(SHIPPED_MODELS):
        shown = next(iter(texts.values()))
    else:
        shown = ", ".join(f"{name} {text}" for name, text in texts.items())
    if help.endswith(f"({key})"):
        return f"{help[:-1]}; config: {shown})"
    return f"{help} (config: {shown})"


# The flags that set one config key each (--set sets any key, and wins over them), declared once
# for the commands that take them (train, sweep): flag -> (config key, type or "switch", help)
CONFIG_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--dataset": ("data.dataset", str, "mnist, fashion-mnist or kmnist (data.dataset)"),
    "--data-dir": ("data.data_dir", str, "folder with the four IDX files, or where to download (data.data_dir)"),
    "--batch-size": ("data.batch_size", int, "training batch size (data.batch_size)"),
    "--lr": ("model.lr", float, "learning rate (model.lr)"),
    "--max-epochs": ("trainer.max_epochs", int, "epochs to train (trainer.max_epochs)"),
    "--accelerator": ("trainer.accelerator", str, "cpu, gpu or auto (trainer.accelerator)"),
    "--devices": ("trainer.devices", str, "number of devices, or a list such as 0,1 (trainer.devices)"),
    "--precision": ("trainer.precision", str, "32-true, bf16-mixed, 16-mixed ... (trainer.precision)"),
    "--seed": ("seed", int, "seed for weights, shuffling and augmentation"),
    "--logdir": ("logdir", str, "where run directories are made"),
    "--strategy": ("trainer.strategy", str, "auto, ddp, ddp_spawn ... (trainer.strategy; default: auto)"),
    "--num-nodes": ("trainer.num_nodes", int, "machines to train on with DDP (trainer.num_nodes; default: 1)"),
    "--deterministic": ("trainer.deterministic", "switch",
                        "deterministic algorithms: with --seed, the same run gives the same weights"),
    "--compile": ("compile", "switch",
                  "torch.compile the networks: slow start, faster steps; on a GPU the networks run as CUDA graphs"),
    "--profile": ("profile", "switch",
                  "time each part of training with Lightning's simple profiler (fit-profile.txt)"),
}


def add_config_flags(parser: argparse.ArgumentParser, flags: list[str], helps: dict[str, str] | None = None) -> None:
    """Add `flags` of CONFIG_FLAGS (`helps` may say one in the command's own words), each help
    ending in what the shipped configs set its key to."""
    for flag in flags:
        key, kind, text = CONFIG_FLAGS[flag]
        text = with_config_default((helps or {}).get(flag, text), key)
        if kind == "switch":
            parser.add_argument(flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(flag, type=kind, help=text)


def config_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The config keys set by the CONFIG_FLAGS a command took, and the flag that set each (for
    messages), then those of --set, which win."""
    from ..config import parse_set

    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for flag, (key, _, _) in CONFIG_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            overrides[key], origins[key] = value, flag
    if "trainer.devices" in overrides:  # "2" -> 2; "0,1" stays a device list for Lightning
        devices = overrides["trainer.devices"]
        overrides["trainer.devices"] = int(devices) if devices.isdigit() else devices
    from_set = parse_set(getattr(args, "set", None) or [])
    overrides.update(from_set)
    origins.update({key: "--set" for key in from_set})
    return overrides, origins


def add_command(sub: Subcommands, name: str, handler: Handler, help: str, description: str | None = None
                ) -> argparse.ArgumentParser:
    """A subcommand `name` whose arguments go to `handler`; its --help shows each flag's default."""
    parser = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                            formatter_class=HelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def add_model_flags(parser: argparse.ArgumentParser, what: str = "which model") -> None:
    """--model, --config and --set: a model and its full config (see config.load_config)."""
    parser.add_argument("--model", type=_model_flag, default="cnn", metavar="|".join([*model_names(), "module:Class"]),
                        help=f"{what}: {', '.join(model_names())}, or a {CLASS_PATH_HINT}")
    parser.add_argument("--config", default=None, metavar="FILE|NAME",
                        help="YAML config file, or a shipped config's name such as cnn-fashion "
                             "(default: the shipped configs/<model>.yaml; for a module:Class, the code's defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set model.dropout=0.1 (repeatable)")


def _model_flag(text: str) -> str:
    """--model's value, if it is a model's name or of the form module:Class (imported later)."""
    try:
        return check_model_name(text, "--model")
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_checkpoint_flag(parser: argparse.ArgumentParser, what: str = "a .ckpt file written by train.py",
                        required: bool = True, models: tuple[str, ...] = ("dense", "cnn"),
                        flag: str = "--checkpoint") -> None:
    """A flag naming a checkpoint of one of `models`; 'last' names the newest such run's
    last.ckpt under --logdir (added here too), resolved by resolve_checkpoint_flags."""
    parser.add_argument(flag, required=required, metavar="PATH|last",
                        help=f"{what}; 'last': the newest {' or '.join(models)} run's last.ckpt under --logdir")
    if "--logdir" not in parser._option_string_actions:
        parser.add_argument("--logdir", default="runs", help="where train.py wrote its runs (for 'last')")
    models_of = dict(parser.get_default("checkpoint_models") or {})
    models_of[flag.removeprefix("--").replace("-", "_")] = models
    parser.set_defaults(checkpoint_models=models_of)


def resolve_checkpoint_flags(args: argparse.Namespace) -> None:
    """Replace each checkpoint flag given as 'last' with the path it names (see add_checkpoint_flag)."""
    from ..runs import newest_last_checkpoint

    for dest, models in (getattr(args, "checkpoint_models", None) or {}).items():
        if getattr(args, dest) == "last":
            setattr(args, dest, str(newest_last_checkpoint(args.logdir, models, f"--{dest.replace('_', '-')} last")))


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
