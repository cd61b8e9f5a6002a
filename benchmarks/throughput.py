"""Training throughput of mnist-pl against a bare PyTorch loop and the usual torchvision pipeline.

For each model (dense, cnn, gan) three paths train the same network, with the same optimiser,
schedule, augmentation, batch size and training images, for a warm-up epoch and then several
timed epochs:

  mnist-pl     its MNISTDataModule, its LightningModule and the Trainer that train.py builds
               (validation and checkpoints switched off: this measures training);
  bare         a hand-written loop over the same in-memory uint8 tensor: randperm, index,
               normalise, step, and (classifiers) the epoch's loss and accuracy sums that
               mnist-pl keeps too. The reference;
  torchvision  torchvision.datasets.MNIST with per-image PIL ToTensor + Normalize through a
               DataLoader with worker processes, then the same loop as `bare`;
  graphed      (CUDA only) the bare loop with its whole step (batch cutting, augmentation,
               forward, backward, optimiser step, sums) captured once as a CUDA graph and replayed:
               the practical ceiling for networks this small, which the others are reported against.

Each path runs in its own process, so that peak memory is its own, and the three processes take
turns in slices of about half a second (A B C, B C A, ...; a slice also ends at each epoch start),
their clocks stopped while they wait: a slow spell of a shared machine then falls on every path
alike instead of on whichever ran at the time. Every path's training runs on the same CPU(s).
An epoch is timed from its start to the point where the next one would start, so the cost of an
epoch boundary is in the figures; the boundary itself (last step of one epoch to the first batch
of the next) is reported too.
Last, the two data paths run alone, without a network, to show what feeding costs.

    python benchmarks/throughput.py --data-dir ../shared/data/mnist-subset
    python benchmarks/throughput.py --data-dir /usr/share/datasets/fashion-mnist --dataset fashion-mnist
    python benchmarks/throughput.py --accelerator gpu --data-dir ../shared/data/mnist-subset
    python benchmarks/throughput.py --accelerator gpu --compile --json results.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = ("mnist-pl", "bare", "torchvision")
GRAPHED = "graphed"  # the fourth path, on CUDA only
# timed epochs unless --epochs says otherwise: the dense network's take under a second here,
# too few samples for a median at 3
TIMED_EPOCHS = {"dense": 10, "cnn": 3, "gan": 3}


# ------------------------------------------------------------------------ one path, one process


def _setup(args):
    """The config, LightningModule and DataModule of one model, as train.py would make them."""
    import lightning as L

    from mnist_pl import MODELS, MNISTDataModule, load_config

    overrides = {"data.data_dir": args.data_dir, "data.dataset": args.dataset,
                 "trainer.accelerator": args.accelerator, "trainer.precision": args.precision}
    if args.batch_size:
        overrides["data.batch_size"] = args.batch_size
    config = load_config(args.model, overrides=overrides)
    config["compile"] = args.compile
    L.seed_everything(0, verbose=False)
    model = MODELS[args.model](**config["model"])
    datamodule = MNISTDataModule(**config["data"])
    datamodule.setup("fit")
    return config, model, datamodule


def _device(accelerator: str):
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _autocast(device, precision: str, cache_enabled: bool = True):
    import torch

    # (a CUDA graph capture needs cache_enabled=False: cached casts would outlive the capture)
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16, cache_enabled=cache_enabled)
    return contextlib.nullcontext()


def run_mnist_pl(args) -> tuple[EpochTimer, int]:
    """Epoch and boundary times of mnist-pl's own training path, and the images per epoch."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from mnist_pl.callbacks import CompiledTraining
    from mnist_pl.training import build_trainer

    config, model, datamodule = _setup(args)
    timer = EpochTimer(args.turn_fds, _device(args.accelerator), args.slice_seconds)

    class EpochClock(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            timer.epoch_start()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                timer.first_batch()
            else:
                timer.batch_start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx + 1 == trainer.num_training_batches:
                timer.last_step_done()

        def on_train_end(self, trainer, pl_module):
            timer.finish()

    # training only: no validation and no checkpoints (the bare loop writes none, and last.ckpt,
    # written and fsync'd at every epoch's end, would time the disk)
    trainer_args = {**config["trainer"], "max_epochs": args.warmup + args.epochs, "enable_checkpointing": False,
                    "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_model_summary": False}
    with tempfile.TemporaryDirectory() as logdir:
        logger = TensorBoardLogger(logdir, name=args.model, default_hp_metric=False)
        # as train.py --compile: CUDA graphs ("reduce-overhead") on a GPU, full batches only
        compiled = [CompiledTraining(True)] if args.compile else []
        trainer = build_trainer(model, logger, extra_callbacks=[EpochClock(), *compiled], **trainer_args)
        trainer.fit(model, datamodule=datamodule)
    trained = len(datamodule.train_set)
    if datamodule.drop_last:  # (compiled: full batches only)
        trained -= trained % datamodule.batch_size
    return timer, trained


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


class EpochTimer:
    """Times a worker's epochs and epoch boundaries, taking turns with the other paths' workers.

    A worker trains for a slice (about `slice_s` seconds, and always to the next epoch start),
    reports to the driver and waits for its next turn; its clock stops while it waits, so an
    epoch's time is the sum of its slices. Slices much shorter than an epoch spread a slow spell
    of a shared machine over every path alike. When the last epoch is over it reports "f"inished.
    An epoch boundary is the time from an epoch's last step to the next epoch's first batch,
    less the wait: checkpoints, logging, a new shuffle, a new loader iterator.
    """

    def __init__(self, turn_fds: str, device, slice_s: float):
        self.go, self.done = map(int, turn_fds.split(","))
        self.device, self.slice_s = device, slice_s
        self.seconds: list[float] = []  # of each finished epoch
        self.boundaries: list[float] = []
        self._epoch: float | None = None  # the running epoch's seconds so far (None: setup)
        self._resumed = self._last_step_done = 0.0
        self._boundary_before_wait = 0.0

    def _pause(self) -> float:
        _sync(self.device)
        now = time.perf_counter()
        if self._epoch is not None:
            self._epoch += now - self._resumed
        return now

    def _take_turns(self, report: bytes = b"r") -> None:
        os.write(self.done, report)
        if report == b"r":
            os.read(self.go, 1)
            self._resumed = time.perf_counter()

    def _end_epoch(self) -> None:
        now = self._pause()
        if self._epoch is not None:
            self.seconds.append(self._epoch)
            self._boundary_before_wait = now - self._last_step_done

    def epoch_start(self) -> None:
        self._end_epoch()
        self._take_turns()
        self._epoch = 0.0

    def first_batch(self) -> None:
        """The epoch's first batch is ready to train on."""
        if self.seconds:
            self.boundaries.append(self._boundary_before_wait + time.perf_counter() - self._resumed)

    def batch_start(self) -> None:
        """Before a batch other than an epoch's first: hand over the turn once the slice is up."""
        if time.perf_counter() - self._resumed >= self.slice_s:
            self._pause()
            self._take_turns()

    def last_step_done(self) -> None:
        _sync(self.device)
        self._last_step_done = time.perf_counter()

    def finish(self) -> None:
        self._end_epoch()
        self._take_turns(b"f")


def _hand_written_steps(args, model, device, capturable: bool = False):
    """One training step of `model`'s networks with its optimiser(s), written without Lightning.

    `capturable`: optimisers and autocast fit for capturing the step as a CUDA graph.
    """
    import torch
    import torch.nn.functional as F

    from mnist_pl import GAN
    from mnist_pl.augment import random_affine
    from mnist_pl.optim import build_optimizer

    hp = model.hparams
    autocast = lambda: _autocast(device, args.precision, cache_enabled=not capturable)  # noqa: E731

    def optimizer(*build_args, **build_kwargs):
        made = build_optimizer(*build_args, **build_kwargs)
        for group in made.param_groups:
            if capturable and "capturable" in group:  # what the constructor's capturable=True sets
                group["capturable"] = True  # (step counts on the device, no host reads in step())
        return made

    if isinstance(model, GAN):
        model.to(device)
        gen, disc = model.generator.train(), model.discriminator.train()
        opt_g = optimizer("adam", gen.parameters(), hp.lr, betas=hp.betas)
        opt_d = optimizer("adam", disc.parameters(), hp.lr, betas=hp.betas)
        totals = torch.zeros(4, device=device)

        def step(real, real_labels):
            n = real.shape[0]
            noise = torch.randn(n, hp.latent_dim, device=device)
            fake_labels = torch.randint(0, hp.num_classes, (n,), device=device) if hp.conditional else None
            real_labels = real_labels if hp.conditional else None
            with autocast():
                fake = gen(noise, fake_labels)
                logits_real, logits_fake = disc(real, real_labels), disc(fake.detach(), fake_labels)
                loss_d = (F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, hp.real_label))
                          + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            disc.requires_grad_(False)  # the generator's step needs no gradients of D's weights
            with autocast():
                logits_gen = disc(fake, fake_labels)
                loss_g = F.binary_cross_entropy_with_logits(logits_gen, torch.ones_like(logits_gen))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            disc.requires_grad_(True)
            model.update_ema()  # the moving average of the generator's weights: plain torch, no Lightning
            with torch.no_grad():  # the epoch's sums of the figures mnist-pl reports, as for classifiers
                totals.add_(torch.stack([loss_d, loss_g, logits_real.sigmoid().mean(), logits_fake.sigmoid().mean()]) * n)
        return step, None

    net = model.net.to(device).train()
    average = model.net_ema.to(device) if model.net_ema is not None else None
    if average is not None:
        from mnist_pl.ema import update_moving_average

        steps = model.ema_steps.to(device)
    net_optimizer = optimizer(hp.optimizer, net.parameters(), hp.lr, hp.weight_decay, hp.momentum)
    totals = torch.zeros(2, device=device)

    def step(images, labels):
        if hp.augment:
            images = random_affine(images)
        with autocast():
            logits = net(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=hp.label_smoothing)
        net_optimizer.zero_grad()
        loss.backward()
        net_optimizer.step()
        if average is not None:  # the moving average of the weights (model.ema_decay), as mnist-pl keeps it
            update_moving_average(average, net, steps, hp.ema_decay)
        # the epoch's summed loss and correct predictions, which any loop that reports its training
        # loss and accuracy keeps, and mnist-pl keeps the same way
        with torch.no_grad():
            totals.add_(torch.stack([loss * len(labels), (logits.argmax(1) == labels).sum().to(loss.dtype)]))

    return step, net_optimizer


