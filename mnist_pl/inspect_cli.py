"""The commands that look inside data and models: show, summary, graph, evaluate, predict.

Each `_add_<name>` adds one subcommand to `python -m mnist_pl` (cli.COMMANDS lists them); the
handlers import torch, Lightning and matplotlib only when they run, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import UserError

Formatter = argparse.ArgumentDefaultsHelpFormatter


# ---------------------------------------------------------------------------- show


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show", help="save a grid of data set images with their labels as a picture",
        description="Draw images of one split of a data set with their labels: a grid of --num "
                    "images, or the single image --index, as the workshop shows x_train[0].",
        formatter_class=Formatter)
    p.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist or kmnist")
    p.add_argument("--data-dir", default="data", help="folder with the four IDX files, or where to download")
    p.add_argument("--split", choices=["train", "val", "test"], default="train",
                   help="which images (val is carved from train as in training: val_size 0.1, split_seed 0)")
    p.add_argument("--num", type=int, default=25, help="how many images in the grid")
    p.add_argument("--start", type=int, default=0, help="index of the grid's first image")
    p.add_argument("--random", action="store_true", help="pick the grid's images at random (see --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random")
    p.add_argument("--index", type=int, default=None, help="show only this image, large, with a pixel scale")
    p.add_argument("--out", default=None,
                   help="picture to write (.png, .jpg, .svg, .pdf); default: SPLIT_samples.png or SPLIT_INDEX.png")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")
    p.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    import torch

    from .data import MNISTDataModule
    from .plots import image_grid, save_figure, single_image

    dm = MNISTDataModule(dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download)
    dm.setup()
    data = {"train": dm.train_set, "val": dm.val_set, "test": dm.test_set}[args.split]
    count = len(data)
    if args.index is not None:
        if not 0 <= args.index < count:
            raise UserError(f"--index {args.index} is outside the {args.split} split, which has {count} "
                            f"images (0 to {count - 1}).")
        label = dm.classes[int(data.labels[args.index])]
        out = save_figure(single_image(data.images[args.index], f"{args.split}[{args.index}]: label {label}"),
                          args.out or f"{args.split}_{args.index}.png")
        print(f"{args.split}[{args.index}] of {args.dataset}: label {label} -> {out}")
        return 0
    if args.num < 1 or not 0 <= args.start < count:
        raise UserError(f"--num must be at least 1 and --start within 0-{count - 1} "
                        f"(the {args.split} split has {count} images).")
    if args.random:
        indices = torch.randperm(count, generator=torch.Generator().manual_seed(args.seed))[:args.num]
    else:
        indices = torch.arange(args.start, min(count, args.start + args.num))
    labels = [dm.classes[int(data.labels[i])] for i in indices]
    titles = [f"#{i}: {label}" for i, label in zip(indices.tolist(), labels)]
    out = save_figure(image_grid(data.images[indices], titles,
                                 f"{args.dataset} {args.split} split: {len(indices)} of {count} images"),
                      args.out or f"{args.split}_samples.png")
    print(f"{len(indices)} {args.split} images of {args.dataset}, labels {', '.join(labels)} -> {out}")
    return 0


# ---------------------------------------------------------------------------- summary and graph


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    from .config import MODELS

    p.add_argument("--model", choices=list(MODELS), default="cnn", help="which model")
    p.add_argument("--config", default=None, help="YAML config (default: configs/<model>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.channels=[16,32] (repeatable)")


def _build_model(args: argparse.Namespace) -> Any:
    from .config import MODELS, load_config, parse_set

    config = load_config(args.model, args.config, parse_set(args.set))
    return MODELS[args.model](**config["model"])


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="print the model's layers with output shapes and parameter counts",
        description="Lightning's model summary, with input and output shapes from a forward pass "
                    "on the model's example input. For the GAN, the pass runs the generator and "
                    "then the discriminator, so both show their shapes.",
        formatter_class=Formatter)
    _add_model_arguments(p)
    p.add_argument("--depth", type=int, default=-1, help="how deep to list nested layers; -1: all")
    p.set_defaults(handler=_summary)


def _summary(args: argparse.Namespace) -> int:
    from .architecture import summarize

    model = _build_model(args)
    example = model.example_input_array
    shapes = [tuple(t.shape) for t in (example if isinstance(example, tuple) else (example,))]
    print(f"{args.model}: {type(model).__name__}, input {', '.join(map(str, shapes))}")
    print(summarize(model, args.depth))
    return 0


def _add_graph(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph", help="draw the model's graph with the shapes between layers (torchview, graphviz)",
        description="Trace the real module on its example input with torchview and draw the "
                    "graph with graphviz's dot (install it: apt-get install graphviz). Training "
                    "also puts the graph in TensorBoard's Graphs tab.",
        formatter_class=Formatter)
    _add_model_arguments(p)
    p.add_argument("--out", default=None, help="picture to write: .png, .svg or .pdf (default: MODEL.png)")
    p.add_argument("--depth", type=int, default=3, help="how deep to expand nested modules")
    p.set_defaults(handler=_graph)


def _graph(args: argparse.Namespace) -> int:
    from .architecture import draw_graph

    out = draw_graph(_build_model(args), args.out or f"{args.model}.png", args.depth)
    print(f"graph of {args.model} -> {out}")
    return 0


# ---------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="test a classifier checkpoint: accuracy, precision, recall, pictures",
        description="Classify the test split with a dense or cnn checkpoint. Prints the accuracy "
                    "and per-class precision and recall, and writes metrics.json, "
                    "confusion_matrix.png and misclassified.png (the most confident mistakes). "
                    "The data set and its normalisation come from the checkpoint.",
        formatter_class=Formatter)
    p.add_argument("--checkpoint", required=True, help="a .ckpt file written by train.py")
    p.add_argument("--dataset", default=None, help="override the checkpoint's data set")
    p.add_argument("--data-dir", default=None, help="override the checkpoint's data folder")
    p.add_argument("--out-dir", default=None, help="where to write the files (default: evaluation/CHECKPOINT_NAME)")
    p.add_argument("--num-mistakes", type=int, default=36, help="images in misclassified.png")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the data is missing")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from .checkpoints import datamodule_for, load_classifier
    from .evaluation import evaluate, write_evaluation

    import torch

    if args.num_mistakes < 1:
        raise UserError(f"--num-mistakes must be at least 1, got {args.num_mistakes}.")
    model, checkpoint = load_classifier(args.checkpoint, purpose="evaluate")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    datamodule = datamodule_for(checkpoint, dataset=args.dataset, data_dir=args.data_dir,
                                download=False if args.no_download else None)
    result = evaluate(model, datamodule)
    out_dir = Path(args.out_dir or Path("evaluation") / Path(args.checkpoint).stem)
    files = write_evaluation(result, datamodule.test_set.images, out_dir, args.num_mistakes,
                             f"{datamodule.dataset} test set")
    print(f"Checkpoint: {args.checkpoint}\nData:       {datamodule.dataset} test split in {datamodule.data_dir}\n")
    print(result.report())
    print("")
    for name, path in files.items():
        print(f"{name + ':':<18}{path}")
    return 0


# ---------------------------------------------------------------------------- predict


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="classify your own PNG or JPEG images of digits",
        description="Classify image files (or folders of them) with a dense or cnn checkpoint. "
                    "Each image is prepared as MNIST's digits were: greyscale, inverted when dark "
                    "on light, cropped to the digit, fitted into 20x20 and centred by its centre "
                    "of mass in 28x28, then normalised as the model's training data.",
        formatter_class=Formatter)
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="PNG or JPEG files, or folders of them")
    p.add_argument("--checkpoint", required=True, help="a .ckpt file written by train.py")
    p.add_argument("--json", action="store_true", help="print one JSON list, for scripts")
    p.add_argument("--out", default=None,
                   help="also save a picture of each image next to what the model sees (28x28) and its prediction")
    p.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    import torch

    from .checkpoints import datamodule_for, load_classifier
    from .predict import predict_files

    model, checkpoint = load_classifier(args.checkpoint, purpose="predict")
    if "datamodule_hyper_parameters" not in checkpoint:
        print("note: the checkpoint does not say which data it was trained on; assuming MNIST's "
              "normalisation.", file=sys.stderr)
    datamodule = datamodule_for(checkpoint)
    mean, std = datamodule.mean_std
    predictions = predict_files(model, args.images, mean, std, datamodule.classes)
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
        from .plots import predictions_figure, save_figure

        out = save_figure(predictions_figure(
            [p.thumbnail for p in predictions], torch.stack([p.pixels for p in predictions]),
            [Path(p.file).name for p in predictions],
            [f"{p.name} ({p.probabilities[p.label]:.0%})" for p in predictions]), args.out)
        print(f"picture: {out}", file=sys.stderr if args.json else sys.stdout)
    return 0


INSPECT_COMMANDS = [_add_show, _add_summary, _add_graph, _add_evaluate, _add_predict]
