"""The fast path: DDP training shards, no per-step host sync, device constants copied once."""

import collections
import math
import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode

from experiments import cifar_mlp
from src.callbacks.weight_averaging import EMAWeights
from src.datamodules import CIFAR10DataModule
from src.datamodules.tensor_loader import TensorBatchLoader
from src.modules import ImageClassifier


def epoch_batches(n: int, batch_size: int, world_size: int, epoch: int = 0,
                  drop_last: bool = False) -> list[list[torch.Tensor]]:
    """The label batches each rank sees in one epoch (labels = image indices)."""
    images, labels = torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.arange(n)
    return [[batch_labels for _, batch_labels in TensorBatchLoader(
        images, labels, batch_size, shuffle=True, seed=3, drop_last=drop_last, rank=rank,
        world_size=world_size, epoch_fn=lambda: epoch)] for rank in range(world_size)]


@pytest.mark.parametrize("n, batch_size, world_size", [
    (10, 4, 1), (9, 4, 1), (101, 8, 2), (100, 7, 3), (50_000, 512, 4), (45_001, 512, 8),
    (7, 16, 2), (5, 2, 1),
])
def test_training_shards_cover_every_image_once_in_equal_numbers_of_batches(
        n, batch_size, world_size):
    ranks = epoch_batches(n, batch_size, world_size)
    # Union over ranks of one epoch: every index exactly once (none repeated, none dropped).
    seen = torch.cat([batch for batches in ranks for batch in batches])
    assert torch.equal(seen.sort().values, torch.arange(n))
    # The same number of steps on every rank, else DDP waits forever for the missing one.
    counts = {len(batches) for batches in ranks}
    assert len(counts) == 1
    sizes = [len(batch) for batches in ranks for batch in batches]
    assert max(sizes) - min(sizes) <= 1  # nearly equal batches
    assert min(sizes) >= 2  # batch norm cannot train on a single image
    full_count = math.ceil(math.ceil(n / world_size) / batch_size)
    if n // world_size >= 2 * full_count:  # shards large enough for batches of >= 2
        assert counts == {full_count} and max(sizes) <= batch_size
    else:  # fewer, larger batches
        assert counts.pop() < full_count


def test_each_epoch_has_its_own_order_and_drop_last_gives_full_batches():
    first, second = (torch.cat(epoch_batches(100, 8, 2, epoch)[0]) for epoch in (0, 1))
    assert not torch.equal(first, second)
    ranks = epoch_batches(101, 8, 2, drop_last=True)
    assert [len(batches) for batches in ranks] == [6, 6]
    assert {len(batch) for batches in ranks for batch in batches} == {8}
    seen = torch.cat([batch for batches in ranks for batch in batches])
    assert len(set(seen.tolist())) == len(seen) == 96


def test_evaluation_shards_cover_every_image_once():
    images, labels = torch.zeros(103, 1, 1, 1, dtype=torch.uint8), torch.arange(103)
    seen = torch.cat([batch_labels for rank in range(4) for _, batch_labels in TensorBatchLoader(
        images, labels, 10, shuffle=False, rank=rank, world_size=4)])
    assert torch.equal(seen, torch.arange(103))


# Calls that make the host wait for the device when the tensor lives on a GPU.
HOST_SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu",
              "numpy", "nonzero", "unique"}


class HostSyncCounter(TorchFunctionMode):
    """Counts host-sync calls by call site. On a CPU-only machine every tensor is on the
    host, so the calls are counted whatever the device; a call whose number grows with
    the number of training steps is a per-step sync on a GPU."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_SYNCS:
            frames = traceback.extract_stack(limit=4)[:-1]
            site = " < ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames)
            # torch.optim keeps its step counters on the host on purpose (no device sync).
            if "torch/optim/" not in frames[-1].filename:
                self.sites[site] += 1
        return func(*args, **(kwargs or {}))


def test_no_host_sync_per_training_or_validation_step(image_folder, tmp_path):
    CIFAR10DataModule(data_dir=str(image_folder)).prepare_data()  # decode cache in place

    def count_syncs(train_batches: int, val_batches: int) -> collections.Counter:
        counter = HostSyncCounter()
        with counter:
            cifar_mlp.main([
                "--data.data_dir", str(image_folder), "--data.batch_size", "4",
                "--data.eval_batch_size", "2",
                "--data.augment", "[crop, flip, cutout, color_jitter, mixup]",
                "--model.hidden_widths", "[8]", "--model.optimizer", "sgd",
                "--ema.decay", "0.9", "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", str(train_batches),
                "--trainer.limit_val_batches", str(val_batches),
                "--trainer.log_every_n_steps", "1000",
                "--trainer.enable_progress_bar", "true",  # it reads metrics every step
                "--trainer.enable_model_summary", "false",
                "--trainer.default_root_dir", str(tmp_path / f"run{train_batches}"),
            ])
        return counter.sites

    short, long = count_syncs(3, 1), count_syncs(9, 3)
    per_step = {site: (short[site], long[site]) for site in short | long
                if short[site] != long[site]}
    assert not per_step, f"host syncs that grow with the steps: {per_step}"


def test_normalization_constants_reach_the_device_once(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), augment=[])
    dm.setup("fit")
    images = dm.train_set.images[:8]
    first = dm.normalize(images)

    class CopyCounter(TorchFunctionMode):
        copies = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "to":
                CopyCounter.copies += 1
            return func(*args, **(kwargs or {}))

    with CopyCounter():
        again = dm.normalize(images)
    assert CopyCounter.copies == 0
    assert torch.equal(first, again)
    expected = (images.float() / 255 - dm.mean[:, None, None]) / dm.std[:, None, None]
    assert torch.allclose(again, expected, atol=1e-5)


def test_ema_keeps_its_update_counter_on_the_host():
    model = ImageClassifier(arch="mlp", hidden_widths=(8,), image_size=4, in_channels=1)
    callback = EMAWeights(decay=0.9)
    callback.setup(trainer=None, pl_module=model, stage="fit")
    model.to("meta")  # stands for a GPU: the weights move, the counter must not
    callback.on_fit_start(trainer=None, pl_module=model)
    assert {p.device.type for p in callback._average_model.parameters()} == {"meta"}
    assert callback._average_model.n_averaged.device.type == "cpu"