def _timed_epochs(args, step, scheduler, epoch_batches, device) -> EpochTimer:
    timer = EpochTimer(args.turn_fds, device, args.slice_seconds)
    for _ in range(args.warmup + args.epochs):
        timer.epoch_start()
        for index, (images, labels) in enumerate(epoch_batches()):
            if index == 0:
                timer.first_batch()
            else:
                timer.batch_start()
            step(images, labels)
        timer.last_step_done()
        if scheduler is not None and scheduler["interval"] == "epoch":
            scheduler["scheduler"].step()
    timer.finish()
    return timer


def run_loop(args) -> tuple[EpochTimer, int]:
    """Epoch and boundary times of the hand-written loop, fed from memory or by torchvision."""
    import torch

    from mnist_pl.optim import build_scheduler

    config, model, datamodule = _setup(args)
    device = _device(args.accelerator)
    step, optimizer = _hand_written_steps(args, model, device)
    data = datamodule.train_set
    batch = datamodule.batch_size
    n_batches = -(-len(data) // batch)
    hp = model.hparams
    scheduler = None
    if optimizer is not None:
        scheduler = build_scheduler(hp.scheduler, optimizer, n_batches * (args.warmup + args.epochs),
                                    hp.step_size, hp.gamma)
    step = _with_scheduler(step, scheduler)

    if args.path == "bare":
        images, labels = data.images.to(device), data.labels.to(device)
        scale, shift = 1 / (255 * data.normalization.std), data.normalization.mean / data.normalization.std

        def epoch_batches():
            order = torch.randperm(len(labels), device=device)
            for start in range(0, len(labels), batch):
                index = order[start:start + batch]
                yield images[index].float().mul_(scale).sub_(shift), labels[index]
    else:
        loader = _torchvision_loader(args, datamodule, device)

        def epoch_batches():
            for images, labels in loader:
                yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    return _timed_epochs(args, step, scheduler, epoch_batches, device), len(data)


def run_graphed(args) -> tuple[EpochTimer, int]:
    """Epoch and boundary times of the bare loop with each whole step replayed as a CUDA graph.

    The step (cutting the batch from the data on the device, normalising, augmenting, forward,
    backward, the optimiser step(s), the GAN's moving average, the epoch's sums) is captured once
    per batch size, reading its images through a static index buffer; each step then copies the
    batch's indices into that buffer and replays the graph. Random draws (augmentation, dropout,
    the GAN's noise) are fresh at every replay. Learning-rate and momentum schedules are left out:
    the graph holds the optimiser's settings as they were at capture, so this is a ceiling for the
    throughput of these networks, not a way to train them.
    """
    import torch

    config, model, datamodule = _setup(args)
    device = _device(args.accelerator)
    step, _ = _hand_written_steps(args, model, device, capturable=True)
    data = datamodule.train_set
    images, labels = data.images.to(device), data.labels.to(device)
    scale, shift = 1 / (255 * data.normalization.std), data.normalization.mean / data.normalization.std
    batch = datamodule.batch_size

    def whole_step(index):
        step(images.index_select(0, index).float().mul_(scale).sub_(shift), labels.index_select(0, index))

    replays = {}  # batch size -> (static index buffer, replay)

    def graphed_step(index, _):
        if len(index) not in replays:
            static = torch.arange(len(index), device=device)
            replays[len(index)] = static, capture(whole_step, static, device)
        static, replay = replays[len(index)]
        static.copy_(index)
        replay()

    def epoch_batches():
        order = torch.randperm(len(labels), device=device)
        for start in range(0, len(labels), batch):
            yield order[start:start + batch], None

    return _timed_epochs(args, graphed_step, None, epoch_batches, device), len(data)


def capture(whole_step, static_index, device, warmup_steps: int = 3):
    """`whole_step(static_index)` captured as a CUDA graph: returns the graph's replay.

    The warm-up steps run first on a side stream, as torch.cuda.graphs requires, so that lazily
    made state (optimiser moments and step counts, cuBLAS workspaces) exists before the capture;
    they train on the buffer's initial indices. Each step's zero_grad(set_to_none) leaves the
    gradients to be allocated in the graph's own memory, where each replay rewrites them. On a
    CPU (for tests of this benchmark only) the step runs as it is.
    """
    import torch

    if device.type != "cuda":
        return lambda: whole_step(static_index)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup_steps):
            whole_step(static_index)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        whole_step(static_index)
    return graph.replay


