"""CIFAR-10: 50,000 training and 10,000 test images, 32x32 RGB, 10 classes."""

from typing import ClassVar

import torchvision

from src.datamodules.base import ImageDataModule

# Published statistics of the full training set (for reference and tests; the
# datamodule always computes them from its own training split).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class CIFAR10DataModule(ImageDataModule):
    __doc__ = ImageDataModule.__doc__
    name: ClassVar[str] = "cifar10"
    display_name: ClassVar[str] = "CIFAR-10"
    env_var: ClassVar[str] = "CIFAR10_DIR"
    torchvision_class: ClassVar[type] = torchvision.datasets.CIFAR10
    default_num_classes: ClassVar[int] = 10
    default_channels: ClassVar[int] = 3
    default_image_size: ClassVar[int] = 32
    default_classes: ClassVar[tuple[str, ...]] = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )
