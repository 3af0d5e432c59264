"""Datamodules: loading, caching, stratified splits, statistics, batching, augmentation."""

import lightning
import pytest
import torch

from src.core.errors import ConfigError, DataError
from src.datamodules import CIFAR10DataModule, FashionMNISTDataModule
from src.datamodules import sources as sources_module
from src.datamodules.splits import stratified_split, stratified_subset
from src.datamodules.tensor_loader import TensorBatchLoader
from tests.conftest import CLASS_NAMES, write_image_folder


def test_stratified_split_keeps_every_class_share():
    # Unequal classes: 100, 37, 250, 13 images.
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([100, 37, 250, 13])])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    rest, held_out = stratified_split(labels, 0.1, seed=3)
    assert torch.equal(torch.cat([rest, held_out]).sort().values, torch.arange(len(labels)))
    for c, n in enumerate([100, 37, 250, 13]):
        assert abs((labels[held_out] == c).sum().item() - 0.1 * n) <= 1
    # Same seed, same split; another seed, another split.
    assert torch.equal(stratified_split(labels, 0.1, seed=3)[1], held_out)
    assert not torch.equal(stratified_split(labels, 0.1, seed=4)[1], held_out)


def test_stratified_subset_by_fraction_and_per_class():
    labels = torch.arange(10).repeat_interleave(50)  # 10 classes x 50
    by_fraction = stratified_subset(labels, fraction=0.2, seed=0)
    assert torch.bincount(labels[by_fraction]).tolist() == [10] * 10
    per_class = stratified_subset(labels, per_class=7, seed=0)
    assert torch.bincount(labels[per_class]).tolist() == [7] * 10
    with pytest.raises(ConfigError, match="exceeds the 50 training images"):
        stratified_subset(labels, per_class=51, seed=0)


def test_datamodule_split_stats_and_sizes(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), val_fraction=0.25, split_seed=5)
    assert (dm.num_classes, dm.in_channels, dm.image_size) == (4, 3, 32)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.classes == CLASS_NAMES
    # 24 train images per class, a quarter held out per class.
    assert torch.bincount(dm.val_set.labels).tolist() == [6] * 4
    assert torch.bincount(dm.train_set.labels).tolist() == [18] * 4
    # Statistics come from the training split only, not validation or test: the mean and
    # population std of each channel of its pixels, computed here in float64.
    all_train = sources_module.load_folder_split(image_folder, "train", CLASS_NAMES, None)
    reference = all_train.images[dm.split_indices["train"]].double() / 255
    assert torch.allclose(dm.mean.double(), reference.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(dm.std.double(), reference.std(dim=(0, 2, 3), unbiased=False),
                          atol=1e-6)
    whole_mean = (all_train.images.double() / 255).mean(dim=(0, 2, 3))
    assert not torch.allclose(dm.mean.double(), whole_mean, atol=1e-6)


def test_subset_is_taken_from_the_training_split(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), val_fraction=0.25, subset_per_class=5)
    dm.setup("fit")
    assert torch.bincount(dm.train_set.labels).tolist() == [5] * 4
    assert not set(dm.split_indices["train"].tolist()) & set(dm.split_indices["val"].tolist())


def test_no_validation_split_uses_every_training_image(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), val_fraction=None)
    dm.setup("fit")
    assert len(dm.train_set.labels) == 96 and len(dm.val_set.labels) == 0
    assert not dm.has_validation and dm.val_dataloader() == []


