"""FashionMNIST: 60,000 training and 10,000 test images, 28x28 grayscale, 10 classes."""

from typing import ClassVar

import torchvision

from src.datamodules.base import ImageDataModule


class FashionMNISTDataModule(ImageDataModule):
    __doc__ = ImageDataModule.__doc__
    name: ClassVar[str] = "fashion_mnist"
    display_name: ClassVar[str] = "FashionMNIST"
    env_var: ClassVar[str] = "FASHION_MNIST_DIR"
    torchvision_class: ClassVar[type] = torchvision.datasets.FashionMNIST
    default_num_classes: ClassVar[int] = 10
    default_channels: ClassVar[int] = 1
    default_image_size: ClassVar[int] = 28
    default_classes: ClassVar[tuple[str, ...]] = tuple(torchvision.datasets.FashionMNIST.classes)
