"""`train`: train a model, test it and save checkpoints, a TensorBoard run and results.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..runs import RESULTS_FILE
from .flags import Subcommands, add_command, add_model_flags, with_config_default

# train's flags and the config key each sets (--set sets any key; it wins over these)
FLAG_KEYS = {"dataset": "data.dataset", "data_dir": "data.data_dir", "batch_size": "data.batch_size",
             "lr": "model.lr", "max_epochs": "trainer.max_epochs", "accelerator": "trainer.accelerator",
             "devices": "trainer.devices", "precision": "trainer.precision", "seed": "seed",
             "logdir": "logdir", "compile": "compile", "profile": "profile",
             "strategy": "trainer.strategy", "num_nodes": "trainer.num_nodes",
             "deterministic": "trainer.deterministic"}


def add_commands(sub: Subcommands) -> None:
    p = add_command(sub, "train", _train, help="train a model, test it and save checkpoints and a TensorBoard run",
                    description="Train dense, cnn, gan or a model of your own (--model module:Class) on MNIST-style data. Settings come from the code's "
                                "defaults, then --config, then the flags below, then --set.")
    add_model_flags(p, what="which model to train")
    p.add_argument("--dataset", help="mnist, fashion-mnist or kmnist (data.dataset)")
    p.add_argument("--data-dir", help="folder with the four IDX files, or where to download (data.data_dir)")
    p.add_argument("--batch-size", type=int, help="training batch size (data.batch_size)")
    p.add_argument("--lr", type=float, help="learning rate (model.lr)")
    p.add_argument("--max-epochs", type=int, help="epochs to train (trainer.max_epochs)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (trainer.accelerator)")
    p.add_argument("--devices", help="number of devices, or a list such as 0,1 (trainer.devices)")
    p.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed ... (trainer.precision)")
    p.add_argument("--seed", type=int, help="seed for weights, shuffling and augmentation")
    p.add_argument("--logdir", help="where run directories are made")
    p.add_argument("--strategy", help="auto, ddp, ddp_spawn ... (trainer.strategy; default: auto)")
    p.add_argument("--num-nodes", type=int, help="machines to train on with DDP (trainer.num_nodes; default: 1)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms: with --seed, the same run gives the same weights")
    p.add_argument("--resume", metavar="PATH|last|auto",
                   help="continue a run from a checkpoint; 'last' is the newest run's last.ckpt "
                        "under --logdir (its run's config.yaml is then the default --config); "
                        "'auto' continues this command's own run if it has one, else starts it, "
                        "and does nothing for a finished run: the same command, restarted by a "
                        "scheduler any number of times, ends as one uninterrupted run (docs/long-runs.md)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the networks: slow start, faster steps; on a GPU the networks run as CUDA graphs")
    p.add_argument("--profile", action="store_true", default=None,
                   help="time each part of training with Lightning's simple profiler (fit-profile.txt)")
    p.add_argument("--fast-dev-run", action="store_true",
                   help="run one batch of each stage to check that everything works; saves nothing")
    for action in p._actions:  # each flag's help ends with what the shipped configs set it to
        if action.dest in FLAG_KEYS:
            action.help = with_config_default(action.help or "", FLAG_KEYS[action.dest])


def _train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from ..runs import CONFIG_FILE, is_run_of, run_dir_of
    from ..config import load_config, parse_set
    from ..environment import keep_freed_memory
    from ..training import train

    keep_freed_memory()  # before the data and the networks take their memory
    overrides: dict[str, Any] = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items()
                                 if getattr(args, flag) is not None}
    if args.fast_dev_run:
        overrides["trainer.fast_dev_run"] = True
    if "trainer.devices" in overrides:  # "2" -> 2; "0,1" stays a device list for Lightning
        devices = overrides["trainer.devices"]
        overrides["trainer.devices"] = int(devices) if devices.isdigit() else devices
    origins = {key: "--" + flag.replace("_", "-") for flag, key in FLAG_KEYS.items() if key in overrides}
    origins["trainer.fast_dev_run"] = "--fast-dev-run"
    from_set = parse_set(args.set)
    overrides.update(from_set)
    origins.update({key: "--set" for key in from_set})
    config_path = args.config
    resume: str | Path | None = None
    if args.resume == "auto":
        resume = "auto"  # train() finds the run of this command's config
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
