"""ImageDataModule: a whole image data set held as uint8 tensors, batched by indexing.

Pipeline: load the train and test splits as uint8 tensors (decoded once, cached) ->
stratified validation split of the training images -> optional stratified subset of the
rest -> per-channel mean/std of that training subset only -> batches by index
(`TensorBatchLoader`) -> on the device: augmentation (training only), then normalization
(`on_after_batch_transfer`).
"""

import os
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from src.datamodules.augment import build_augmentations
from src.datamodules.sources import (
    ImageSet,
    check_folder_layout,
    decode_image,
    list_image_files,
    load_folder_split,
    load_torchvision_split,
)
from src.datamodules.splits import stratified_split, stratified_subset
from src.datamodules.tensor_loader import TensorBatchLoader
from src.errors import ConfigError, DataError, check_range, lookup

SOURCES = ("auto", "folder", "torchvision")


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
        split_seed: seed of the validation split, the subset and the shuffle order.
        augment: training-batch augmentations, applied in order: "crop", "flip".
        crop_padding: zero padding (pixels) before the random crop.
        flip_prob: probability of a horizontal flip.
        device_resident: keep the uint8 images on the training device (no host-to-device
            copy per batch).
        cache_dir: where decoded image folders are cached; default <data_dir>/.cache.
        drop_last: drop the last incomplete training batch of each epoch.
    """

    name: ClassVar[str] = "images"
    display_name: ClassVar[str] = "image data set"
    env_var: ClassVar[str] = "IMAGE_DATA_DIR"
    torchvision_class: ClassVar[type | None] = None
    default_num_classes: ClassVar[int] = 10
    default_channels: ClassVar[int] = 3
    default_image_size: ClassVar[int] = 32

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
        split_seed: int = 0,
        augment: tuple[str, ...] = ("crop", "flip"),
        crop_padding: int = 4,
        flip_prob: float = 0.5,
        device_resident: bool = True,
        cache_dir: str | None = None,
        drop_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir or os.environ.get(self.env_var) or f"data/{self.name}")
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / ".cache"
        lookup({name: name for name in SOURCES}, source, "data source")
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
        self.augmentations = build_augmentations(augment, crop_padding, flip_prob)
        self.uses_folder = source == "folder" or (
            source == "auto" and (self.data_dir / "train").is_dir())
        if source == "torchvision" and self.torchvision_class is None:
            raise ConfigError(f"{type(self).__name__} has no torchvision source; "
                              f"use --data.source folder")
        # Cheap layout checks now, so a wrong path fails before anything is written.
        self.classes: list[str] = []
        self._folder_image_shape: tuple[int, ...] | None = None  # (H, W, C)
        if self.uses_folder:
            self.classes = check_folder_layout(self.data_dir)
            first = list_image_files(self.data_dir / "train" / self.classes[0])[0]
            self._folder_image_shape = decode_image(first.path).shape
        self._loaded: dict[str, ImageSet] = {}
        self.mean: torch.Tensor | None = None  # [C], in [0, 1] units, training split only
        self.std: torch.Tensor | None = None
        self.split_indices: dict[str, torch.Tensor] = {}

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
                self._loaded[split] = load_folder_split(self.data_dir, split, self.classes,
                                                        self.cache_dir)
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
        self.classes = train.classes
        if test.classes != train.classes:
            raise DataError(f"train and test classes differ in {self.data_dir}")
        if test.images.shape[1:] != train.images.shape[1:]:
            raise DataError(f"test images in {self.data_dir} are {describe_shape(test.images)} "
                            f"but training images are {describe_shape(train.images)}; both "
                            f"splits must share image size and mode")
        train_idx = torch.arange(len(train.labels))
        val_idx = torch.empty(0, dtype=torch.int64)
        if hp.val_fraction is not None:
            train_idx, val_idx = stratified_split(train.labels, hp.val_fraction, hp.split_seed)
        if hp.subset_fraction is not None or hp.subset_per_class is not None:
            chosen = stratified_subset(train.labels[train_idx], fraction=hp.subset_fraction,
                                       per_class=hp.subset_per_class, seed=hp.split_seed,
                                       class_names=self.classes)
            train_idx = train_idx[chosen]
        self.split_indices = {"train": train_idx, "val": val_idx}
        self.train_set = ImageSet(train.images[train_idx], train.labels[train_idx], self.classes)
        self.val_set = ImageSet(train.images[val_idx], train.labels[val_idx], self.classes)
        self.test_set = test
        self.mean, self.std = channel_stats(self.train_set.images)

    @property
    def has_validation(self) -> bool:
        return self.hparams.val_fraction is not None

    # -- batches --

    def _loader(self, image_set: ImageSet, batch_size: int, train: bool) -> TensorBatchLoader:
        trainer = self.trainer
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

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> float32, standardized with the training-split statistics."""
        mean = (self.mean * 255).to(images.device)[None, :, None, None]
        std = (self.std * 255).to(images.device)[None, :, None, None]
        return (images.float() - mean) / std

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            images = self.augmentations(images)
        images = self.normalize(images)
        if self.trainer is not None:
            # Lightning casts float inputs for "16-true"/"bf16-true" before this hook, when
            # ours were still uint8: cast the normalized images the same way.
            images = self.trainer.precision_plugin.convert_input(images)
        return images, labels

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