def test_decoded_images_are_cached_and_reused(fresh_image_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    first = CIFAR10DataModule(data_dir=str(fresh_image_folder))
    first.setup("fit")
    # In the user's cache folder, not in the data folder (which may be read-only).
    cache_root = tmp_path / "user_cache" / "lightning-image-classification"
    assert first.cache_dir.is_relative_to(cache_root)
    assert (first.cache_dir / "train-uint8.pt").is_file()
    assert not (fresh_image_folder / ".cache").exists()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(sources_module, "decode_folder", no_decoding)
    second = CIFAR10DataModule(data_dir=str(fresh_image_folder))
    second.setup("fit")
    assert torch.equal(second.train_set.images, first.train_set.images)
    assert torch.equal(second.test_set.labels, first.test_set.labels)


def test_grayscale_folder_gives_one_channel(tmp_path):
    root = write_image_folder(tmp_path / "gray", 6, 2, size=28, channels=1)
    dm = FashionMNISTDataModule(data_dir=str(root), augment=())
    assert (dm.in_channels, dm.image_size, dm.num_classes) == (1, 28, 4)
    dm.setup("fit")
    assert dm.train_set.images.shape[1:] == (1, 28, 28)


def test_missing_data_fails_with_one_line_naming_the_place(tmp_path):
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and "CIFAR10_DIR" in message
    assert "\n" not in message


def test_folder_without_test_split_is_rejected(tmp_path):
    root = write_image_folder(tmp_path / "data", 2, 1)
    for image in (root / "test").rglob("*.png"):
        image.unlink()
    for folder in sorted((root / "test").iterdir()):
        folder.rmdir()
    (root / "test").rmdir()
    with pytest.raises(DataError, match="missing test/"):
        CIFAR10DataModule(data_dir=str(root))


@pytest.mark.parametrize("arguments, message", [
    ({"val_fraction": 1.0}, "val_fraction=1.0 is out of range"),
    ({"val_fraction": 0.0}, "val_fraction=0.0 is out of range"),
    ({"batch_size": 0}, "batch_size=0 is out of range"),
    ({"augment": ("crop", "jitter")}, "unknown augmentation 'jitter'"),
    ({"source": "kaggle"}, "unknown data source 'kaggle'"),
])
def test_bad_data_settings_fail_early(image_folder, arguments, message):
    with pytest.raises(ConfigError, match=message):
        CIFAR10DataModule(data_dir=str(image_folder), **arguments)


def test_tensor_loader_batches_and_shards():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    labels = torch.arange(10)
    loader = TensorBatchLoader(images, labels, batch_size=4, shuffle=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    # Shuffled shards of two ranks are disjoint and change with the epoch.
    epoch = {"value": 0}
    shards = [TensorBatchLoader(images, labels, 3, shuffle=True, seed=1, rank=r, world_size=2,
                                epoch_fn=lambda: epoch["value"]) for r in range(2)]
    seen = [torch.cat([b[1] for b in shard]) for shard in shards]
    assert len(seen[0]) == len(seen[1]) == 5
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    epoch["value"] = 1
    assert not torch.equal(torch.cat([b[1] for b in shards[0]]), seen[0])


def test_no_training_batch_of_a_single_image():
    # Batch norm cannot train on one image: 9 images at batch size 4 are split 3, 3, 3
    # (not 4, 4, 1), and every image is used.
    images, labels = torch.zeros(9, 1, 2, 2, dtype=torch.uint8), torch.arange(9)
    train = TensorBatchLoader(images, labels, batch_size=4, shuffle=True)
    assert [len(b[1]) for b in train] == [3, 3, 3]
    assert sorted(torch.cat([b[1] for b in train]).tolist()) == list(range(9))
    # Tiny shards: fewer, larger batches rather than a batch of one (5 images, batch 2).
    small = TensorBatchLoader(images[:5], labels[:5], batch_size=2, shuffle=True)
    assert [len(b[1]) for b in small] == [3, 2]
    evaluation = TensorBatchLoader(images, labels, batch_size=4, shuffle=False)
    assert [len(b[1]) for b in evaluation] == [4, 4, 1]  # evaluation sees every image


def test_only_training_batches_are_augmented(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), augment=[{"name": "flip", "p": 1.0}])
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))

    class FakeTrainer:
        training = True
        precision_plugin = lightning.pytorch.plugins.precision.Precision()  # 32-true

    dm.trainer = FakeTrainer()
    augmented, _ = dm.on_after_batch_transfer((images, labels), 0)
    FakeTrainer.training = False
    plain, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.allclose(augmented, plain.flip(-1))
    # Normalized with the training statistics: per-channel mean ~0 over the training split.
    all_plain, _ = dm.on_after_batch_transfer((dm.train_set.images, dm.train_set.labels), 0)
    assert all_plain.dtype == torch.float32
    assert torch.allclose(all_plain.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(all_plain.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
