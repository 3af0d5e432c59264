"""The workflow tools on the real CIFAR-10 (image folders named by $CIFAR10_DIR)."""

import pytest

from experiments import cifar_mlp, explore_data
from src.datamodules.cifar10 import CIFAR10_MEAN, CIFAR10_STD

pytestmark = pytest.mark.realdata


def test_explore_data_on_cifar10_gives_the_published_numbers(cifar10_dir, tmp_path):
    summary = explore_data.main(["--data.data_dir", str(cifar10_dir), "--data.val_fraction",
                                 "null", "--out_dir", str(tmp_path)])
    assert (len(summary.classes), summary.channels, summary.height, summary.width) == \
        (10, 3, 32, 32)
    assert summary.class_counts == {"train": [5000] * 10, "val": [0] * 10,
                                    "test": [1000] * 10}
    assert summary.mean == pytest.approx(CIFAR10_MEAN, abs=5e-5)
    assert summary.std == pytest.approx(CIFAR10_STD, abs=5e-5)
    assert summary.pixel_min == [0, 0, 0] and summary.pixel_max == [255, 255, 255]


@pytest.mark.slow
def test_the_mlp_recipe_memorizes_one_real_batch(cifar10_dir, tmp_path, capsys):
    results = cifar_mlp.main([
        "--data.data_dir", str(cifar10_dir), "--data.batch_size", "64",
        "--overfit.mode", "one_batch", "--overfit.steps", "150",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    assert results["overfit/reached_100"] == 1.0
    assert "Overfit one batch (64 training images)" in capsys.readouterr().out
