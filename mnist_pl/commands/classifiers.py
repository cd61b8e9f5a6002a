"""Commands that act on a trained classifier (dense or cnn checkpoint): evaluate, predict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from ..outputs import output_file, output_folder
from .flags import Subcommands, add_checkpoint_flag, add_command, add_data_flags, add_no_download_flag


def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "evaluate", _evaluate,
                    help="test a classifier checkpoint: accuracy, precision, recall, pictures",
                    description="Classify the test split with a dense or cnn checkpoint. Prints the accuracy "
                                "and per-class precision and recall, and writes metrics.json, "
                                "confusion_matrix.png and misclassified.png (the most confident mistakes). "
                                "The data set and its normalisation come from the checkpoint.")
    add_checkpoint_flag(p)
    add_data_flags(p, dataset=None, data_dir=None, dataset_help="override the checkpoint's data set",
                   data_dir_help="override the checkpoint's data folder")
    p.add_argument("--out-dir", default=None, help="where to write the files (default: evaluation/CHECKPOINT_NAME)")
    p.add_argument("--num-mistakes", type=int, default=36, help="images in misclassified.png")
    add_no_download_flag(p)

    p = add_command(sub, "predict", _predict, help="classify your own PNG or JPEG images of digits",
                    description="Classify image files (or folders of them) with a dense or cnn checkpoint. "
                                "Each image is prepared as MNIST's digits were: greyscale, inverted when dark "
                                "on light, cropped to the digit, fitted into 20x20 and centred by its centre "
                                "of mass in 28x28, then normalised as the model's training data.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="PNG or JPEG files, or folders of them")
    add_checkpoint_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON list, for scripts")
    p.add_argument("--out", default=None,
                   help="also save a picture of each image next to what the model sees (28x28) and its prediction")


def percent(probability: float) -> str:
    """A probability as a percentage that never rounds up to a certainty it is not (99.6% stays 99.6%)."""
    for digits in range(4):
        text = f"{probability:.{digits}%}"
        if not 0 < probability < 1 or float(text[:-1]) not in (0.0, 100.0):
            break
    return text


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import datamodule_for, load_classifier
    from ..evaluation import evaluate, write_evaluation

    if args.num_mistakes < 1:
        raise UserError(f"--num-mistakes must be at least 1, got {args.num_mistakes}.")
    out_dir = output_folder(args.out_dir or Path("evaluation") / Path(args.checkpoint).stem, "--out-dir")
    model, checkpoint = load_classifier(args.checkpoint, purpose="evaluate")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    datamodule = datamodule_for(checkpoint, dataset=args.dataset, data_dir=args.data_dir,
                                download=False if args.no_download else None)
    result = evaluate(model, datamodule)
    files = write_evaluation(result, datamodule.split("test").images, out_dir, args.num_mistakes,
                             f"{datamodule.dataset} test set")
    print(f"Checkpoint: {args.checkpoint}\nData:       {datamodule.dataset} test split in {datamodule.data_dir}\n")
    print(result.report())
    print("")
    for name, path in files.items():
        print(f"{name + ':':<18}{path}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import datamodule_for, load_classifier
    from ..predict import predict_files

    if args.out:
        output_file(args.out, "--out")
    model, checkpoint = load_classifier(args.checkpoint, purpose="predict")
    if "datamodule_hyper_parameters" not in checkpoint:
        print("note: the checkpoint does not say which data it was trained on; assuming MNIST's "
              "normalisation.", file=sys.stderr)
    datamodule = datamodule_for(checkpoint)
    predictions = predict_files(model, args.images, datamodule.normalization, datamodule.classes)
    if args.json:
        print(json.dumps([p.as_dict() for p in predictions], indent=2))
    else:
        width = max(len(p.file) for p in predictions)
        header = "".join(f"{c[:6]:>7}" for c in datamodule.classes)
        print(f"{'image':<{width}}  {'class':>6} {'prob':>6}  |{header}")
        for p in predictions:
            probs = "".join(f"{q:>7.3f}" for q in p.probabilities)
            print(f"{p.file:<{width}}  {p.name[:6]:>6} {p.probabilities[p.label]:>6.1%}  |{probs}")
    if args.out:
        from ..plots import predictions_figure, save_figure

        out = save_figure(predictions_figure(
            [p.thumbnail for p in predictions], torch.stack([p.pixels for p in predictions]),
            [Path(p.file).name for p in predictions],
            [f"{p.name} ({percent(p.probabilities[p.label])})" for p in predictions]), args.out)
        print(f"picture: {out}", file=sys.stderr if args.json else sys.stdout)
    return 0
