"""On the real Fashion-MNIST (image folders named by $FASHION_MNIST_DIR); skipped without it."""

import pytest
import torch

from experiments import fashion_mnist_mlp
from src.datamodules import FashionMNISTDataModule

pytestmark = pytest.mark.realdata

# Xiao, Rasul and Vollgraf (2017); torchvision's FashionMNIST.classes, in label order.
CLASSES = ["0_t-shirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal",
           "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"]


def test_full_training_set_has_the_published_statistics_and_counts(fashion_mnist_dir):
    dm = FashionMNISTDataModule(data_dir=str(fashion_mnist_dir), val_fraction=None)
    dm.setup("fit")
    assert dm.classes == CLASSES  # class folders sort into label order
    assert tuple(dm.train_set.images.shape) == (60_000, 1, 28, 28)
    assert torch.bincount(dm.train_set.labels).tolist() == [6000] * 10
    assert torch.bincount(dm.test_set.labels).tolist() == [1000] * 10
    # Published: mean 0.2860, std 0.3530 of the training pixels in [0, 1].
    assert round(dm.mean.item(), 4) == 0.2860
    assert round(dm.std.item(), 4) == 0.3530


@pytest.mark.slow
def test_mlp_learns_fashion_mnist_well_above_chance(fashion_mnist_dir, tmp_path):
    results = fashion_mnist_mlp.main([
        "--data.data_dir", str(fashion_mnist_dir), "--data.subset_per_class", "500",
        "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false"])
    assert results["test/acc"] >= 0.75  # chance is 0.10; this subset gives about 0.8
