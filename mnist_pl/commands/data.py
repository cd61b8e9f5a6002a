"""Commands that act on data sets: download, show."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..outputs import output_file
from .flags import Subcommands, add_command, add_data_flags, add_no_download_flag


def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "download", _download, help="download a data set (with torchvision's checksums)")
    add_data_flags(p, data_dir_help="where to put it")

    p = add_command(sub, "show", _show, help="save a grid of data set images with their labels as a picture",
                    description="Draw images of one split of a data set with their labels: a grid of --num "
                                "images, or the single image --index, as the workshop shows x_train[0].")
    add_data_flags(p)
    p.add_argument("--split", choices=["train", "val", "test"], default="train",
                   help="which images (val is carved from train as in training: val_size 0.1, split_seed 0)")
    p.add_argument("--num", type=int, default=25, help="how many images in the grid")
    p.add_argument("--start", type=int, default=0, help="index of the grid's first image")
    p.add_argument("--random", action="store_true", help="pick the grid's images at random (see --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random")
    p.add_argument("--index", type=int, default=None, help="show only this image, large, with a pixel scale")
    p.add_argument("--out", default=None,
                   help="picture to write (.png, .jpg, .svg, .pdf); default: SPLIT_samples.png or SPLIT_INDEX.png")
    add_no_download_flag(p)


def _download(args: argparse.Namespace) -> int:
    from ..data import locate_data

    print(f"{args.dataset}: IDX files in {locate_data(args.dataset, args.data_dir, download=True)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import torch

    from ..data import MNISTDataModule
    from ..plots import image_grid, save_figure, single_image

    if args.out:
        output_file(args.out, "--out")
    dm = MNISTDataModule(dataset=args.dataset, data_dir=args.data_dir, download=False if args.no_download else None)
    dm.setup()
    data = dm.split(args.split)
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
