"""Soak test of `--resume auto`: one training run SIGKILLed at many seeded random moments, each
time restarted with the same command, must end bit-identical to the same run never stopped.

    PYTHONPATH=. python benchmarks/soak.py                  # 20 kills of a small dense run
    PYTHONPATH=. python benchmarks/soak.py --kills 3 --model gan --devices 2

The moments fall inside a training step (between backward and the optimiser step), inside a
checkpoint write (half the file written), inside validation, right after a checkpoint was
written, and (the last, but for the GAN) inside the final test; each is drawn after the step the restarted run resumes
from (so that every restart reaches its kill) and within twice an even share of the steps left
(so that the kills fall all along the run). At the end: the final model, moving average,
optimisers, schedules and every process's random state torch.equal to the uninterrupted run's,
every TensorBoard scalar logged once at the uninterrupted run's steps with its values, the same
test metrics, and one more restart that finds the run finished and exits 0. It prints what it
checked and how long it took, and exits 1 if anything differs. Not a test: tests/test_soak.py
runs a 3-kill version.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Runs train.py in this process, SIGKILLing every process of the run (its own session) at the
# moment SOAK_KILL names: "step:S" inside training step S (counted from 1), "checkpoint:S" half
# way through the first checkpoint write at step S or later, "validation:S" inside the first
# validation batch after step S, "after-checkpoint:S" right after the first last.ckpt written
# at step S or later, "test:0" inside the test after training.
INJECT = """
import os, runpy, signal, sys
import lightning as L
import torch
import mnist_pl.checkpoints as checkpoints
import mnist_pl.training as training

kind, at = os.environ["SOAK_KILL"].split(":")
at = int(at)

def die():
    os.killpg(0, signal.SIGKILL)  # no cleanup, no flush: as if the machine went down

class Kill(L.Callback):
    def on_before_optimizer_step(self, trainer, *args):
        if kind == "step" and trainer.global_step + 1 == at:
            die()
    def on_validation_batch_start(self, trainer, *args):
        if kind == "validation" and not trainer.sanity_checking and trainer.global_step >= at:
            die()
    def on_test_batch_start(self, trainer, *args):
        if kind == "test":
            die()

save, torch_save = L.Trainer.save_checkpoint, torch.save

def save_then_die(trainer, filepath, *args, **kwargs):
    global torch_save
    if kind == "checkpoint" and trainer.global_step >= at and trainer.is_global_zero:
        def half_then_die(obj, file, *a, **k):
            file.write(b"PK\\x03\\x04" + bytes(4096))
            file.flush()
            die()
        checkpoints.torch.save = half_then_die
    save(trainer, filepath, *args, **kwargs)
    if kind == "after-checkpoint" and trainer.global_step >= at and str(filepath).endswith("last.ckpt"):
        die()

L.Trainer.save_checkpoint = save_then_die
build = training.build_trainer
training.build_trainer = lambda *a, extra_callbacks=None, **k: build(
    *a, extra_callbacks=[*(extra_callbacks or []), Kill()], **k)
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""

MODEL_ARGS = {
    "dense": ["--set", "model.hidden_sizes=[64]", "--set", "model.augment=true"],
    "cnn": ["--set", "model.channels=[4, 8]", "--set", "model.hidden_size=16", "--set", "model.ema_decay=0.9"],
    "gan": ["--set", "model.arch=fc", "--set", "model.generator_hidden=[32]",
            "--set", "model.discriminator_hidden=[32]"],
}
KINDS = ("step", "checkpoint", "validation", "after-checkpoint", "step")  # and the last kill: "test"


def write_idx(path: Path, data: Any) -> None:
    """A tensor of values 0-255 as a gzipped IDX file of unsigned bytes."""
    import torch

    header = bytes([0, 0, 0x08, data.dim()]) + b"".join(d.to_bytes(4, "big") for d in data.shape)
    path.write_bytes(gzip.compress(header + data.to(torch.uint8).contiguous().numpy().tobytes()))


def small_data(source: Path, folder: Path, n_train: int, n_test: int) -> Path:
    """The first images of the real-MNIST folder `source`, as an IDX folder of their own."""
    from mnist_pl.data import load_idx_folder

    tensors = load_idx_folder(source)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        key = "train" if split == "train" else "test"
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", tensors[f"{key}_images"][:n].reshape(-1, 28, 28))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", tensors[f"{key}_labels"][:n])
    return folder


def run(args: list[str], kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    if kill is None:
        command = [sys.executable, "train.py", *args]
    else:
        command, env["SOAK_KILL"] = [sys.executable, "-c", INJECT, *args], kill
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900,
                          start_new_session=True)


def checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"]) if path.is_file() else 0


