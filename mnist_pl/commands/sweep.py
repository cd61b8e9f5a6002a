"""`sweep`: search config values with Optuna, each trial an ordinary training run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .flags import Subcommands, add_command, add_config_flags, add_model_flags, config_overrides

# the train flags a sweep takes (the others, such as --lr, are what a space searches)
SWEEP_FLAGS = ["--dataset", "--data-dir", "--max-epochs", "--accelerator", "--devices", "--precision", "--seed",
               "--logdir"]


def at_least_one(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def add_commands(sub: Subcommands) -> None:
    from ..registry import SPACE_DIR

    spaces = ", ".join(sorted(p.stem for p in SPACE_DIR.glob("*.yaml")))
    p = add_command(sub, "sweep", _sweep, help="search config values with Optuna: many training runs, pruned, resumable",
                    description="Search config values (a space of ranges and choices) with Optuna: each trial "
                                "is a training run under LOGDIR/sweeps/STUDY/, judged by its best validation "
                                "value, weak ones stopped early. Run the same command again to continue a "
                                "sweep (interrupted trials continue from their checkpoints); run it on several "
                                "machines with one --storage to share the trials. See docs/sweeps.md.")
    add_model_flags(p, what="which model to tune")
    p.add_argument("--space", metavar="FILE|NAME",
                   help=f"the search space: a YAML file of config keys, each a range or choices, or a shipped "
                        f"space's name ({spaces}) (default: the --model's shipped space)")
    p.add_argument("--trials", type=at_least_one, default=20,
                   help="finished trials wanted in the study, counting every worker's")
    p.add_argument("--workers", type=at_least_one, default=1,
                   help="worker processes on this machine, the cores shared out between them")
    p.add_argument("--study", help="the study's name, also its folder LOGDIR/sweeps/STUDY (default: the space's name)")
    p.add_argument("--storage", metavar="URL",
                   help="where the study is kept: postgresql://USER@HOST:PORT/DATABASE to share it between "
                        "machines (default: a SQLite file in the study's folder, shared by this machine's workers)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                   help="stop weak trials early: median (below the median of earlier trials at the same "
                        "epoch), hyperband, or none")
    p.add_argument("--metric", help="the validation metric to optimise, best value of a run "
                                    "(default: the model's checkpoint metric, e.g. val/acc)")
    p.add_argument("--mode", choices=("max", "min"),
                   help="whether a higher or a lower --metric is better (default: the model's rule for its "
                        "own metric; min for losses and distances, else max)")
    add_config_flags(p, SWEEP_FLAGS, helps={
        "--max-epochs": "epochs of each trial (trainer.max_epochs)", "--devices": "devices of each trial (trainer.devices)",
        "--seed": "seed of every trial's weights, shuffling and augmentation",
        "--logdir": "the sweep's folder is LOGDIR/sweeps/STUDY"})


def _sweep(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..environment import keep_freed_memory
    from ..errors import UserError
    from ..registry import model_class
    from ..space import load_space, shipped_space_names
    from ..sweep import SweepSettings, default_mode, run_sweep, storage_url
    from ..sweep_report import report_sweep

    keep_freed_memory()
    overrides, origins = config_overrides(args)
    overrides.setdefault("trainer.enable_model_summary", False)  # a summary table a trial tells nothing new
    config = load_config(args.model, args.config, overrides, origins)
    if args.space is None and args.model not in shipped_space_names():
        raise UserError(f"--model {args.model} has no shipped search space; give --space FILE, a YAML file of "
                        "its config keys, each a {low, high} range or a list of choices (see docs/sweeps.md).")
    space = load_space(args.model, args.space or args.model, args.config, overrides, origins)
    metric = args.metric or model_class(args.model).checkpoint_monitor
    if metric is None:
        raise UserError(f"--model {args.model} has no validation metric of its own to optimise; give --metric, "
                        "e.g. --metric quality/frechet_distance with --set quality.evaluator_checkpoint=CNN.ckpt "
                        "(a trained CNN scores the samples each epoch).")
    study = args.study or space.name
    if not study or "/" in study or study.startswith("."):
        raise UserError(f"--study {study!r}: a study's name is also its folder's; use letters, digits, - and _.")
    study_dir = Path(config["logdir"]) / "sweeps" / study
    settings = SweepSettings(model=args.model, config=config, space=space, study=study, study_dir=study_dir,
                             storage=storage_url(args.storage, study_dir), trials=args.trials, metric=metric,
                             mode=args.mode or default_mode(args.model, metric), pruner=args.pruner)
    print(f"Sweep {study!r}: {args.trials} trials of {args.model} over {', '.join(space.keys())} "
          f"(space {args.space or args.model}); {settings.metric} ({settings.mode}); study in "
          f"{study_dir / 'study.db' if args.storage is None else args.storage}", flush=True)
    try:
        study_of_sweep = run_sweep(settings, args.workers)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue the sweep; the interrupted trials "
              "continue from their last checkpoints.", file=sys.stderr)
        return 130
    print(report_sweep(study_of_sweep, settings))
    return 0