def _with_scheduler(step, scheduler):
    def stepped(images, labels):
        step(images, labels)
        if scheduler is not None and scheduler["interval"] == "step":
            scheduler["scheduler"].step()
    return stepped


def _torchvision_loader(args, datamodule, device):
    """torchvision.datasets.MNIST over the same training images, decoded per image through PIL."""
    import torch
    import torchvision
    from torchvision import transforms

    root = Path(tempfile.mkdtemp())
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    # torchvision reads uncompressed IDX files from root/MNIST/raw; write the training split there
    # (the test files it also insists on are the same tensors: never read in this benchmark)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", datamodule.train_set.images.squeeze(1))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", datamodule.train_set.labels.to(torch.uint8))
    mean, std = datamodule.mean_std
    dataset = torchvision.datasets.MNIST(str(root), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((mean,), (std,))]))
    shutil.rmtree(root, ignore_errors=True)  # the data set holds its tensors in memory now
    return torch.utils.data.DataLoader(
        dataset, batch_size=datamodule.batch_size, shuffle=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, pin_memory=device.type == "cuda",
        worker_init_fn=_unpin if ALL_CPUS else None)


# the CPUs this benchmark may use, read before any pinning
ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _training_cpus() -> set[int] | None:
    """The CPUs every path's training process runs on (the first torch.get_num_threads()).

    On this project's shared 2-core machine one core is measurably slower than the other (about
    2.5%), and a process that happened to stay on it moved the ratios by as much as the overhead
    being measured. With OMP_NUM_THREADS=1 the training gets one core; the torchvision path's
    worker processes may run anywhere, as they would for a user.
    """
    import torch

    return set(ALL_CPUS[:torch.get_num_threads()]) if ALL_CPUS else None  # None: no pinning here


