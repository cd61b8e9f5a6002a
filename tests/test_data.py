"""The data module and IDX reading, on small generated files, and each of their error paths."""

from __future__ import annotations

import shutil

import lightning as L
import pytest
import torch
import torchvision

from mnist_pl import CorruptDataError, DataNotFoundError, MNISTDataModule, UserError, read_idx
from mnist_pl.data import InMemoryImages, locate_data, may_download
from mnist_pl.normalization import Normalization

from conftest import make_digits, make_idx_folder, write_idx


def test_read_idx_plain_and_gz_agree(tmp_path):
    images, _ = make_digits(5, seed=0)
    plain = read_idx(write_idx(tmp_path / "a-idx3-ubyte", images), 3)
    zipped = read_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", images), 3)
    assert plain.dtype == torch.uint8 and plain.shape == (5, 28, 28)
    assert torch.equal(plain, images) and torch.equal(zipped, images)


def test_datamodule_splits_are_in_memory_uint8_and_disjoint(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), val_size=0.25, batch_size=32)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (240, 80, 64)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (1, 28, 28)
    # validation is carved from train, so together they are exactly the training file
    all_train = torch.cat([dm.train_set.images, dm.val_set.images]).flatten(1)
    source = read_idx(idx_dir / "train-images-idx3-ubyte.gz", 3).flatten(1)
    assert sorted(map(tuple, all_train.tolist())) == sorted(map(tuple, source.tolist()))


def test_test_split_is_the_t10k_file_in_order(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), val_size=0.25)
    dm.setup()
    images = read_idx(idx_dir / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", 1)
    assert torch.equal(dm.test_set.images, images.unsqueeze(1))
    assert torch.equal(dm.test_set.labels, labels.long())


def test_validation_split_is_fixed_by_split_seed(idx_dir):
    def val_labels(seed):
        dm = MNISTDataModule(data_dir=str(idx_dir), split_seed=seed)
        dm.setup()
        return dm.val_set.labels
    assert torch.equal(val_labels(3), val_labels(3))
    assert not torch.equal(val_labels(3), val_labels(4))


def test_validation_split_follows_seed_everything(idx_dir, monkeypatch):
    def validation(**args):
        dm = MNISTDataModule(data_dir=str(idx_dir), **args)
        dm.setup()
        return dm
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # so that the seed set below is undone after the test
    monkeypatch.delenv("PL_GLOBAL_SEED")
    unseeded = validation()
    assert unseeded.split_seed == 0 and torch.equal(unseeded.val_set.labels, validation(split_seed=0).val_set.labels)
    L.seed_everything(5, verbose=False)
    seeded = validation()
    assert seeded.split_seed == 5 and seeded.hparams["split_seed"] == 5  # what a checkpoint saves
    assert torch.equal(seeded.val_set.labels, validation(split_seed=5).val_set.labels)
    assert validation(split_seed=3).split_seed == 3  # a given seed wins


def test_batches_are_normalised_tensors(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=50)
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (50, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (50,) and labels.dtype == torch.int64
    # standard normalisation maps pixel 0 to -mean/std and 255 to (1-mean)/std
    assert images.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)
    assert images.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-4)


def test_symmetric_normalisation_spans_minus_one_to_one(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), normalize="symmetric", batch_size=64)
    dm.setup()
    images, _ = next(iter(dm.test_dataloader()))
    assert images.min().item() == pytest.approx(-1.0) and images.max().item() == pytest.approx(1.0)
    assert torch.allclose(dm.denormalize(images) * 255, dm.test_set.images[:64].float(), atol=1e-3)


def test_batch_fetch_matches_single_items():
    images, labels = make_digits(10, seed=5)
    data = InMemoryImages(images.unsqueeze(1), labels.long(), Normalization(0.5, 0.25))
    batch_x, batch_y = data.__getitems__([3, 7])
    for row, i in enumerate([3, 7]):
        x, y = data[i]
        assert torch.equal(batch_x[row], x) and batch_y[row] == y


def test_plain_idx_files_work_too(tmp_path):
    dm = MNISTDataModule(data_dir=str(make_idx_folder(tmp_path, gz=False)))
    dm.setup()
    assert len(dm.test_set) == 64


def test_torchvision_layout_is_found(tmp_path):
    make_idx_folder(tmp_path / "FashionMNIST" / "raw")
    assert locate_data("fashion-mnist", tmp_path, download=False) == tmp_path / "FashionMNIST" / "raw"


