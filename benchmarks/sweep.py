"""Sweep figures: a model's shipped space (the CNN's) on the real-MNIST subset, one worker and two.

    python benchmarks/sweep.py [--model cnn] [--data-dir ../shared/data/mnist-subset] [--trials 12] [--max-epochs 3]

Runs, each as a user would (`python -m mnist_pl ...`, fresh folders):
1. the model's default config for --max-epochs (the same seed as the trials): its best validation accuracy;
2. `sweep --model MODEL --trials N --max-epochs E` with one worker: wall time, best trial;
3. the same sweep with `--workers 2`: wall time, and its ratio to one worker's;
4. equal work: --equal-trials trials of the default config each (a space of one choice, no
   pruning), one worker and two, and their ratio.
Parts 2 and 3 do not train the same trials: the sampler's later choices follow the trials that
finished first, and the pruner stops different ones, so their ratio mixes the speed of the
workers with the amount of work. Part 4 keeps the work equal, for the speed alone.
The overhead per trial is the sweep's worker time (wall time x workers) minus the trials' own
training runs (results.json's "seconds", which include their test), over the trials. The load
average is printed before and after each part: on a shared machine, timings follow it.
Prints the figures (and the one-worker sweep's table), and writes them as JSON (--json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mnist_pl(*args: str, cwd: Path) -> tuple[float, str]:
    """Run `python -m mnist_pl ARGS` in `cwd`; its wall time and output."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mnist_pl", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = []
    for line in proc.stdout:  # each trial's line as it ends, for a long run
        lines.append(line)
        if re.match(r"(trial \d|\[worker)", line):
            print(f"  {time.perf_counter() - started:6.0f} s  {line.rstrip()}", flush=True)
    seconds = time.perf_counter() - started
    if proc.wait():
        raise SystemExit(f"mnist_pl {' '.join(args)} failed (exit status {proc.returncode})")
    return seconds, "".join(lines)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def trial_seconds(study_dir: Path) -> list[float]:
    return [json.loads(p.read_text())["seconds"] for p in study_dir.glob("trial_*/*/version_*/results.json")]


def run_sweep(workers: int, args: argparse.Namespace, folder: Path, trials: int, *extra: str) -> dict:
    before = load()
    folder.mkdir(parents=True, exist_ok=True)
    wall, out = mnist_pl("sweep", "--model", args.model, "--trials", str(trials), "--max-epochs", str(args.max_epochs),
                         "--data-dir", str(args.data_dir), "--seed", str(args.seed), "--logdir", str(folder),
                         "--workers", str(workers), "--accelerator", "cpu", *extra, cwd=folder)
    study = folder / "sweeps" / ("fixed" if extra else args.model)
    seconds = trial_seconds(study)
    best = next(line for line in out.splitlines() if line.startswith("Best:"))
    return {"workers": workers, "wall_s": round(wall, 1), "trials_train_s": round(sum(seconds), 1),
            "runs": len(seconds), "overhead_per_trial_s": round((wall * workers - sum(seconds)) / trials, 1),
            "best": best, "load_before": before, "load_after": load(), "output": out}


def equal_work(args: argparse.Namespace, folder: Path) -> dict:
    """One worker and two, each finishing --equal-trials trials of the default config."""
    folder.mkdir(parents=True, exist_ok=True)
    space = folder / "fixed.yaml"
    lr = subprocess.run([sys.executable, "-c", f"import mnist_pl; print(mnist_pl.load_config({args.model!r})['model']['lr'])"],
                        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    space.write_text(f"model.lr: [{lr.stdout.strip()}]  # the default: every trial trains the same config\n")
    figures = {}
    for workers in (1, 2):
        run = run_sweep(workers, args, folder / f"workers_{workers}", args.equal_trials, "--space", str(space),
                        "--pruner", "none", "--study", "fixed")
        figures[f"workers_{workers}"] = {k: v for k, v in run.items() if k not in ("output", "best")}
        print(f"equal work, {workers} worker(s): {run['wall_s']} s wall for {args.equal_trials} trials, trials' own "
              f"runs {run['trials_train_s']} s, overhead {run['overhead_per_trial_s']} s a trial "
              f"(load {run['load_before']} -> {run['load_after']})", flush=True)
    figures["two_over_one"] = round(figures["workers_2"]["wall_s"] / figures["workers_1"]["wall_s"], 2)
    print(f"equal work: two workers take {figures['two_over_one']} of one worker's wall time", flush=True)
    return figures


def search(args: argparse.Namespace, folder: Path, figures: dict) -> None:
    """Parts 1 to 3: the default config, then the shipped space's sweep with one worker and two."""
    before = load()
    wall, _ = mnist_pl("train", "--model", args.model, "--max-epochs", str(args.max_epochs), "--data-dir",
                       str(args.data_dir), "--seed", str(args.seed), "--logdir", str(folder / "default"),
                       "--accelerator", "cpu", cwd=folder)
    results = json.loads((folder / "default" / args.model / "version_0" / "results.json").read_text())
    figures["default_config"] = {"best_val_acc": results["best_validation"]["value"], "wall_s": round(wall, 1),
                                 "load_before": before, "load_after": load()}
    print(f"default {args.model} config, {args.max_epochs} epochs: best val/acc {results['best_validation']['value']:.4f} "
          f"({wall:.0f} s; load {before} -> {load()})", flush=True)
    one = run_sweep(1, args, folder / "one", args.trials)
    figures["one_worker"] = {k: v for k, v in one.items() if k != "output"}
    print(one["output"])
    print(f"one worker: {one['wall_s']} s wall, trials' own runs {one['trials_train_s']} s, overhead "
          f"{one['overhead_per_trial_s']} s a trial (load {one['load_before']} -> {one['load_after']})", flush=True)
    if not args.skip_two:
        two = run_sweep(2, args, folder / "two", args.trials)
        figures["two_workers"] = {k: v for k, v in two.items() if k != "output"}
        figures["two_over_one"] = round(two["wall_s"] / one["wall_s"], 2)
        print(two["output"])
        print(f"two workers: {two['wall_s']} s wall ({figures['two_over_one']} of one worker's), trials' own "
              f"runs {two['trials_train_s']} s, overhead {two['overhead_per_trial_s']} s a trial "
              f"(load {two['load_before']} -> {two['load_after']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", help="a shipped model with a model.lr (cnn, dense)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist-subset")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-two", action="store_true", help="one worker only (parts 3 and 4 left out)")
    parser.add_argument("--equal-trials", type=int, default=6, help="trials of part 4 (0: leave it out)")
    parser.add_argument("--only-equal", action="store_true", help="part 4 alone")
    parser.add_argument("--keep", type=Path, help="keep the runs, studies and pictures in this (new) folder")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    figures: dict = {"cpus": os.cpu_count()}
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            folder = args.keep.resolve()
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sweep-bench-")))
        if not args.only_equal:
            search(args, folder, figures)
        if args.equal_trials and not args.skip_two:
            figures["equal_work"] = equal_work(args, folder / "equal")
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
