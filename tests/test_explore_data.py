"""explore_data: the numbers it reports are the datamodule's, and its files are written."""

import json

import pytest
import torch
from PIL import Image

from experiments import explore_data
from src.datamodules import CIFAR10DataModule
from tests.conftest import CLASS_NAMES


def test_explore_data_reports_the_datamodules_numbers_and_writes_files(
        image_folder, tmp_path, capsys):
    out_dir = tmp_path / "explore"
    summary = explore_data.main([
        "--dataset", "cifar10", "--data.data_dir", str(image_folder),
        "--data.val_fraction", "0.25", "--out_dir", str(out_dir),
        "--samples_per_class", "3"])

    reference = CIFAR10DataModule(data_dir=str(image_folder), val_fraction=0.25)
    reference.prepare_data()
    reference.setup("fit")
    assert summary.classes == CLASS_NAMES
    assert (summary.channels, summary.height, summary.width, summary.dtype) == (3, 32, 32, "uint8")
    assert summary.class_counts == {
        "train": torch.bincount(reference.train_set.labels).tolist(),  # [18] * 4
        "val": torch.bincount(reference.val_set.labels).tolist(),  # [6] * 4
        "test": [8, 8, 8, 8]}
    assert summary.class_counts["val"] == [6] * 4
    assert summary.mean == pytest.approx(reference.mean.tolist(), abs=1e-6)
    assert summary.std == pytest.approx(reference.std.tolist(), abs=1e-6)
    train = reference.train_set.images
    assert summary.pixel_min == train.amin(dim=(0, 2, 3)).tolist()
    assert summary.pixel_max == train.amax(dim=(0, 2, 3)).tolist()

    saved = json.loads((out_dir / "data_summary.json").read_text())
    assert saved["class_counts"] == summary.class_counts
    assert saved["mean"] == pytest.approx(summary.mean)
    markdown = (out_dir / "data_summary.md").read_text()
    assert "| class0 | 18 | 6 | 8 |" in markdown and "| **total** | 72 | 24 | 32 |" in markdown
    assert f"{summary.mean[0]:.4f}" in markdown
    for name in ("samples.png", "class_histogram.png"):
        with Image.open(out_dir / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert str(out_dir) in capsys.readouterr().out


def test_explore_data_unknown_dataset_is_one_line(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        explore_data.main(["--dataset", "mnist", "--data.data_dir", str(image_folder),
                           "--out_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown data set 'mnist'; choose one of: cifar10, fashion_mnist")
    assert not (tmp_path / "out").exists()