def test_missing_data_lists_paths_and_both_fixes(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        locate_data("mnist", tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert f"folder {tmp_path / 'nowhere'} does not exist" in message
    assert "Give --data-dir the folder" in message
    assert f"python -m mnist_pl download --dataset mnist --data-dir {tmp_path / 'nowhere'}" in message
    assert not (tmp_path / "nowhere").exists()


def test_only_the_default_folder_downloads_unasked(tmp_path, monkeypatch):
    """A data_dir the user named is never made into a download target unless download=True."""
    monkeypatch.chdir(tmp_path)
    assert may_download("data", None) and may_download(tmp_path / "data", True)
    assert not may_download(tmp_path / "mine", None) and not may_download("data", False)


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example.org/, got:\n"
                           "<urlopen error timed out>\n")
    monkeypatch.setattr(torchvision.datasets.MNIST, "__init__", offline)
    with pytest.raises(DataNotFoundError, match=r"the download failed \(Error downloading "
                                                r"train-images-idx3-ubyte.gz: timed out\)"):
        MNISTDataModule(data_dir=str(tmp_path), download=True).prepare_data()


@pytest.mark.parametrize("damage, message", [
    ("magic", "magic number"),
    ("truncate", "truncated"),
    ("tiny", "too short"),
    ("labels", "labels for"),
    ("label_value", "outside 0-9"),
    ("not_gzip", "cannot be read or decompressed"),
])
def test_corrupt_files_are_named(tmp_path, damage, message):
    folder = make_idx_folder(tmp_path, gz=False)
    images = folder / "train-images-idx3-ubyte"
    labels = folder / "train-labels-idx1-ubyte"
    if damage == "magic":
        images.write_bytes(b"\x00\x00\x08\x02" + images.read_bytes()[4:])
    elif damage == "truncate":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "tiny":
        images.write_bytes(b"\x00\x00")
    elif damage == "labels":
        write_idx(labels, torch.zeros(7, dtype=torch.uint8))
    elif damage == "label_value":
        write_idx(labels, torch.full((320,), 12, dtype=torch.uint8))
    elif damage == "not_gzip":
        shutil.move(images, images.with_suffix(".gz"))
        images.with_suffix(".gz").write_bytes(b"this is not gzip")
    with pytest.raises(CorruptDataError, match=message) as err:
        MNISTDataModule(data_dir=str(folder)).setup()
    assert "train-" in str(err.value)


@pytest.mark.parametrize("kwargs", [{"dataset": "cifar"}, {"normalize": "minmax"}, {"batch_size": 0}])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(UserError):
        MNISTDataModule(**kwargs)


def test_val_size_must_leave_images(idx_dir):
    with pytest.raises(UserError, match="val_size"):
        MNISTDataModule(data_dir=str(idx_dir), val_size=320).setup()


def test_training_batches_are_index_tensors_in_the_epochs_seeded_order(idx_dir):
    from mnist_pl.data import EpochShuffle, IndexBatches

    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=64)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, IndexBatches)
    shuffle = loader.shuffle
    shuffle.set_epoch(3)
    batches = list(loader.batch_sampler)
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.long for b in batches)
    # the order mnist-pl has always used: randperm of a generator seeded by (seed, epoch)
    expected = torch.randperm(len(dm.train_set), generator=torch.Generator().manual_seed(shuffle.seed + 1_000_003 * 3))
    assert torch.equal(torch.cat(batches), expected) and [len(b) for b in batches[:-1]] == [64] * (len(batches) - 1)
    assert torch.equal(torch.cat(list(loader.batch_sampler)), expected), "the same seed and epoch, the same order"
    assert list(EpochShuffle(len(dm.train_set), shuffle.seed)) != expected.tolist()  # epoch 0 differs
    images, labels = next(iter(loader))
    assert torch.equal(labels, dm.train_set.labels[batches[0]]) and images.dtype == torch.float32


