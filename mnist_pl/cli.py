"""`python -m mnist_pl COMMAND` (and `mnist-pl`, and train.py): argument parsing and commands.

A mistake the user can fix (a UserError, or a Lightning misconfiguration) is printed as one
line on stderr and exits with status 2; a traceback means a bug in mnist-pl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import UserError

EXIT_USER_ERROR = 2


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .config import MODELS

    p = sub.add_parser(
        "train", help="train a model, test it and save checkpoints and a TensorBoard run",
        description="Train dense, cnn or gan on MNIST-style data. Settings come from the code's "
                    "defaults, then --config, then the flags below, then --set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=list(MODELS), default="cnn", help="which model to train")
    p.add_argument("--config", default=None, help="YAML config (default: configs/<model>.yaml)")
    p.add_argument("--dataset", help="mnist, fashion-mnist or kmnist (data.dataset)")
    p.add_argument("--data-dir", help="folder with the four IDX files, or where to download (data.data_dir)")
    p.add_argument("--batch-size", type=int, help="training batch size (data.batch_size)")
    p.add_argument("--lr", type=float, help="learning rate (model.lr)")
    p.add_argument("--max-epochs", type=int, help="epochs to train (trainer.max_epochs)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (trainer.accelerator)")
    p.add_argument("--devices", help="number of devices, or a list such as 0,1 (trainer.devices)")
    p.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed ... (trainer.precision)")
    p.add_argument("--seed", type=int, help="seed for weights, shuffling and augmentation")
    p.add_argument("--logdir", help="where run directories are made (default: runs)")
    p.add_argument("--strategy", help="auto, ddp, ddp_spawn ... (trainer.strategy)")
    p.add_argument("--num-nodes", type=int, help="machines to train on with DDP (trainer.num_nodes)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms: with --seed, the same run gives the same weights")
    p.add_argument("--resume", metavar="PATH|last",
                   help="continue a run from a checkpoint; 'last' is the newest run's last.ckpt "
                        "under --logdir. Its run's config.yaml is the default --config")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the networks (slow start, faster steps on a GPU)")
    p.add_argument("--profile", action="store_true", default=None,
                   help="time each part of training with Lightning's simple profiler (fit-profile.txt)")
    p.add_argument("--fast-dev-run", action="store_true",
                   help="run one batch of each stage to check that everything works; saves nothing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.dropout=0.1 (repeatable)")
    p.set_defaults(handler=_train)


FLAG_KEYS = {"dataset": "data.dataset", "data_dir": "data.data_dir", "batch_size": "data.batch_size",
             "lr": "model.lr", "max_epochs": "trainer.max_epochs", "accelerator": "trainer.accelerator",
             "devices": "trainer.devices", "precision": "trainer.precision", "seed": "seed",
             "logdir": "logdir", "compile": "compile", "profile": "profile",
             "strategy": "trainer.strategy", "num_nodes": "trainer.num_nodes",
             "deterministic": "trainer.deterministic"}


def _train(args: argparse.Namespace) -> int:
    from .checkpoints import run_dir_of
    from .config import load_config, parse_set
    from .training import format_results, train

    overrides: dict[str, Any] = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items()
                                 if getattr(args, flag) is not None}
    if args.fast_dev_run:
        overrides["trainer.fast_dev_run"] = True
    if "trainer.devices" in overrides:  # "2" -> 2; "0,1" stays a device list for Lightning
        devices = overrides["trainer.devices"]
        overrides["trainer.devices"] = int(devices) if devices.isdigit() else devices
    overrides.update(parse_set(args.set))
    config_path, resume = args.config, None
    if args.resume:
        resume = _resume_path(args, overrides)
        run_dir = run_dir_of(resume)
        # the run's own config, if the run is of this model (else the mismatch is reported later)
        if config_path is None and run_dir is not None and run_dir.parent.name == args.model:
            config_path = run_dir / "config.yaml"
    config = load_config(args.model, config_path, overrides)
    results = train(args.model, config, resume=resume)
    print(format_results(results))
    return 0


def _resume_path(args: argparse.Namespace, overrides: dict[str, Any]) -> Path:

    from .checkpoints import find_last_checkpoint
    from .config import load_config

    if args.resume != "last":
        return Path(args.resume)
    logdir = overrides.get("logdir") or load_config(args.model, args.config)["logdir"]
    return find_last_checkpoint(logdir, args.model)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download a data set (with torchvision's checksums)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist or kmnist")
    p.add_argument("--data-dir", default="data", help="where to put it")
    p.set_defaults(handler=_download)


def _download(args: argparse.Namespace) -> int:
    from .data import locate_data

    print(f"{args.dataset}: IDX files in {locate_data(args.dataset, args.data_dir, download=True)}")
    return 0


from .inspect_cli import INSPECT_COMMANDS  # noqa: E402  (after the helpers it may share)

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train, _add_download, *INSPECT_COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-pl", description="MNIST with PyTorch Lightning: "
                                     "dense, CNN and GAN models, with TensorBoard logging.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 on success, 2 for a user mistake)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, MisconfigurationException) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are kept in the run directory.", file=sys.stderr)
        return 130
