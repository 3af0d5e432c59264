from src.datamodules.base import ImageDataModule
from src.datamodules.cifar10 import CIFAR10DataModule
from src.datamodules.fashion_mnist import FashionMNISTDataModule

__all__ = ["CIFAR10DataModule", "FashionMNISTDataModule", "ImageDataModule"]