def test_training_order_resumes_mid_epoch_where_it_stopped(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=64)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.shuffle.set_epoch(1)
    full = list(loader.batch_sampler)
    resumed = dm.train_dataloader()
    resumed.load_state_dict({"seed": loader.shuffle.seed, "epoch": 1, "batches_done": 2})
    assert [b.tolist() for b in resumed.batch_sampler] == [b.tolist() for b in full[2:]]
    assert [b.tolist() for b in resumed.batch_sampler] == [b.tolist() for b in full], "the next pass is whole"


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_batches_are_index_tensors_as_batch_sampler_cuts_them(idx_dir, drop_last):
    # under DDP the training order is a DistributedSampler's: its batches as one tensor an epoch,
    # cut exactly as BatchSampler cuts its lists (288 images, 144 a process: 4 batches of 40, 24 left)
    from torch.utils.data import BatchSampler, DistributedSampler

    from mnist_pl.data import IndexBatches

    dm = MNISTDataModule(data_dir=str(idx_dir))
    dm.setup("fit")
    for rank in (0, 1):
        sampler = DistributedSampler(dm.train_set, num_replicas=2, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(3)
        batches = list(IndexBatches(sampler, 40, drop_last))
        expected = list(BatchSampler(sampler, 40, drop_last))
        assert [b.tolist() for b in batches] == expected and len(expected) == (3 if drop_last else 4)
        assert all(isinstance(b, torch.Tensor) and b.dtype == torch.long for b in batches)


def test_lightning_puts_its_ddp_sampler_into_the_index_batches(idx_dir):
    # what Lightning does to the training loader under DDP (lightning's data connector), by hand:
    # the loader made under its argument recorder, then re-made around a DistributedSampler
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    from mnist_pl.data import IndexBatches

    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=64)
    dm.setup("fit")
    dm.drop_last = True
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()
    sampler = DistributedSampler(dm.train_set, num_replicas=2, rank=1, shuffle=True, seed=0)
    remade = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
    batches = remade.batch_sampler
    assert isinstance(batches, IndexBatches) and batches.sampler is sampler
    assert (batches.batch_size, batches.drop_last, batches.device) == (64, True, torch.device("cpu"))
    assert [b.tolist() for b in batches] == list(BatchSampler(sampler, 64, drop_last=True))
    assert sum(len(labels) for _, labels in remade) == 128  # 144 images on this process, 2 full batches


def test_ddp_training_batches_are_index_tensors_of_the_process_shard(idx_dir, monkeypatch):
    # process 1 of 2 under DDP (torch.distributed's answers faked): the loader's batches are index
    # tensors cut from its EpochShard, the batches BatchSampler would cut as lists, and Lightning
    # sees the shard as the loader's sampler (a DistributedSampler: it puts in none of its own)
    from torch.utils.data import BatchSampler, DistributedSampler

    from mnist_pl.data import EpochShard, IndexBatches

    for name, answer in (("is_available", True), ("is_initialized", True), ("get_world_size", 2), ("get_rank", 1)):
        monkeypatch.setattr(torch.distributed, name, lambda *args, answer=answer, **kwargs: answer)
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=40)
    dm.setup("fit")
    loader = dm.train_dataloader()
    shard = loader.sampler
    assert isinstance(shard, EpochShard) and isinstance(shard, DistributedSampler) and shard.rank == 1
    assert isinstance(loader.batch_sampler, IndexBatches) and loader.batch_sampler.sampler is shard
    shard.set_epoch(2)
    full = list(BatchSampler(shard, 40, drop_last=False))
    assert [b.tolist() for b in loader.batch_sampler] == full and len(full) == 4  # 144 of the 288 images
    assert [labels.tolist() for _, labels in loader] == [dm.train_set.labels[b].tolist() for b in full]
    loader.load_state_dict({"seed": shard.seed, "epoch": 2, "batches_done": 1})  # resumed mid-epoch
    assert [b.tolist() for b in loader.batch_sampler] == full[1:]


def test_compiled_training_can_leave_out_the_last_smaller_batch(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=50)
    dm.setup("fit")
    assert [len(b) for b in dm.train_dataloader().batch_sampler] == [50] * 5 + [38]
    dm.drop_last = True
    assert [len(b) for b in dm.train_dataloader().batch_sampler] == [50] * 5
    assert [len(b) for b in dm.val_dataloader().batch_sampler] == [32], "evaluation keeps every image"


def test_evaluation_batches_are_in_stored_order(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=50)
    dm.setup("test")
    batches = list(dm.test_dataloader().batch_sampler)
    assert torch.equal(torch.cat(batches), torch.arange(len(dm.test_set))) and len(batches[0]) == 50


def test_worker_processes_get_lists_of_indices(idx_dir):
    dm = MNISTDataModule(data_dir=str(idx_dir), batch_size=64, num_workers=1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.shuffle is not None and loader.batch_size == 64
    assert sum(len(labels) for _, labels in loader) == len(dm.train_set)
