"""--data.normalization: one registry, the same tensors on the fast and the classic path."""

import pytest
import torch

from src.core.errors import ConfigError
from src.datamodules import CIFAR10DataModule


def val_batches(image_folder, normalization: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first validation batch of the fast path and of the classic path."""
    batches = []
    for pipeline in ("fast", "classic"):
        dm = CIFAR10DataModule(data_dir=str(image_folder), pipeline=pipeline, num_workers=0,
                               augment=[], normalization=normalization)
        dm.setup("fit")
        batch = next(iter(dm.val_dataloader()))
        images, _ = dm.on_after_batch_transfer(batch, 0)
        batches.append(images)
    return batches[0], batches[1]


@pytest.mark.parametrize("normalization", ["standardize", "unit", "none"])
def test_fast_and_classic_paths_scale_the_pixels_the_same_way(image_folder, normalization):
    fast, classic = val_batches(image_folder, normalization)
    assert fast.dtype == classic.dtype == torch.float32
    assert torch.allclose(fast, classic, atol=1e-4 if normalization == "none" else 1e-5)


def test_each_normalization_gives_its_range(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), augment=[], normalization="none")
    dm.setup("fit")
    raw = dm.val_set.images[:8]  # uint8 [8, 3, 32, 32]
    as_float = raw.float()
    assert torch.equal(dm.normalize(raw), as_float)  # none: the pixel values, 0..255
    dm.hparams.normalization = "unit"
    dm._normalization.clear()
    assert torch.allclose(dm.normalize(raw), as_float / 255)
    dm.hparams.normalization = "standardize"
    dm._normalization.clear()
    standardized = dm.normalize(dm.train_set.images)
    # The training split's own statistics: mean 0 and std 1 per channel.
    assert torch.allclose(standardized.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(standardized.std(dim=(0, 2, 3), correction=0), torch.ones(3),
                          atol=1e-3)


def test_standardize_is_the_default(image_folder):
    default = CIFAR10DataModule(data_dir=str(image_folder), augment=[])
    assert default.hparams.normalization == "standardize"


def test_unknown_normalization_fails_with_the_choices(image_folder):
    with pytest.raises(ConfigError, match="unknown input normalization 'zscore'; choose one of: "
                                          "none, standardize, unit"):
        CIFAR10DataModule(data_dir=str(image_folder), normalization="zscore")
