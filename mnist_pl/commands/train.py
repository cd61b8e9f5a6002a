"""`train`: train a model, test it and save checkpoints, a TensorBoard run and results.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..runs import RESULTS_FILE, RESUME_AUTO
from .flags import Subcommands, add_command, add_config_flags, add_model_flags, config_overrides

def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "train", _train, help="train a model, test it and save checkpoints and a TensorBoard run",
                    description="Train dense, cnn, gan or a model of your own (--model module:Class) on MNIST-style data. Settings come from the code's "
                                "defaults, then --config, then the flags below, then --set.")
    add_model_flags(p, what="which model to train")
    add_config_flags(p, ["--dataset", "--data-dir", "--batch-size", "--lr", "--max-epochs", "--accelerator",
                         "--devices", "--precision", "--seed", "--logdir", "--strategy", "--num-nodes",
                         "--deterministic"])
    p.add_argument("--resume", metavar="PATH|last|auto",
                   help="continue a run from a checkpoint; 'last' is the newest run's last.ckpt "
                        "under --logdir (its run's config.yaml is then the default --config); "
                        "'auto' continues this command's own run if it has one, else starts it, "
                        "and does nothing for a finished run: the same command, restarted by a "
                        "scheduler any number of times, ends as one uninterrupted run (docs/long-runs.md)")
    add_config_flags(p, ["--compile", "--profile"])
    p.add_argument("--fast-dev-run", action="store_true",
                   help="run one batch of each stage to check that everything works; saves nothing")


def _train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from ..runs import CONFIG_FILE, is_run_of, run_dir_of
    from ..config import load_config
    from ..environment import keep_freed_memory
    from ..training import train

    keep_freed_memory()  # before the data and the networks take their memory
    overrides, origins = config_overrides(args)
    if args.fast_dev_run and "trainer.fast_dev_run" not in overrides:
        overrides["trainer.fast_dev_run"], origins["trainer.fast_dev_run"] = True, "--fast-dev-run"
    config_path = args.config
    resume: str | Path | None = None
    if args.resume == RESUME_AUTO:
        resume = RESUME_AUTO  # train() finds the run of this command's config
    elif args.resume:
        resume = _resume_path(args, overrides)
        run_dir = run_dir_of(resume)
        # the run's own config, if the run is of this model (else the mismatch is reported later)
        if config_path is None and run_dir is not None and is_run_of(run_dir, args.model):
            config_path = run_dir / CONFIG_FILE
    sources: dict[str, str] = {}
    config = load_config(args.model, config_path, overrides, origins, sources)
    results = train(args.model, config, resume=resume, sources=sources)
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # (set by Lightning) under DDP one process reports
        if results.get("finished_before"):
            print(f"This run finished before, nothing to train: {results['run_dir']} (its results below). "
                  "To train it again, start a new run: leave out --resume auto or use another --logdir.")
        print(format_results(results))
    return 0


def _resume_path(args: argparse.Namespace, overrides: dict[str, Any]) -> Path:
    from ..runs import find_last_checkpoint
    from ..config import load_config

    if args.resume != "last":
        return Path(args.resume)
    logdir = overrides.get("logdir") or load_config(args.model, args.config)["logdir"]
    return find_last_checkpoint(logdir, args.model)


def format_results(results: dict[str, Any]) -> str:
    """The summary printed at the end of a run."""
    epochs = f"{results['epochs']} epoch{'' if results['epochs'] == 1 else 's'}"
    lines = [f"Model:            {results['model']} on {results['dataset']} ({epochs}, "
             f"{results['global_step']} steps, {results['seconds']} s"
             + (f", {results['compile_seconds']} s of it compiling" if "compile_seconds" in results else "") + ")"]
    for key, value in results.get("test", {}).items():
        lines.append(f"{key + ':':<18}{value:.4f}")
    best = results.get("best_validation")
    if best and best["value"] is not None:
        lines.append(f"{'Best ' + best['metric'] + ':':<18}{best['value']:.4f} (epoch {best['epoch']})")
    if results.get("profile"):
        lines.append(f"Profile:          {results['profile']}")
    if results.get("samples"):
        lines.append(f"Generated digits: {results['samples']}")
    if results.get("quality"):
        lines.append("Sample quality:   " + ", ".join(f"{k} {v:.3f}" for k, v in results["quality"].items()
                                                      if not isinstance(v, list)))
    if results["best_checkpoint"] or results["run_dir"]:
        lines.append(f"Best checkpoint:  {results['best_checkpoint'] or '(none saved)'}")
    else:
        lines.append("Best checkpoint:  (none: fast_dev_run saves none)")
    if results["run_dir"]:
        lines.append(f"Run directory:    {results['run_dir']}")
        lines.append(f"Results:          {Path(results['run_dir']) / RESULTS_FILE}")
        lines.append(f"Watch it:         {results['tensorboard']}")
    return "\n".join(lines)