def _unpin(worker_id: int) -> None:
    """worker_init_fn: a DataLoader worker inherits its parent's pinning; undo it."""
    os.sched_setaffinity(0, ALL_CPUS)


def _write_idx(path: Path, tensor) -> None:
    header = bytes([0, 0, 8, tensor.dim()]) + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    path.write_bytes(header + tensor.contiguous().numpy().tobytes())


def _set_malloc(args) -> bool:
    """Every path (and the torchvision workers, forked from it) gets the malloc train.py sets."""
    from mnist_pl.environment import keep_freed_memory

    return not args.default_malloc and keep_freed_memory()


def worker(args) -> None:
    import torch

    cpus = _training_cpus()
    if cpus:
        os.sched_setaffinity(0, cpus)
    _set_malloc(args)
    torch.manual_seed(0)
    run = {"mnist-pl": run_mnist_pl, GRAPHED: run_graphed}.get(args.path, run_loop)
    timer, n_images = run(args)
    device = _device(args.accelerator)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    if args.path == "torchvision" and args.workers:
        peak_rss += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({"epoch_seconds": timer.seconds[args.warmup:], "images": n_images,
                      "boundary_ms": 1e3 * statistics.median(timer.boundaries) if timer.boundaries else None,
                      "peak_rss_mib": round(peak_rss), "peak_gpu_mib": peak_gpu and round(peak_gpu)}))


