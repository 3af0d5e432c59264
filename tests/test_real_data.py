"""On the real CIFAR-10 (image folders named by $CIFAR10_DIR); skipped when it is absent."""

import csv

import pytest
import torch

from experiments import cifar_mlp
from src.datamodules import CIFAR10DataModule
from src.datamodules.cifar10 import CIFAR10_MEAN, CIFAR10_STD

pytestmark = pytest.mark.realdata


def test_full_training_set_statistics_equal_the_published_values(cifar10_dir):
    dm = CIFAR10DataModule(data_dir=str(cifar10_dir), val_fraction=None)
    dm.setup("fit")
    assert len(dm.train_set.labels) == 50_000 and len(dm.test_set.labels) == 10_000
    assert torch.bincount(dm.train_set.labels).tolist() == [5000] * 10
    assert dm.mean.tolist() == pytest.approx(CIFAR10_MEAN, abs=5e-5)
    assert dm.std.tolist() == pytest.approx(CIFAR10_STD, abs=5e-5)


def test_default_split_is_stratified_on_the_real_data(cifar10_dir):
    dm = CIFAR10DataModule(data_dir=str(cifar10_dir))
    dm.setup("fit")
    assert torch.bincount(dm.val_set.labels).tolist() == [500] * 10
    assert torch.bincount(dm.train_set.labels).tolist() == [4500] * 10


@pytest.mark.slow
def test_mlp_learns_cifar10_on_a_stratified_subset(cifar10_dir, tmp_path):
    root = tmp_path / "runs"
    results = cifar_mlp.main([
        "--data.data_dir", str(cifar10_dir), "--data.subset_per_class", "500",
        "--trainer.max_epochs", "3", "--trainer.default_root_dir", str(root),
        "--model.hidden_widths", "[256]", "--trainer.enable_progress_bar", "false",
    ])
    with open(root / "version_0" / "metrics.csv") as file:
        val_accuracies = [float(row["val/acc"]) for row in csv.DictReader(file)
                          if row["val/acc"]]
    assert len(val_accuracies) == 3
    assert max(val_accuracies) >= 0.35  # chance is 0.10
    assert results["test/acc"] >= 0.35
