"""Commands that act on a trained GAN (its checkpoint): generate, score."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..outputs import output_file
from .flags import Subcommands, add_checkpoint_flag, add_command, add_data_flags


def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "generate", _generate, help="draw digits from a GAN checkpoint (picture, .npy or .pt)",
                    description="Draw new digits with a trained GAN's averaged (EMA) generator. Needs only the "
                                "checkpoint; runs on the CPU. .png/.jpg save a grid, .npy/.pt the raw images "
                                "in [-1, 1]: [NUM, 1, 28, 28], or [NUM, STEPS, 1, 28, 28] with --interpolate.")
    add_checkpoint_flag(p, what="a .ckpt file of `train --model gan`", models=("gan",))
    p.add_argument("--num", type=int, default=64, help="digits to draw (rows with --interpolate)")
    p.add_argument("--out", default="generated.png", help="output file: .png, .jpg, .npy or .pt")
    p.add_argument("--digit", type=int, help="conditional GAN: the digit to draw; without it, 0-9 in turn")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise: same seed, same digits")
    p.add_argument("--interpolate", type=int, metavar="STEPS",
                   help="instead draw NUM rows of STEPS images, each a walk between two random noise vectors")
    p.add_argument("--no-ema", action="store_true", help="use the last generator, not its moving average")

    p = add_command(sub, "score", _score, help="sample-quality numbers of a GAN, judged by a trained classifier",
                    description="Score generated digits with a classifier checkpoint trained by mnist-pl (the "
                                "evaluator): classifier (Inception) score, Frechet distance to real test digits, "
                                "class fractions, and for a conditional GAN the share classified as asked. The "
                                "first line is the noise floor: real test digits against real training digits.")
    add_checkpoint_flag(p, what="classifier .ckpt of `train --model cnn`", flag="--evaluator")
    add_data_flags(p, dataset=None, data_dir=None,
                   dataset_help="data set of the real digits (default: the evaluator's, from its checkpoint)",
                   data_dir_help="folder with its four IDX files (default: the evaluator's data folder); "
                                 "never downloads")
    add_checkpoint_flag(p, what="GAN .ckpt to score (without it, only the noise floor)", required=False,
                        models=("gan",))
    p.add_argument("--num", type=int, default=1000, help="samples (and real digits) to score")
    p.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0], metavar="SEED",
                   help="seeds of the noise and of the real-digit draw; several give each number's mean "
                        "and (min-max)")
    p.add_argument("--no-ema", action="store_true", help="score the last generator, not its moving average")


def _generate(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import load_gan
    from ..generate import check_output, interpolation, sample_layout, save_images

    out = output_file(check_output(args.out), "--out")  # before the slow part
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}.")
    gan = load_gan(args.checkpoint)
    if args.digit is not None and not gan.hparams.conditional:
        raise UserError(f"--digit {args.digit}: {args.checkpoint} is an unconditional GAN, which cannot "
                        "draw a chosen digit; leave out --digit, or train with --set model.conditional=true.")
    seed = torch.Generator().manual_seed(args.seed)
    if args.interpolate is not None:
        images = interpolation(gan, args.num, args.interpolate, args.digit, seed, not args.no_ema)
        grid, nrow = images, args.interpolate
    else:
        images = gan.sample(args.num, args.digit, seed, use_ema=not args.no_ema)
        grid, nrow = sample_layout(gan, images, args.digit)  # arrays keep the drawn order
    save_images(grid if out.suffix.lower() in (".png", ".jpg") else images, out, nrow)
    print(f"{out}: {len(images.reshape(-1, 28 * 28))} digits, tensor shape {list(images.shape)}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import datamodule_for, load_evaluator, load_gan, read_checkpoint
    from ..quality import format_scores, score_over_seeds

    gan = load_gan(args.checkpoint) if args.checkpoint else None
    evaluator = load_evaluator(args.evaluator)
    # the real digits: the evaluator's data set (or --dataset), split as the evaluator's training split it
    real = datamodule_for(read_checkpoint(args.evaluator), dataset=args.dataset, data_dir=args.data_dir,
                          download=False)

    def draw(num: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert gan is not None  # draw is passed on only with a GAN
        images = gan.sample(num, generator=torch.Generator().manual_seed(seed), use_ema=not args.no_ema)
        return images, gan.make_labels(num)

    scores = score_over_seeds(evaluator, real, args.seeds, args.num, draw if gan else None,
                              name="generated" + (" (no EMA)" if args.no_ema else ""))
    print(format_scores(scores, args.seeds))
    return 0
