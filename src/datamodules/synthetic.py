"""Random uint8 images of a chosen shape: the data of throughput benchmarks and of tests
that need many images without files. Nothing to learn (labels are random)."""

from typing import Any

import torch

from src.core.errors import check_range
from src.datamodules.base import ImageDataModule
from src.datamodules.sources import ImageSet


class SyntheticImageDataModule(ImageDataModule):
    """An `ImageDataModule` whose splits are seeded random uint8 images and labels.

    Args:
        num_train: training images (before the validation split).
        num_test: test images.
        num_classes: number of classes.
        channels: image channels.
        image_size: image height = width in pixels.
        **kwargs: every `ImageDataModule` setting (batch_size, pipeline, augment, ...).
    """

    name = "synthetic"
    display_name = "synthetic images"

    def __init__(self, num_train: int = 50_000, num_test: int = 10_000, num_classes: int = 10,
                 channels: int = 3, image_size: int = 32, **kwargs: Any):
        check_range("num_train", num_train, 2)
        check_range("num_test", num_test, 1)
        check_range("num_classes", num_classes, 2)
        # Instance values in place of the class defaults the base class reads.
        self.default_num_classes = num_classes
        self.default_channels = channels
        self.default_image_size = image_size
        self.sizes = {"train": num_train, "test": num_test}
        super().__init__(**kwargs)

    def _load_split(self, split: str) -> ImageSet:
        if split not in self._loaded:
            generator = torch.Generator().manual_seed(1 if split == "train" else 2)
            count, size = self.sizes[split], self.default_image_size
            images = torch.randint(0, 256, (count, self.default_channels, size, size),
                                   dtype=torch.uint8, generator=generator)
            labels = torch.randint(0, self.default_num_classes, (count,), generator=generator)
            classes = [f"class{i}" for i in range(self.default_num_classes)]
            self._loaded[split] = ImageSet(images, labels, classes)
        return self._loaded[split]
