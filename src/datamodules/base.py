"""ImageDataModule: a whole image data set held as uint8 tensors, batched by indexing.

Pipeline: load the train and test splits as uint8 tensors (decoded once, cached) ->
optional subset of the classes, relabeled 0..k-1 (train and test) -> optional class
imbalance of the training images -> stratified validation split of the training images ->
optional stratified subset of the rest -> per-channel mean/std of that training subset
only -> batches by index
(`TensorBatchLoader`) -> on the device: augmentation (training only), then normalization
(`on_after_batch_transfer`; by default with the training-split mean/std, see
src/datamodules/input_normalization.py). `pipeline="classic"` instead batches a
per-image torchvision Dataset with DataLoader workers (`src/datamodules/classic.py`),
the usual slower path.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader

from src.core.errors import ConfigError, DataError, check_range, lookup
from src.datamodules.augment import build_augmentations
from src.datamodules.classic import check_per_image, classic_loader, per_image_transform
from src.datamodules.input_normalization import NORMALIZATIONS, normalization_constants
from src.datamodules.sources import (
    ImageSet,
    check_folder_layout,
    decode_image,
    default_cache_dir,
    list_image_files,
    load_folder_split,
    load_torchvision_split,
)
from src.datamodules.splits import (
    check_class_selection,
    class_subset_indices,
    imbalanced_subset,
    stratified_split,
    stratified_subset,
)
from src.datamodules.tensor_loader import TensorBatchLoader

SOURCES = ("auto", "folder", "torchvision")
PIPELINES = ("fast", "classic")


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of uint8 images [N, C, H, W], in [0, 1] units."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):  # chunks bound the float64 copy's memory
        block = images[start:start + chunk].to(torch.float64)
        total += block.sum(dim=(0, 2, 3))
        total_sq += block.square().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return (mean / 255).float(), (std / 255).float()


def describe_shape(images: torch.Tensor) -> str:
    """'32x32 with 3 channel(s)' for uint8 images [N, C, H, W]."""
    _, channels, height, width = images.shape
    return f"{width}x{height} with {channels} channel(s)"


class ImageDataModule(L.LightningDataModule):
    """Base class; subclasses name the data set and its torchvision class.

    Args:
        data_dir: folder of the data; default: $<ENV_VAR> if set, else ./data/<name>.
            An image-folder tree (train/<class>/*, test/<class>/*) is read as it is;
            otherwise torchvision's files are looked for (and downloaded) there.
        source: "auto" (image folders if data_dir/train exists, else torchvision),
            "folder" or "torchvision".
        download: let torchvision download the data set when it is missing.
        batch_size: training batch size (per process under DDP).
        eval_batch_size: batch size for validation and test.
        val_fraction: share of each class of the training images held out for
            validation, in (0, 1); null trains on all of them with no validation set.
        subset_fraction: train on this stratified fraction of the remaining images.
        subset_per_class: or on this many images per class.
        classes: use only these classes, by name (e.g. [cat, dog]), relabeled 0..k-1 in
            the order given, in train, validation and test; null uses every class.
        imbalance_ratio: keep only this fraction (0, 1] of the training images of every
            class after the first (stratified, seeded by split_seed), e.g. 0.1 gives
            10:1 (about 91/9; 0.111 gives 90/10). It is applied before the validation
            split, so validation has the training split's class ratio; test stays
            balanced. null keeps every image.
        split_seed: seed of the validation split, the subset and the shuffle order.
        augment: training-batch augmentations, applied in order on the device, each image
            its own draw; each item a name or {name: ..., <param>: value}, e.g.
            [crop, flip, {name: cutout, size: 8}]. Names (parameters=defaults):
            crop(padding=4), resized_crop(scale=[0.08, 1], ratio=[0.75, 1.333],
            interpolation=bilinear), flip(p=0.5), rotate(degrees=15, interpolation=bilinear),
            affine(degrees=0, translate=[0.125, 0.125], scale=[1, 1], shear=0,
            interpolation=bilinear), color_jitter(brightness=0.4, contrast=0.4, saturation=0.4,
            hue=0.1, p=1), grayscale(p=0.1), rgb_shift(shift=0.08, p=0.5),
            noise(sigma=0.05, mean=0, p=1), blur(kernel_size=5, sigma=[0.1, 2], p=0.5),
            erasing(p=0.5, scale=[0.02, 0.33], ratio=[0.3, 3.3], value=0),
            cutout(size=16, p=1, value=0), autoaugment(policy=cifar10),
            randaugment(num_ops=2, magnitude=9, num_magnitude_bins=31),
            trivialaugment(num_magnitude_bins=31); label mixing (soft targets):
            mixup(alpha=1, p=1), cutmix(alpha=1, p=1), mosaic(center=[0.25, 0.75], p=1).
            Pixel values are in 0..1 units.
        device_resident: keep the uint8 images on the training device (no host-to-device
            copy per batch).
        cache_dir: where decoded image folders are cached; default a folder of this data
            set under $XDG_CACHE_HOME (else ~/.cache)/lightning-image-classification, not
            the data folder (which may be shared, read-only or slow).
        drop_last: training batches of exactly batch_size only (the few images left over
            are skipped, a different few each epoch); by default each epoch's images are
            split into nearly equal batches of at most batch_size.
        pipeline: "fast" (whole split as uint8 tensors, batched by indexing, augmented and
            normalized on the device) or "classic" (a Dataset transforming one image at
            a time with torchvision v2 in DataLoader worker processes; the baseline).
        num_workers: DataLoader worker processes of the classic pipeline (null: as many
            as CPU cores, at most 8); the fast pipeline uses none.
        normalization: input scaling, on both pipelines: "standardize" (per channel, with
            the training split's mean and std), "unit" (pixel / 255, in [0, 1]) or "none"
            (the raw values 0..255 as float).
    """

    name: ClassVar[str] = "images"
    display_name: ClassVar[str] = "image data set"
    env_var: ClassVar[str] = "IMAGE_DATA_DIR"
    torchvision_class: ClassVar[type | None] = None
    default_num_classes: ClassVar[int] = 10
    default_channels: ClassVar[int] = 3
    default_image_size: ClassVar[int] = 32
    # Class names in label order, known before loading (torchvision sources); an image
    # folder's own class folders take precedence.
    default_classes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        data_dir: str | None = None,
        source: str = "auto",
        download: bool = True,
        batch_size: int = 512,
        eval_batch_size: int = 1024,
        val_fraction: float | None = 0.1,
        subset_fraction: float | None = None,
        subset_per_class: int | None = None,
        classes: list[str] | None = None,
        imbalance_ratio: float | None = None,
        split_seed: int = 0,
        augment: Sequence[str | dict[str, Any]] = ("crop", "flip"),
        device_resident: bool = True,
        cache_dir: str | None = None,
        drop_last: bool = False,
        pipeline: str = "fast",
        num_workers: int | None = None,
        normalization: str = "standardize",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir or os.environ.get(self.env_var) or f"data/{self.name}")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.data_dir)
        lookup({name: name for name in SOURCES}, source, "data source")
        lookup({name: name for name in PIPELINES}, pipeline, "data pipeline")
        lookup(NORMALIZATIONS, normalization, "input normalization")
        if num_workers is not None:
            check_range("num_workers", num_workers, 0)
        check_range("batch_size", batch_size, 1)
        check_range("eval_batch_size", eval_batch_size, 1)
        if val_fraction is not None:
            check_range("val_fraction", val_fraction, 0.0, 1.0, low_inclusive=False,
                        high_inclusive=False)
        if subset_fraction is not None and subset_per_class is not None:
            raise ConfigError("give at most one of subset_fraction and subset_per_class")
        if subset_fraction is not None:
            check_range("subset_fraction", subset_fraction, 0.0, 1.0, low_inclusive=False)
        if subset_per_class is not None:
            check_range("subset_per_class", subset_per_class, 1)
        if imbalance_ratio is not None:
            check_range("imbalance_ratio", imbalance_ratio, 0.0, 1.0, low_inclusive=False)
        self.uses_folder = source == "folder" or (
            source == "auto" and (self.data_dir / "train").is_dir())
        if source == "torchvision" and self.torchvision_class is None:
            raise ConfigError(f"{type(self).__name__} has no torchvision source; "
                              f"use --data.source folder")
        # Cheap layout checks now, so a wrong path fails before anything is written.
        self.source_classes: list[str] = list(self.default_classes)  # all, in label order
        self._folder_image_shape: tuple[int, ...] | None = None  # (H, W, C)
        if self.uses_folder:
            self.source_classes = check_folder_layout(self.data_dir)
            first = list_image_files(self.data_dir / "train" / self.source_classes[0])[0]
            self._folder_image_shape = decode_image(first.path).shape
        if classes is not None:
            check_class_selection(classes, self.source_classes or None)
        # The classes used, in label order (the selection, else every source class).
        self.classes: list[str] = list(classes) if classes is not None else self.source_classes
        self.augmentations = build_augmentations(augment, self.num_classes)
        if pipeline == "classic":
            check_per_image(self.augmentations)
        self._loaded: dict[str, ImageSet] = {}
        self.mean: torch.Tensor | None = None  # [C], in [0, 1] units, training split only
        self.std: torch.Tensor | None = None
        self.split_indices: dict[str, torch.Tensor] = {}
        # Normalization constants on the batches' device, copied there once.
        self._normalization: dict[tuple[torch.device, bool], tuple[torch.Tensor, ...]] = {}

    # -- shape of the data, known before setup (the CLI links these into the model) --

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else self.default_num_classes

    @property
    def in_channels(self) -> int:
        shape = self._folder_image_shape
        return shape[2] if shape else self.default_channels

    @property
    def image_size(self) -> int:
        shape = self._folder_image_shape
        if shape and shape[0] != shape[1]:
            raise DataError(f"images in {self.data_dir} are {shape[1]}x{shape[0]}; "
                            f"the networks here take square images")
        return shape[0] if shape else self.default_image_size

    # -- loading --

    def _load_split(self, split: str) -> ImageSet:
        if split not in self._loaded:
            if self.uses_folder:
                self._loaded[split] = load_folder_split(self.data_dir, split,
                                                        self.source_classes, self.cache_dir)
            else:
                self._loaded[split] = load_torchvision_split(
                    self.torchvision_class, self.data_dir, train=split == "train",
                    download=self.hparams.download, display_name=self.display_name,
                    env_var=self.env_var)
        return self._loaded[split]

    def prepare_data(self) -> None:
        # Runs on one process per node: downloads, decodes and writes the cache once. It
        # also builds the splits, so a data problem stops the run before Lightning's setup
        # creates the log folder; the other processes build them in `setup`.
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.mean is not None:
            return  # fit, then test: the data are already in place
        hp = self.hparams
        train, test = self._load_split("train"), self._load_split("test")
        self.source_classes = train.classes
        if test.classes != train.classes:
            raise DataError(f"train and test classes differ in {self.data_dir}")
        if test.images.shape[1:] != train.images.shape[1:]:
            raise DataError(f"test images in {self.data_dir} are {describe_shape(test.images)} "
                            f"but training images are {describe_shape(train.images)}; both "
                            f"splits must share image size and mode")
        # Every index below points into the full original training set.
        pool_idx, pool_labels = torch.arange(len(train.labels)), train.labels
        if hp.classes is not None:
            check_class_selection(hp.classes, self.source_classes)
            keep = [self.source_classes.index(name) for name in hp.classes]
            pool_idx, pool_labels = class_subset_indices(train.labels, keep)
            test_idx, test_labels = class_subset_indices(test.labels, keep)
            test = ImageSet(test.images[test_idx], test_labels, list(hp.classes))
        self.classes = list(hp.classes) if hp.classes is not None else self.source_classes
        if hp.imbalance_ratio is not None:
            chosen = imbalanced_subset(pool_labels, hp.imbalance_ratio, hp.split_seed)
            pool_idx, pool_labels = pool_idx[chosen], pool_labels[chosen]
        train_pos = torch.arange(len(pool_labels))
        val_pos = torch.empty(0, dtype=torch.int64)
        if hp.val_fraction is not None:
            train_pos, val_pos = stratified_split(pool_labels, hp.val_fraction, hp.split_seed)
        if hp.subset_fraction is not None or hp.subset_per_class is not None:
            chosen = stratified_subset(pool_labels[train_pos], fraction=hp.subset_fraction,
                                       per_class=hp.subset_per_class, seed=hp.split_seed,
                                       class_names=self.classes)
            train_pos = train_pos[chosen]
        self._check_every_class_trains(pool_labels[train_pos], pool_labels)
        train_idx, val_idx = pool_idx[train_pos], pool_idx[val_pos]
        self.split_indices = {"train": train_idx, "val": val_idx}
        self.train_set = ImageSet(train.images[train_idx], pool_labels[train_pos], self.classes)
        self.val_set = ImageSet(train.images[val_idx], pool_labels[val_pos], self.classes)
        self.test_set = test
        self.mean, self.std = channel_stats(self.train_set.images)

    def _check_every_class_trains(self, train_labels: torch.Tensor,
                                  pool_labels: torch.Tensor) -> None:
        """A class with no training image (all taken by the validation split, or none to
        begin with) would make the run meaningless: refuse it before training."""
        counts = torch.bincount(train_labels, minlength=len(self.classes))
        empty = [name for name, count in zip(self.classes, counts.tolist(), strict=True)
                 if count == 0]
        if not empty:
            return
        available = torch.bincount(pool_labels, minlength=len(self.classes))
        name = empty[0]
        have = available[self.classes.index(name)].item()
        which = "every class" if len(empty) == len(self.classes) else f"class {name!r}"
        raise DataError(f"no training images left for {which} ({have} image(s) before the "
                        f"validation split, val_fraction={self.hparams.val_fraction}); lower "
                        f"--data.val_fraction or give more images")

    @property
    def has_validation(self) -> bool:
        return self.hparams.val_fraction is not None

    # -- batches --

    def _loader(self, image_set: ImageSet, batch_size: int,
                train: bool) -> TensorBatchLoader | DataLoader:
        trainer = self.trainer
        if self.hparams.pipeline == "classic":
            return self._classic_loader(image_set, batch_size, train)
        device = torch.device("cpu")
        if trainer is not None and self.hparams.device_resident:
            device = trainer.strategy.root_device
        return TensorBatchLoader(
            image_set.images.to(device), image_set.labels.to(device), batch_size,
            shuffle=train, seed=self.hparams.split_seed,
            drop_last=train and self.hparams.drop_last,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            epoch_fn=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
        )

    def _classic_loader(self, image_set: ImageSet, batch_size: int, train: bool) -> DataLoader:
        trainer = self.trainer
        augmentations = self.augmentations if train else build_augmentations([], self.num_classes)
        transform = per_image_transform(augmentations, self.image_size,
                                        *self.normalization_constants())
        workers = self.hparams.num_workers
        if workers is None:
            workers = min(8, os.cpu_count() or 1)
        return classic_loader(
            image_set.images, image_set.labels, transform, batch_size, train, workers,
            drop_last=self.hparams.drop_last, world_size=trainer.world_size if trainer else 1,
            pin_memory=trainer is not None and trainer.strategy.root_device.type == "cuda")

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader(self.train_set, self.hparams.batch_size, train=True)

    def val_dataloader(self) -> TensorBatchLoader | list:
        if not self.has_validation:
            return []
        return self._loader(self.val_set, self.hparams.eval_batch_size, train=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size, train=False)

    def predict_dataloader(self) -> TensorBatchLoader:
        return self.test_dataloader()

    def normalization_constants(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, divisor) [C] in 0..1 units: inputs are (x - shift) / divisor."""
        return normalization_constants(self.hparams.normalization, self.mean, self.std)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) [B, C, H, W] -> float32, scaled as
        `normalization` says (by default standardized with the training-split statistics)."""
        in_float = images.is_floating_point()  # augmented in float: 0..1 units
        key = (images.device, in_float)
        if key not in self._normalization:  # a copy to the device once, not every batch
            scale = 1.0 if in_float else 255.0
            self._normalization[key] = tuple((stat * scale).to(images.device)[None, :, None, None]
                                             for stat in self.normalization_constants())
        shift, divisor = self._normalization[key]
        return (images.float() - shift) / divisor

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.hparams.pipeline == "classic":
            return batch  # augmented and normalized per image in the DataLoader workers
        images, targets = batch
        if self.trainer is not None and self.trainer.training:
            # targets: labels [B] int, or soft [B, num_classes] after mixup/cutmix/mosaic
            images, targets = self.augmentations(images, targets)
        images = self.normalize(images)
        if self.trainer is not None:
            # Lightning casts float inputs for "16-true"/"bf16-true" before this hook, when
            # ours were still uint8: cast the normalized images the same way.
            images = self.trainer.precision_plugin.convert_input(images)
        return images, targets

    # -- provenance: saved in checkpoints and with each run --

    def data_record(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir.resolve()),
            "source": "folder" if self.uses_folder else "torchvision",
            "classes": self.classes,
            "mean": [round(v, 6) for v in self.mean.tolist()],
            "std": [round(v, 6) for v in self.std.tolist()],
            "num_train": len(self.train_set.labels),
            "num_val": len(self.val_set.labels),
            "num_test": len(self.test_set.labels),
            "train_class_counts": torch.bincount(self.train_set.labels,
                                                 minlength=len(self.classes)).tolist(),
        }

    def state_dict(self) -> dict[str, Any]:
        if self.mean is None:
            return {}
        return {"mean": self.mean.clone(), "std": self.std.clone(),
                "train_indices": self.split_indices["train"].clone(),
                "val_indices": self.split_indices["val"].clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Resuming must continue on the very same split; refuse silently different data.
        if not state_dict or self.mean is None:
            return
        same = (torch.equal(state_dict["train_indices"], self.split_indices["train"])
                and torch.equal(state_dict["val_indices"], self.split_indices["val"])
                and torch.allclose(state_dict["mean"], self.mean))
        if not same:
            raise DataError("the checkpoint was trained on a different data split or data "
                            "(split indices or statistics differ); use the same --data "
                            "settings and data_dir as the original run")
