"""Sweep figures: the CNN's shipped space on the real-MNIST subset, one worker and two.

    python benchmarks/sweep.py [--data-dir ../shared/data/mnist-subset] [--trials 12] [--max-epochs 3]

Runs, each as a user would (`python -m mnist_pl ...`, fresh folders):
1. the default CNN config for --max-epochs (the same seed as the trials): its best validation accuracy;
2. `sweep --model cnn --trials N --max-epochs E` with one worker: wall time, best trial;
3. the same sweep with `--workers 2`: wall time, and its ratio to one worker's.
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
        if line.startswith(("trial ", "[worker")):
            print(f"  {time.perf_counter() - started:6.0f} s  {line.rstrip()}", flush=True)
    seconds = time.perf_counter() - started
    if proc.wait():
        raise SystemExit(f"mnist_pl {' '.join(args)} failed (exit status {proc.returncode})")
    return seconds, "".join(lines)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def trial_seconds(study_dir: Path) -> list[float]:
    return [json.loads(p.read_text())["seconds"] for p in study_dir.glob("trial_*/cnn/version_*/results.json")]


def run_sweep(workers: int, args: argparse.Namespace, folder: Path) -> dict:
    before = load()
    folder.mkdir(parents=True, exist_ok=True)
    wall, out = mnist_pl("sweep", "--model", "cnn", "--trials", str(args.trials), "--max-epochs", str(args.max_epochs),
                         "--data-dir", str(args.data_dir), "--seed", str(args.seed), "--logdir", str(folder),
                         "--workers", str(workers), "--accelerator", "cpu", cwd=folder)
    seconds = trial_seconds(folder / "sweeps" / "cnn")
    best = next(line for line in out.splitlines() if line.startswith("Best:"))
    return {"workers": workers, "wall_s": round(wall, 1), "trials_train_s": round(sum(seconds), 1),
            "runs": len(seconds), "overhead_per_trial_s": round((wall * workers - sum(seconds)) / args.trials, 1),
            "best": best, "load_before": before, "load_after": load(), "output": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist-subset")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-two", action="store_true", help="one worker only")
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
        before = load()
        wall, _ = mnist_pl("train", "--model", "cnn", "--max-epochs", str(args.max_epochs), "--data-dir",
                           str(args.data_dir), "--seed", str(args.seed), "--logdir", str(folder / "default"),
                           "--accelerator", "cpu", cwd=folder)
        results = json.loads((folder / "default" / "cnn" / "version_0" / "results.json").read_text())
        figures["default_config"] = {"best_val_acc": results["best_validation"]["value"], "wall_s": round(wall, 1),
                                     "load_before": before, "load_after": load()}
        print(f"default cnn config, {args.max_epochs} epochs: best val/acc {results['best_validation']['value']:.4f} "
              f"({wall:.0f} s; load {before} -> {load()})", flush=True)
        one = run_sweep(1, args, folder / "one")
        figures["one_worker"] = {k: v for k, v in one.items() if k != "output"}
        print(one["output"])
        print(f"one worker: {one['wall_s']} s wall, trials' own runs {one['trials_train_s']} s, overhead "
              f"{one['overhead_per_trial_s']} s a trial (load {one['load_before']} -> {one['load_after']})", flush=True)
        if not args.skip_two:
            two = run_sweep(2, args, folder / "two")
            figures["two_workers"] = {k: v for k, v in two.items() if k != "output"}
            figures["two_over_one"] = round(two["wall_s"] / one["wall_s"], 2)
            print(two["output"])
            print(f"two workers: {two['wall_s']} s wall ({figures['two_over_one']} of one worker's), trials' own "
                  f"runs {two['trials_train_s']} s, overhead {two['overhead_per_trial_s']} s a trial "
                  f"(load {two['load_before']} -> {two['load_after']})")
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
