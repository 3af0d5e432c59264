"""Data set names on the command line -> datamodule classes (explore_data, evaluate).

The training entry points name their datamodule in code; the tools that work on any
data set pick it with `--dataset NAME` and take the datamodule's own flags as `--data.*`.
"""

from typing import Any

from src.core.errors import lookup
from src.datamodules.base import ImageDataModule
from src.datamodules.cifar10 import CIFAR10DataModule
from src.datamodules.fashion_mnist import FashionMNISTDataModule

DATAMODULES: dict[str, type[ImageDataModule]] = {
    "cifar10": CIFAR10DataModule,
    "fashion_mnist": FashionMNISTDataModule,
}


def datamodule_class(name: str) -> type[ImageDataModule]:
    return lookup(DATAMODULES, name, "data set")


def dataset_name_in_checkpoint(checkpoint: dict[str, Any]) -> str | None:
    """The registry name of the datamodule a checkpoint was trained with, if it says.

    Lightning stores a datamodule's state under its class name (e.g. "CIFAR10DataModule").
    """
    for name, cls in DATAMODULES.items():
        if cls.__qualname__ in checkpoint:
            return name
    return None