# ------------------------------------------------------------------------ the driver


def measure(args, model: str, paths: tuple[str, ...]) -> dict[str, dict]:
    """Run the `paths` of `model` in their own processes, taking turns slice by slice."""
    workers, logs, failed = {}, {}, set()
    try:
        for path in paths:
            go_read, go_write = os.pipe()
            done_read, done_write = os.pipe()
            logs[path] = (tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+"))  # never a full pipe
            command = [sys.executable, __file__, "--worker", path, "--models", model,
                       "--turn-fds", f"{go_read},{done_write}", *args.passthrough]
            proc = subprocess.Popen(command, stdout=logs[path][0], stderr=logs[path][1], text=True,
                                    pass_fds=(go_read, done_write))
            os.close(go_read)
            os.close(done_write)
            workers[path] = (proc, go_write, done_read)

        def turn(path: str) -> bytes:
            os.write(workers[path][1], b"g")
            return wait_done(path)

        def wait_done(path: str) -> bytes:
            report = os.read(workers[path][2], 1)
            if report not in (b"r", b"f"):  # end of file: the worker died
                workers[path][0].wait()
                logs[path][1].seek(0)
                error = logs[path][1].read()[-3000:]
                if path != GRAPHED:
                    raise SystemExit(f"{model}/{path} failed:\n{error}")
                # the ceiling is a reference: without it the other paths' figures still stand
                print(f"{model}/{path} failed (its columns show 0):\n{error}", file=sys.stderr)
                failed.add(path)
                return b"f"
            return report

        for path in paths:  # the setups run side by side, untimed
            wait_done(path)
        training, rounds = [p for p in paths if p not in failed], 0
        while training:  # a slice each, who goes first rotating round by round
            for path in training[rounds % len(training):] + training[:rounds % len(training)]:
                if turn(path) == b"f":
                    training.remove(path)
            rounds += 1
        results = {}
        for path in paths:
            workers[path][0].wait()
            if path in failed:
                results[path] = {"images_per_s": 0.0, "failed": True}
                continue
            logs[path][0].seek(0)
            results[path] = json.loads(logs[path][0].read().strip().splitlines()[-1])
            results[path]["images_per_s"] = results[path]["images"] / statistics.median(results[path]["epoch_seconds"])
        return results
    finally:
        for proc, go_write, done_read in workers.values():
            if proc.poll() is None:
                proc.kill()
            os.close(go_write)
            os.close(done_read)
        for files in logs.values():
            for file in files:
                file.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/mnist-subset", help="folder with the IDX files")
    parser.add_argument("--dataset", default="mnist", help="normalisation statistics to use")
    parser.add_argument("--models", nargs="+", default=list(TIMED_EPOCHS), choices=list(TIMED_EPOCHS))
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's config")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"timed epochs, the median reported (default: {TIMED_EPOCHS})")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--slice-seconds", type=float, default=0.5,
                        help="the paths take turns in slices of about this long")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="torchvision DataLoader workers")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (mnist-pl path)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is, for every path, instead of setting it as train.py does")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--worker", choices=(*PATHS, GRAPHED), dest="path", help=argparse.SUPPRESS)
    parser.add_argument("--turn-fds", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        args.model = args.models[0]
        args.epochs = args.epochs or TIMED_EPOCHS[args.model]
        return worker(args)
    args.passthrough = [a for a in sys.argv[1:] if a not in args.models and a != "--models"]

    import torch

    cuda = _device(args.accelerator).type == "cuda"
    card = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {card}")
    print(f"data: {args.data_dir}; precision {args.precision}; {args.warmup} warm-up + "
          f"{args.epochs or TIMED_EPOCHS} timed epochs each (median), paths taking turns every {args.slice_seconds:g} s; torchvision workers: {args.workers}")
    cpus = _training_cpus()
    print(f"every path trains on CPU {','.join(map(str, sorted(cpus)))}; torchvision's workers on any"
          if cpus else "no CPU pinning on this system")
    malloc_kept = _set_malloc(args)  # here too: the data paths run alone in this process at the end
    print("malloc: " + ("keeps freed memory (keep_freed_memory(), as train.py)" if malloc_kept
                        else "the C library's default") + " in every path\n")
    paths = (*PATHS, GRAPHED) if cuda else PATHS
    if not cuda:
        print(f"the {GRAPHED} path (the step as one CUDA graph) needs CUDA: skipped on this machine")
    header = f"{'model':<6} {'mnist-pl img/s':>15} {'bare img/s':>11} {'torchvision img/s':>18} " \
             + (f"{'graphed img/s':>14} " if cuda else "") \
             + f"{'pl/bare':>8} {'pl/tv':>6} " + (f"{'pl/graphed':>11} " if cuda else "") \
             + f"{'peak MiB (pl/bare/tv)':>22} {'boundary ms (pl/bare/tv)':>25}"
    print(header)
    print("-" * len(header))
    table = {"card": card, "torch": torch.__version__, "precision": args.precision, "compile": args.compile,
             "data_dir": args.data_dir, "models": {}}
    for model in args.models:
        r = measure(args, model, paths)
        rate = {p: r[p]["images_per_s"] for p in paths}
        mem_key = "peak_gpu_mib" if r["bare"]["peak_gpu_mib"] else "peak_rss_mib"
        mem = "/".join(str(r[p][mem_key]) for p in PATHS)
        # (a run of one epoch has no boundary)
        boundary = "/".join("-" if r[p]["boundary_ms"] is None else f"{r[p]['boundary_ms']:.1f}" for p in PATHS)
        print(f"{model:<6} {rate['mnist-pl']:>15,.0f} {rate['bare']:>11,.0f} {rate['torchvision']:>18,.0f} "
              + (f"{rate[GRAPHED]:>14,.0f} " if cuda else "")
              + f"{rate['mnist-pl'] / rate['bare']:>8.3f} {rate['mnist-pl'] / rate['torchvision']:>6.2f} "
              + (f"{rate['mnist-pl'] / max(rate[GRAPHED], 1e-9):>11.3f} " if cuda else "")
              + f"{mem:>22} {boundary:>25}", flush=True)
        table["models"][model] = r
    table["data_path_images_per_s"] = data_path_only(args)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


def data_path_only(args) -> dict[str, float]:
    """Images per second of the two data paths alone (no network): what feeding costs.

    On a GPU each path delivers its batches there, as training gets them: mnist-pl's data module
    cuts them from the images it keeps on the device (as it does under a Trainer on a GPU),
    torchvision's loader decodes them on the CPU and each batch is copied over from pinned memory.
    The clock stops when the device has every batch.
    """
    import lightning as L
    import torch

    args.model = args.models[0]
    _, _, datamodule = _setup(args)
    device = _device(args.accelerator)
    if device.type == "cuda":  # the data where a Trainer on this device puts it
        datamodule.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False, enable_progress_bar=False,
                                       enable_model_summary=False)
        datamodule.setup("fit")
    loaders = {"mnist-pl": datamodule.train_dataloader(),
               "torchvision": _torchvision_loader(args, datamodule, device)}

    def epoch(loader) -> None:
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        _sync(device)

    rates = {}
    for name, loader in loaders.items():
        epoch(loader)  # warm-up: worker start-up, first iterator
        started = time.perf_counter()
        epochs = args.epochs or TIMED_EPOCHS[args.model]
        for _ in range(epochs):
            epoch(loader)
        rates[name] = epochs * len(datamodule.train_set) / (time.perf_counter() - started)
    where = f"to {torch.cuda.get_device_name()}" if device.type == "cuda" else "on the CPU"
    print(f"\ndata path alone ({args.model}'s batch size {datamodule.batch_size}, batches delivered {where}, no "
          f"network): mnist-pl {rates['mnist-pl']:,.0f} img/s, torchvision {rates['torchvision']:,.0f} img/s, "
          f"{rates['mnist-pl'] / rates['torchvision']:.1f}x")
    return rates


if __name__ == "__main__":
    main()
