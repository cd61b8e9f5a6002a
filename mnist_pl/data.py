"""MNIST-style data: IDX files read and checked, held in memory, served as normalised batches.

Torchvision downloads the files (with its checksums); this module reads them itself so that a
folder of IDX files from anywhere works the same way, and so that every split lives in memory
as one uint8 tensor from which whole batches are cut by indexing (no per-image PIL work).
"""

from __future__ import annotations

import difflib
import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Literal, Sequence

import lightning as L
import torch
import torchvision
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

from .errors import UserError
from .normalization import SYMMETRIC, Normalization
from .rules import Seed, at_least, between, check_arguments, did_you_mean

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes; last byte = number of dimensions


@dataclass(frozen=True)
class DatasetInfo:
    """A data set torchvision can download, and the statistics used to normalise it."""

    torchvision_class: type
    mean: float
    std: float
    classes: tuple[str, ...]


DatasetName = Literal["mnist", "fashion-mnist", "kmnist"]
# how images are scaled: "standard" (zero mean, unit variance) or "symmetric" ([-1, 1])
NormalizationKind = Literal["standard", "symmetric"]

DIGITS = tuple(str(d) for d in range(10))
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(torchvision.datasets.MNIST, 0.1307, 0.3081, DIGITS),
    "fashion-mnist": DatasetInfo(
        torchvision.datasets.FashionMNIST,
        0.2860,
        0.3530,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": DatasetInfo(
        torchvision.datasets.KMNIST,
        0.1918,
        0.3483,
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


class CorruptDataError(UserError):
    """An IDX file is truncated, has the wrong magic number, or does not match its partner."""


class DataNotFoundError(UserError):
    """The data is not on disk and could not be downloaded."""


# ---------------------------------------------------------------------------- IDX files


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Read one IDX file (plain or .gz) of unsigned bytes with `ndim` dimensions as a uint8 tensor."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise CorruptDataError(f"{path}: cannot be read or decompressed ({err}). "
                               "Delete it and download it again.") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDataError(f"{path}: only {len(raw)} bytes, too short for an IDX header. "
                               "The file is truncated: delete it and download it again.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_MAGIC[ndim]:
        raise CorruptDataError(
            f"{path}: magic number {magic:#010x}, expected {IDX_MAGIC[ndim]:#010x} for an IDX "
            f"file of {ndim}-dimensional unsigned bytes. Is this the right file?")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise CorruptDataError(
            f"{path}: {len(raw)} bytes, but its header {shape} promises {expected}. "
            "The file is truncated or damaged: delete it and download it again.")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def find_idx_files(folder: str | Path) -> dict[str, Path] | None:
    """The four standard IDX files in `folder` (each plain or .gz), or None if any is missing."""
    found = {}
    for key, name in IDX_FILES.items():
        for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def load_idx_folder(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read and cross-check the four IDX files of `folder`: images [N, 1, H, W], labels [N]."""
    files = find_idx_files(folder)
    if files is None:
        raise DataNotFoundError(f"{folder}: does not hold the four IDX files {list(IDX_FILES.values())}.")
    splits = {}
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"], 3)
        labels = read_idx(files[f"{split}_labels"], 1)
        if len(images) != len(labels):
            raise CorruptDataError(
                f"{files[f'{split}_labels']}: {len(labels)} labels for {len(images)} images in "
                f"{files[f'{split}_images']}. The two files do not belong together.")
        if len(labels) and int(labels.max()) > 9:
            raise CorruptDataError(f"{files[f'{split}_labels']}: label {int(labels.max())} "
                                   "is outside 0-9. Is this a label file?")
        splits[f"{split}_images"] = images.unsqueeze(1).contiguous()
        splits[f"{split}_labels"] = labels.long()
    return splits


DEFAULT_DATA_DIR = "data"  # downloads go here unless the user asks for another folder


def may_download(data_dir: str | Path, download: bool | None) -> bool:
    """Whether missing data may be downloaded into `data_dir`: as `download` says, and when it
    is None only into the default folder `data` (a mistyped --data-dir must not grow folders)."""
    return download if download is not None else Path(data_dir) == Path(DEFAULT_DATA_DIR)


def _what_is_missing(data_dir: Path, tv_raw: Path) -> str:
    """Why `data_dir` holds no data set, in a few words, with the sibling it may have meant."""
    if not data_dir.exists():
        parent = data_dir.parent
        siblings = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
        close = difflib.get_close_matches(data_dir.name, siblings, n=1, cutoff=0.6)
        return f"folder {data_dir} does not exist" + (f" (did you mean {parent / close[0]}?)" if close else "")
    if not data_dir.is_dir():
        return f"{data_dir} is a file, not a folder"
    present = [name for name in IDX_FILES.values()
               for folder in (data_dir, tv_raw) for suffix in ("", ".gz") if (folder / f"{name}{suffix}").is_file()]
    missing = [name for name in IDX_FILES.values() if name not in present]
    if present:
        return f"{data_dir} lacks {', '.join(missing)} (plain or .gz)"
    inside = [p for p in sorted(data_dir.iterdir()) if p.is_dir() and find_idx_files(p) is not None]
    return (f"{data_dir} holds none of the four IDX files ({', '.join(IDX_FILES.values())}, plain or .gz)"
            + (f" (did you mean {inside[0]}?)" if inside else ""))


def _download_reason(err: Exception) -> str:
    """The useful part of a failed download's message: torchvision's first line names the file
    and ends in a colon; the reason (no network, refused, checksum) is on the last line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    reason = lines[-1].strip("<>").removeprefix("urlopen error ")
    return reason if len(lines) == 1 else f"{lines[0].rstrip(':')}: {reason}"


def locate_data(dataset: str, data_dir: str | Path, download: bool | None = None) -> Path:
    """The folder holding `dataset`'s IDX files: `data_dir` itself, torchvision's layout under
    it, or, failing both and if `may_download`, a fresh torchvision download (checksummed) into
    `data_dir`. A failed download removes the folders it made."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}{did_you_mean(dataset, DATASETS)} (choose "
                        f"{', '.join(DATASETS)}), or give --data-dir a folder holding the four IDX files.")
    data_dir = Path(data_dir)
    tv_class = DATASETS[dataset].torchvision_class
    tv_raw = data_dir / tv_class.__name__ / "raw"
    for folder in (data_dir, tv_raw):
        if find_idx_files(folder) is not None:
            return folder
    how = f"python -m mnist_pl download --dataset {dataset} --data-dir {data_dir}"
    if not may_download(data_dir, download):
        raise DataNotFoundError(
            f"no {dataset} data: {_what_is_missing(data_dir, tv_raw)}. Give --data-dir the folder that "
            f"holds the four IDX files, or download {dataset} into {data_dir} with: {how}")
    made = [folder for folder in (tv_raw, *tv_raw.parents) if not folder.exists()]
    try:
        tv_class(str(data_dir), train=True, download=True)
        tv_class(str(data_dir), train=False, download=True)
    except Exception as err:  # network errors come in many types; all mean the same here
        if made:
            shutil.rmtree(made[-1], ignore_errors=True)  # only what this download made
        raise DataNotFoundError(
            f"{dataset} data not found in {data_dir}, and the download failed ({_download_reason(err)}). "
            f"Connect to the internet and run: {how}; or download on a machine with internet and "
            "copy the folder of the four IDX files here, then pass it as --data-dir.") from None
    return tv_raw


# ---------------------------------------------------------------------------- batches


class InMemoryImages(Dataset):
    """Images and labels held as tensors; a list of indices gives a whole normalised batch.

    `images` is uint8 [N, 1, H, W]. The DataLoader hands `__getitems__` one batch of indices, so
    a batch costs one indexing and one fused normalisation instead of N Python calls.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, normalization: Normalization):
        self.images, self.labels = images, labels
        self.normalization = normalization

    def __len__(self) -> int:
        return len(self.labels)

    def normalised_images(self) -> torch.Tensor:
        """Every image as the batches hold them (float, normalised), for whole-set work such as k-means."""
        return self.normalization.from_bytes(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.normalization.from_bytes(self.images[index]), self.labels[index]

    def __getitems__(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        if index.device != self.labels.device:  # a list (worker processes, DDP's evaluation shards)
            index = _to_device(index, self.labels.device)
        # index_select, not images[index]: an order of magnitude faster on a CPU
        return self.normalization.from_bytes(self.images.index_select(0, index)), self.labels.index_select(0, index)


def _batch_as_is(batch: Any) -> Any:
    """collate_fn for InMemoryImages: `__getitems__` already returns a stacked batch."""
    return batch


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The training images' order in `epoch` of a run seeded `seed`: the same on every device."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed + 1_000_003 * epoch))


class EpochShuffle(Sampler[int]):
    """A random order fixed by (seed, epoch), so that a resumed epoch replays it and skips ahead.

    Lightning calls `set_epoch` at each epoch start, as it does for a DistributedSampler.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0  # a checkpoint at an epoch's end resumes at the next epoch's start
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def order(self) -> torch.Tensor:
        """The rest of this epoch's order (all of it unless resuming mid-epoch), on the CPU."""
        start, self.skip = self.skip, 0  # skipping applies to the resumed epoch only
        return epoch_order(self.size, self.seed, self.epoch)[start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


class EpochShard(DistributedSampler):
    """This process's share of the epoch's order under DDP (EpochShuffle's order, padded with
    its first images to a multiple of the processes, every `num_replicas`-th from `rank`), and
    like EpochShuffle resumable mid-epoch: a resumed process skips the batches it had done.

    A DistributedSampler, so that Lightning leaves it in place instead of putting its own (whose
    order a resumed epoch would replay from its start).
    """

    def __init__(self, dataset: InMemoryImages, seed: int):
        super().__init__(dataset, shuffle=True, seed=seed)
        self.size, self.skip = len(dataset), 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0  # as EpochShuffle's
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(self.size, self.seed, self.epoch)
        order = torch.cat([order, order[: self.total_size - len(order)]])[self.rank::self.num_replicas]
        start, self.skip = self.skip, 0
        return iter(order[start:].tolist())


def _to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    """CPU `indices` on `device`: to a GPU from pinned memory, a copy the host does not wait for."""
    if device.type == "cuda":
        return indices.pin_memory().to(device, non_blocking=True)
    return indices.to(device)


class IndexBatches(BatchSampler):
    """Batches of indices as tensors on `device`, sliced from one index tensor per epoch.

    The epoch's order is drawn on the CPU as BatchSampler would draw it (so that a seed gives the
    same order on any device) and copied to `device` once at the epoch's start, from pinned memory
    without waiting; for a SequentialSampler (evaluation) the indices are made there. A step then
    only slices a tensor already on the device: no upload from a Python list, nothing that waits
    for a GPU. This holds for any sampler, such as a training shard under DDP (EpochShard, or a
    DistributedSampler that Lightning puts in: it makes a new IndexBatches around it, with the
    same batch size and device), and the batches are those of BatchSampler over the same sampler.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False,
                 device: torch.device | str = "cpu"):
        super().__init__(sampler, batch_size, drop_last)
        self.device = torch.device(device)

    def __iter__(self) -> Iterator[Any]:  # index tensors, where BatchSampler gives lists
        if isinstance(self.sampler, SequentialSampler):
            order = torch.arange(len(self.sampler), device=self.device)
        else:
            order = self.sampler.order() if isinstance(self.sampler, EpochShuffle) else \
                torch.as_tensor(list(self.sampler), dtype=torch.long)
            order = _to_device(order, self.device)
        end = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        yield from order[:end].split(self.batch_size)


class EvaluationShard(DistributedSampler):
    """This process's share of an evaluation set under DDP: every image on exactly one process.

    DistributedSampler pads the set with repeats so that all processes get equal shares, and
    the repeats would count twice in the metrics; unequal shares are harmless in evaluation.
    """

    def __init__(self, dataset: InMemoryImages):
        super().__init__(dataset, shuffle=False)
        self.shard = list(range(self.rank, len(dataset), self.num_replicas))
        self.num_samples = len(self.shard)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard)


def _distributed() -> bool:
    """Whether this process is one of several (DDP): then each loader reads its own share."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning saves into checkpoints and restores (its stateful-loader
    protocol), so that training resumed mid-epoch sees the images the lost run would have seen.

    `batches_done` reports how many batches the training loop has consumed this epoch (the
    loader itself has run ahead by Lightning's prefetch).
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int] = lambda: 0, **kwargs: Any):
        batches = kwargs.get("batch_sampler")
        shard = batches.sampler if isinstance(batches, IndexBatches) else None
        self._shard = shard if isinstance(shard, DistributedSampler) else None
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    @property
    def sampler(self) -> Any:
        """The loader's sampler as Lightning reads it: under DDP the process's EpochShard, which
        the index batches draw from, so that Lightning sees the share in place and puts in no
        DistributedSampler of its own."""
        return self._shard if self._shard is not None else self._sampler

    @sampler.setter
    def sampler(self, sampler: Any) -> None:
        self._sampler = sampler

    @property
    def shuffle(self) -> EpochShuffle | EpochShard | None:
        """The EpochShuffle or EpochShard that orders the batches; None for another sampler."""
        sampler = self.batch_sampler.sampler if isinstance(self.batch_sampler, IndexBatches) else self.sampler
        return sampler if isinstance(sampler, (EpochShuffle, EpochShard)) else None

    def state_dict(self) -> dict[str, int]:
        shuffle = self.shuffle
        if shuffle is None:
            return {}
        return {"seed": shuffle.seed, "epoch": shuffle.epoch, "batches_done": self.batches_done()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        shuffle = self.shuffle
        if state and shuffle is not None:
            shuffle.seed, shuffle.epoch = state["seed"], state["epoch"]
            # (the batch sampler is a BatchSampler: _loader_args makes it)
            shuffle.skip = state["batches_done"] * self.batch_sampler.batch_size  # type: ignore[union-attr]


class MNISTDataModule(L.LightningDataModule):
    """MNIST, Fashion-MNIST, KMNIST or any folder of the four IDX files, as a LightningDataModule.

    Args:
        dataset: "mnist", "fashion-mnist" or "kmnist": what to download, and its statistics.
        data_dir: a folder holding the four IDX files (used as it is), or where to download.
        batch_size: images per training batch (evaluation uses the same).
        val_size: images carved from the training split for validation; a float in (0, 1) is a
            fraction. The test split is never touched.
        split_seed: fixes which training images go to validation. None: the seed of
            `lightning.seed_everything` when the data is loaded (the run's seed: train() passes
            it too), or 0 where none was set. The seed used is kept in `split_seed` and `hparams`.
        normalize: "standard" (zero mean, unit variance: classifiers) or "symmetric" ([-1, 1],
            what a Tanh generator emits: GANs).
        num_workers: DataLoader worker processes. 0 is fastest here: batches are cut from memory.
        download: whether torchvision may download missing data; None: only into the default
            folder `data` (a mistyped data_dir is an error, not a new folder).
        data_on_device: when a Trainer runs on a GPU, keep every split there (uint8, about 55 MB
            for MNIST), so batches are cut and normalised on the GPU and never copied from the host.

    Attributes:
        drop_last: leave out each epoch's last training batch when it is smaller than
            batch_size (default False). Compiled training sets it (callbacks.CompiledTraining),
            so that its networks see one batch shape and are compiled once.
    """

    def __init__(
        self,
        dataset: DatasetName = "mnist",
        data_dir: str | Path = "data",
        batch_size: Annotated[int, at_least(1)] = 128,
        val_size: (Annotated[int, at_least(1)]
                   | Annotated[float, between(0, 1, low_open=True, high_open=True,
                                              why="a fraction (a whole number is a count of images)")]) = 0.1,
        split_seed: Seed | None = None,
        normalize: NormalizationKind = "standard",
        num_workers: Annotated[int, at_least(0)] = 0,
        download: bool | None = None,
        data_on_device: bool = True,
    ):
        check_arguments(MNISTDataModule, locals(), type(self).__name__)
        super().__init__()
        self.save_hyperparameters()
        self.dataset, self.data_dir, self.batch_size = dataset, data_dir, batch_size
        self.val_size, self.split_seed, self.normalize = val_size, split_seed, normalize
        self.num_workers, self.download, self.data_on_device = num_workers, download, data_on_device
        self.drop_last = False
        self.classes = DATASETS[dataset].classes
        self.train_set: InMemoryImages | None = None
        self.val_set: InMemoryImages | None = None
        self.test_set: InMemoryImages | None = None

    @property
    def normalization(self) -> Normalization:
        """How this data's pixels become the network's input: by the data set's statistics
        ("standard") or to [-1, 1] ("symmetric")."""
        if self.normalize == "symmetric":
            return SYMMETRIC
        info = DATASETS[self.dataset]
        return Normalization(info.mean, info.std)

    @property
    def mean_std(self) -> tuple[float, float]:
        """The normalization's (mean, std), in [0, 1] units."""
        return self.normalization.mean, self.normalization.std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalised images back to [0, 1] for display."""
        return self.normalization.undo(images)

    def check_data(self) -> None:
        """A DataNotFoundError now if the data is missing and may not be downloaded (train()
        checks this before it makes a run directory; a download waits for prepare_data)."""
        if not may_download(self.data_dir, self.download):
            locate_data(self.dataset, self.data_dir, download=False)

    def prepare_data(self) -> None:
        locate_data(self.dataset, self.data_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self._load()
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if self.data_on_device and device is not None and device.type == "cuda":
            for split in (self.split("train"), self.split("val"), self.split("test")):
                split.images, split.labels = split.images.to(device), split.labels.to(device)

    def split(self, name: Literal["train", "val", "test"]) -> InMemoryImages:
        """The images and labels of one split (after setup)."""
        data = {"train": self.train_set, "val": self.val_set, "test": self.test_set}[name]
        if data is None:
            raise RuntimeError(f"call setup() before asking for the {name} split")
        return data

    def _load(self) -> None:
        tensors = load_idx_folder(locate_data(self.dataset, self.data_dir, self.download))
        n_train = len(tensors["train_labels"])
        n_val = round(self.val_size * n_train) if isinstance(self.val_size, float) else int(self.val_size)
        if not 0 < n_val < n_train:
            raise UserError(f"val_size={self.val_size} leaves no training or no validation images "
                            f"out of {n_train}; use a fraction such as 0.1 or a count below {n_train}.")
        if self.split_seed is None:  # lightning.seed_everything keeps its seed in PL_GLOBAL_SEED
            self.split_seed = self.hparams["split_seed"] = int(os.environ.get("PL_GLOBAL_SEED", 0))
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
        normalization = self.normalization
        images, labels = tensors["train_images"], tensors["train_labels"]
        self.train_set = InMemoryImages(images[train_idx], labels[train_idx], normalization)
        self.val_set = InMemoryImages(images[val_idx], labels[val_idx], normalization)
        self.test_set = InMemoryImages(tensors["test_images"], tensors["test_labels"], normalization)

    def _loader_args(self, data: InMemoryImages, sampler: Sampler[int] | None = None,
                     drop_last: bool = False) -> dict[str, Any]:
        """DataLoader arguments for `data` in `sampler`'s order (default: as stored)."""
        sampler = SequentialSampler(data) if sampler is None else sampler
        # worker processes cannot share CUDA tensors, and data on the GPU needs none
        workers = 0 if data.labels.is_cuda else self.num_workers
        # batches as index tensors where the data is (see IndexBatches); a training shard under DDP
        # too, which ResumableLoader shows Lightning as its sampler. Worker processes get lists
        # (a tensor sent to one travels through shared memory, a slower way for 256 ints), and so
        # does an evaluation shard under DDP, which Lightning must see as the loader's sampler to
        # leave it in place (__getitems__ sends those lists to a GPU without waiting)
        tensors = workers == 0 and isinstance(sampler, (EpochShuffle, EpochShard, SequentialSampler))
        batches = ({"batch_sampler": IndexBatches(sampler, self.batch_size, drop_last, data.labels.device)}
                   if tensors else {"sampler": sampler, "batch_size": self.batch_size, "drop_last": drop_last})
        # a generator of its own: otherwise each new iterator draws its worker seed from the global
        # one, and a resumed run (which makes an iterator the lost run did not) would drift
        return {"dataset": data, "collate_fn": _batch_as_is, "num_workers": workers,
                "persistent_workers": workers > 0, **batches,
                "generator": torch.Generator().manual_seed(torch.initial_seed() % 2**31)}

    def _batches_done(self) -> int:
        # the training loop's count of batches processed in this epoch
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current if self.trainer else None
        return progress.processed if progress is not None else 0  # type: ignore[attr-defined]  # a _BatchProgress's

    def train_dataloader(self) -> DataLoader:
        # the run's seed fixes the order; reading it draws nothing from the global generator,
        # whose state a resumed run restores (drawing here would shift every draw after it)
        seed = torch.initial_seed() % 2**31
        train = self.split("train")
        shuffle = EpochShard(train, seed) if _distributed() else EpochShuffle(len(train), seed)
        return ResumableLoader(batches_done=self._batches_done,
                               **self._loader_args(train, shuffle, drop_last=self.drop_last))

    def _evaluation_loader(self, data: InMemoryImages) -> DataLoader:
        return DataLoader(**self._loader_args(data, EvaluationShard(data) if _distributed() else None))

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.split("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.split("test"))
