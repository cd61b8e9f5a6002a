"""Commands that take trained models out of training: demo (a web page) and export (ONNX, TorchScript).

The handlers import torch and Gradio only when they run.
"""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..outputs import output_file
from .flags import Subcommands, add_checkpoint_flag, add_command


def add_commands(sub: Subcommands) -> None:
    p = add_command(
        sub, "demo", _demo, help="a local web page: draw a digit for a classifier, ask a GAN for digits",
        description="Serve a web page on this machine: draw a digit with the mouse or a finger and see "
                    "what the classifier reads (probabilities and the 28x28 image it sees), and draw "
                    "digits and latent walks from a GAN. Works offline: nothing is loaded from the "
                    "internet, no analytics, no share link.")
    add_checkpoint_flag(p, what="a dense or cnn .ckpt written by train.py", required=False, flag="--classifier")
    add_checkpoint_flag(p, what="a gan .ckpt written by train.py", required=False, models=("gan",), flag="--gan")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network interface)")
    p.add_argument("--port", type=int, default=7860, help="TCP port to listen on")

    p = add_command(
        sub, "export", _export, help="write a model as ONNX or TorchScript, to run without mnist-pl",
        description="Export a checkpoint for use outside mnist-pl, any batch size. A classifier takes "
                    "raw uint8 images [N, 28, 28] (0-255, light digit on black, as MNIST) and returns "
                    "the probabilities [N, 10], its training normalisation built in. A GAN exports its "
                    "EMA generator: noise [N, latent_dim] (and, if conditional, digit [N] int64) -> "
                    "images [N, 1, 28, 28] in [0, 1]. The file's metadata says so too.")
    add_checkpoint_flag(p, what="a dense, cnn or gan .ckpt written by train.py", models=("dense", "cnn", "gan"))
    p.add_argument("--format", choices=["onnx", "torchscript"],
                   help="file format (default: from --out's suffix, .onnx or .pt)")
    p.add_argument("--out", required=True, help="file to write, e.g. cnn.onnx or cnn.pt")


def _demo(args: argparse.Namespace) -> int:
    if not args.classifier and not args.gan:
        raise UserError("give --classifier CKPT and/or --gan CKPT; train them with `python train.py "
                        "--model cnn` and `python train.py --model gan` (each prints its 'Best checkpoint').")
    from ..checkpoints import load_gan
    from ..demo import DemoClassifier, build_app, check_port, serve

    check_port(args.host, args.port)
    classifier = DemoClassifier.from_checkpoint(args.classifier) if args.classifier else None
    gan = load_gan(args.gan, purpose="demo --gan") if args.gan else None
    try:
        serve(build_app(classifier, gan), args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..export import export_checkpoint

    exported = export_checkpoint(args.checkpoint, output_file(args.out, "--out"), args.format)
    print(f"{args.out}: {exported.metadata['model']} from {args.checkpoint}")
    for key, value in exported.metadata.items():
        if key.startswith(("input.", "output.")):
            print(f"  {key}: {value}")
    return 0

