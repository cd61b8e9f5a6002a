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
    from lightning.pytorch.utilities import rank_zero_only

    from .checkpoints import run_dir_of
    from .config import load_config, parse_set
    from .training import format_results, keep_freed_memory, train

    keep_freed_memory()  # before the data and the networks take their memory
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
    if rank_zero_only.rank == 0:  # under DDP every process runs this; one reports
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


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="draw digits from a GAN checkpoint (picture, .npy or .pt)",
        description="Draw new digits with a trained GAN's averaged (EMA) generator. Needs only the "
                    "checkpoint; runs on the CPU. .png/.jpg save a grid, .npy/.pt the raw images "
                    "in [-1, 1]: [NUM, 1, 28, 28], or [NUM, STEPS, 1, 28, 28] with --interpolate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .ckpt file of `train --model gan`")
    p.add_argument("--num", type=int, default=64, help="digits to draw (rows with --interpolate)")
    p.add_argument("--out", default="generated.png", help="output file: .png, .jpg, .npy or .pt")
    p.add_argument("--digit", type=int, help="conditional GAN: the digit to draw; without it, 0-9 in turn")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise: same seed, same digits")
    p.add_argument("--interpolate", type=int, metavar="STEPS",
                   help="instead draw NUM rows of STEPS images, each a walk between two random noise vectors")
    p.add_argument("--no-ema", action="store_true", help="use the last generator, not its moving average")
    p.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    import torch

    from .generate import check_output, interpolation, load_gan, save_images

    out = check_output(args.out)  # before the slow part
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}.")
    gan = load_gan(args.checkpoint)
    if args.digit is not None and not gan.hparams.conditional:
        raise UserError(f"--digit {args.digit}: {args.checkpoint} is an unconditional GAN, which cannot "
                        "draw a chosen digit; leave out --digit, or train with --set model.conditional=true.")
    seed = torch.Generator().manual_seed(args.seed)
    if args.interpolate is not None:
        images = interpolation(gan, args.num, args.interpolate, args.digit, seed, not args.no_ema)
        nrow = args.interpolate
    else:
        images = gan.sample(args.num, args.digit, seed, use_ema=not args.no_ema)
        # a conditional grid without --digit gets one column per class
        nrow = gan.hparams.num_classes if gan.hparams.conditional and args.digit is None else 8
    save_images(images, out, nrow)
    print(f"{out}: {len(images.reshape(-1, 28 * 28))} digits, tensor shape {list(images.shape)}")
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="sample-quality numbers of a GAN, judged by a trained classifier",
        description="Score generated digits with a classifier checkpoint trained by mnist-pl (the "
                    "evaluator): classifier (Inception) score, Frechet distance to real test digits, "
                    "class fractions, and for a conditional GAN the share classified as asked. The "
                    "first line is the noise floor: real test digits against real training digits.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--evaluator", required=True, help="classifier .ckpt of `train --model cnn`")
    p.add_argument("--data-dir", required=True, help="folder with the four IDX files (real digits)")
    p.add_argument("--checkpoint", help="GAN .ckpt to score (without it, only the noise floor)")
    p.add_argument("--num", type=int, default=1000, help="samples (and real digits) to score")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of the real-digit draw")
    p.add_argument("--no-ema", action="store_true", help="score the last generator, not its moving average")
    p.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    import torch

    from .generate import load_gan
    from .quality import Evaluator, noise_floor, real_images, sample_quality

    gan = load_gan(args.checkpoint) if args.checkpoint else None
    evaluator = Evaluator.from_checkpoint(args.evaluator)
    rows = [("real test vs train", noise_floor(evaluator, args.data_dir, args.num, args.seed))]
    if gan is not None:
        test, _ = real_images(args.data_dir, "test", args.num, args.seed)
        images = gan.sample(args.num, generator=torch.Generator().manual_seed(args.seed), use_ema=not args.no_ema)
        rows.append(("generated" + (" (no EMA)" if args.no_ema else ""),
                     sample_quality(evaluator, images, real=test, labels=gan.make_labels(args.num))))
    print(f"{'':<20}{'score':>8}{'frechet':>9}{'min class':>11}{'accuracy':>10}  class fractions 0-9")
    for name, q in rows:
        accuracy = q.get("conditional_accuracy")
        print(f"{name:<20}{q['classifier_score']:>8.3f}{q['frechet_distance']:>9.3f}{q['min_class_fraction']:>11.3f}"
              f"{'-' if accuracy is None else f'{accuracy:.3f}':>10}  {' '.join(f'{f:.3f}' for f in q['class_fractions'])}")
    return 0


from .inspect_cli import INSPECT_COMMANDS  # noqa: E402  (after the helpers it may share)

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train, _add_download, _add_generate, _add_score,
                                                             *INSPECT_COMMANDS]


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