def final_state(run_dir: Path) -> dict[str, Any]:
    import torch

    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return {key: checkpoint[key] for key in ("state_dict", "optimizer_states", "lr_schedulers", "global_step",
                                             "epoch", "mnist_pl_process_states") if key in checkpoint}


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two nested checkpoint values differ (tensors by torch.equal, dtype included)."""
    import torch

    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [where]
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return [where + " (keys)"]
        return [d for key in a for d in differences(a[key], b[key], f"{where}/{key}")]
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return [where + " (length)"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # its notes on the purged steps of each restart
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs before the run may finish")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--model", choices=sorted(MODEL_ARGS), default="dense")
    parser.add_argument("--devices", type=int, default=1, help="processes (DDP on the CPU when 2 or more)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=600, help="training images (a tenth validate)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist-subset"),
                        help="real MNIST IDX files to take the images from")
    parser.add_argument("--workdir", help="where to train (default: a temporary folder, removed after)")
    args = parser.parse_args()

    started = time.time()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="soak-"))
    data = small_data(Path(args.data_dir), workdir / "data", args.images, 64)
    command = ["--model", args.model, "--data-dir", str(data), "--max-epochs", str(args.epochs),
               "--batch-size", "32", "--accelerator", "cpu", "--seed", "7", *MODEL_ARGS[args.model],
               "--set", "checkpoint_every_n_steps=4", "--set", "trainer.log_every_n_steps=3"]
    if args.devices > 1:
        command += ["--devices", str(args.devices), "--strategy", "ddp"]
    print(f"soak: {args.model}, {args.devices} process(es), {args.epochs} epochs of {args.images * 9 // 10} "
          f"images, {args.kills} kills (seed {args.seed}), in {workdir}", flush=True)

    full = run([*command, "--logdir", str(workdir / "full")])
    if full.returncode != 0:
        print(full.stderr[-3000:])
        return 1
    expected_dir = workdir / "full" / args.model / "version_0"
    total = json.loads((expected_dir / "results.json").read_text())["global_step"]
    print(f"uninterrupted run: {total} steps in {time.time() - started:.0f} s", flush=True)

    restart = [*command, "--logdir", str(workdir / "soak"), "--resume", "auto"]
    run_dir = workdir / "soak" / args.model / "version_0"
    draw = random.Random(args.seed)
    # every kind of moment in turn, in a seeded order: each comes up whatever the seed
    order = [KINDS[i % len(KINDS)] for i in range(args.kills)]
    draw.shuffle(order)
    kinds: dict[str, int] = {}
    for kill in range(1, args.kills + 1):
        resumed_from = checkpoint_step(run_dir / "checkpoints" / "last.ckpt")
        # the last kill lets training end and falls in the final test (the GAN has none)
        if resumed_from >= total and args.model == "gan":
            print(f"kill {kill:2}: none, the run trained to its end and the GAN has no test to kill in")
            break
        kind = "test" if resumed_from >= total or (kill == args.kills and args.model != "gan") else order[kill - 1]
        # spread over what is left, so that the kills fall all along the run
        reach = max(1, 2 * (total - resumed_from) // (args.kills - kill + 1))
        at = 0 if kind == "test" else min(total, resumed_from + draw.randint(1, reach))
        proc = run(restart, f"{kind}:{at}")
        status = "killed" if proc.returncode == -signal.SIGKILL else f"exit status {proc.returncode} (not killed)"
        print(f"kill {kill:2}: restarted from step {resumed_from:3}, {kind} at step {at}: {status}", flush=True)
        if proc.returncode != -signal.SIGKILL:
            print(proc.stderr[-3000:])
            return 1
        kinds[kind] = kinds.get(kind, 0) + 1

    last = run(restart)
    again = run(restart)
    checks = {
        "the last restart finished the run": last.returncode == 0 and (run_dir / "results.json").is_file(),
        "one run directory": not (run_dir.parent / "version_1").exists(),
        "a further restart trains nothing and exits 0": again.returncode == 0 and "finished before" in again.stdout,
    }
    if checks["the last restart finished the run"]:
        state = differences(final_state(expected_dir), final_state(run_dir))
        logged, got = scalars(expected_dir), scalars(run_dir)
        expected_results = json.loads((expected_dir / "results.json").read_text())
        results = json.loads((run_dir / "results.json").read_text())
        checks.update({
            "final model, moving average, optimisers, schedules, random states torch.equal": not state,
            f"every TensorBoard scalar ({len(logged)} tags, {sum(map(len, logged.values()))} points) "
            "logged once, same steps and values": logged == got,
            "same test metrics": expected_results.get("test") == results.get("test"),
        })
        if state:
            print("differing:", ", ".join(state[:10]))
        if logged != got:
            print("differing tags:", ", ".join(tag for tag in logged.keys() | got.keys() if logged.get(tag) != got.get(tag)))
    else:
        print(last.stderr[-3000:])
    print(f"kills by moment: {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}")
    for what, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    print(f"soak: {'bit-identical' if all(checks.values()) else 'DIFFERENT'} after {sum(kinds.values())} kills, "
          f"{time.time() - started:.0f} s")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
