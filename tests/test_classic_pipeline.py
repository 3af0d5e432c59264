"""The classic path (--data.pipeline classic): per-image torchvision transforms in a
DataLoader, equal to the fast path for the same draw."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as transforms_v1
from torchvision.transforms import v2

from experiments import cifar_resnet18
from src.core.errors import ConfigError
from src.datamodules import CIFAR10DataModule
from src.datamodules.augment import build_augmentations
from src.datamodules.augment.geometric import RandomCropWithPadding, RandomHorizontalFlip
from src.datamodules.classic import PILImages, classic_loader, per_image_transform
from tests.checks import assert_tested_checkpoint, best_checkpoint

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


class Training:  # what the datamodule asks of its trainer when augmenting
    training = True


def fast_path_candidates(dm: CIFAR10DataModule, image: torch.Tensor) -> torch.Tensor:
    """Every (crop offset, flip) outcome of the fast path for one image, normalized:
    [9 * 9 * 2, C, H, W]."""
    crop, padding = RandomCropWithPadding(padding=4), 4
    draws = list(itertools.product(range(2 * padding + 1), range(2 * padding + 1),
                                   (False, True)))
    top, left, flip = (torch.tensor(values) for values in zip(*draws, strict=True))
    batch = image.expand(len(draws), *image.shape)
    batch = RandomHorizontalFlip.flip(crop.crop(batch, top, left), flip)
    return dm.normalize(batch)


def test_classic_and_fast_paths_give_the_same_tensors_for_the_same_draw(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), pipeline="classic", num_workers=0,
                           augment=["crop", "flip"])
    dm.setup("fit")
    dataset = dm.train_dataloader().dataset
    torch.manual_seed(0)
    matched_draws = set()
    for index in range(12):
        classic_image, label = dataset[index]
        assert classic_image.dtype == torch.float32 and label == dm.train_set.labels[index]
        candidates = fast_path_candidates(dm, dm.train_set.images[index])
        distance = (candidates - classic_image).abs().flatten(1).amax(dim=1)
        assert distance.min() < 1e-5  # the same normalized tensor, for one of the draws
        matched_draws.add(int(distance.argmin()))
    assert len(matched_draws) > 1  # the classic path draws again for every image
    # Evaluation: no augmentation, the fast path's normalization.
    images, labels = next(iter(dm.val_dataloader()))
    expected = dm.normalize(dm.val_set.images[:len(labels)])
    assert torch.allclose(images, expected, atol=1e-5)
    assert torch.equal(labels, dm.val_set.labels[:len(labels)])


def test_pil_images_held_like_torchvision_cifar10_augment_like_the_fast_path(image_folder):
    # The Dataset of the common CIFAR scripts (the benchmark's classic loop): one uint8
    # array [N, H, W, C], a PIL image per item, then crop, flip, ToTensor, Normalize.
    dm = CIFAR10DataModule(data_dir=str(image_folder), augment=["crop", "flip"])
    dm.setup("fit")
    mean, std = dm.normalization_constants()
    dataset = PILImages(dm.train_set.images, dm.train_set.labels,
                        per_image_transform(dm.augmentations, 32, mean, std, pil_input=True))
    assert dataset.data.shape == (len(dm.train_set.labels), 32, 32, 3)
    assert dataset.data.dtype == np.uint8
    torch.manual_seed(0)
    for index in range(8):
        image, label = dataset[index]
        assert image.dtype == torch.float32 and label == int(dm.train_set.labels[index])
        candidates = fast_path_candidates(dm, dm.train_set.images[index])
        assert (candidates - image).abs().flatten(1).amax(dim=1).min() < 1e-5
    # Without augmentation: torchvision's own ToTensor and Normalize (transforms v1).
    plain = PILImages(dm.train_set.images, dm.train_set.labels,
                      per_image_transform(build_augmentations([], 4), 32, mean, std,
                                          pil_input=True))
    reference = transforms_v1.Compose([transforms_v1.ToTensor(),
                                       transforms_v1.Normalize(mean.tolist(), std.tolist())])
    assert torch.allclose(plain[3][0], reference(Image.fromarray(plain.data[3])), atol=1e-6)


def test_each_supported_augmentation_becomes_its_torchvision_transform(image_folder):
    dm = CIFAR10DataModule(
        data_dir=str(image_folder), pipeline="classic",
        augment=["crop", "flip", {"name": "color_jitter", "p": 0.5}, "noise", "erasing",
                 "autoaugment"])
    steps = per_image_transform(dm.augmentations, 32, torch.zeros(3), torch.ones(3)).transforms
    kinds = [type(step) for step in steps]
    assert kinds == [v2.RandomCrop, v2.RandomHorizontalFlip, v2.ToDtype, v2.RandomApply,
                     v2.GaussianNoise, v2.RandomErasing, v2.AutoAugment, v2.ToDtype,
                     v2.Normalize]
    assert steps[0].padding == [4, 4, 4, 4] and steps[3].p == 0.5
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = v2.Compose(steps)(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


@pytest.mark.parametrize("name", ["cutout", "mixup", "rgb_shift"])
def test_augmentations_without_a_per_image_transform_are_refused(image_folder, name):
    with pytest.raises(ConfigError, match=f"'{name}' has no per-image torchvision") as error:
        CIFAR10DataModule(data_dir=str(image_folder), pipeline="classic", augment=[name])
    assert "\n" not in str(error.value) and "crop" in str(error.value)


def test_unknown_pipeline_is_refused(image_folder):
    with pytest.raises(ConfigError, match="unknown data pipeline 'turbo'"):
        CIFAR10DataModule(data_dir=str(image_folder), pipeline="turbo")


def test_classic_loader_drops_a_final_single_image_training_batch():
    images, labels = torch.zeros(9, 3, 4, 4, dtype=torch.uint8), torch.arange(9)
    identity = v2.ToDtype(torch.float32, scale=True)
    train = classic_loader(images, labels, identity, 4, train=True, num_workers=0)
    evaluation = classic_loader(images, labels, identity, 4, train=False, num_workers=0)
    assert isinstance(train, DataLoader)
    assert [len(b[1]) for b in train] == [4, 4]
    assert [len(b[1]) for b in evaluation] == [4, 4, 1]


def test_cli_trains_on_the_classic_path(image_folder, tmp_path):
    results = cifar_resnet18.main([
        "--data.data_dir", str(image_folder), "--data.pipeline", "classic",
        "--data.num_workers", "1", "--data.batch_size", "16", "--trainer.max_epochs", "1",
        "--model.resnet_widths", "[4,8,8,8]", "--trainer.default_root_dir", str(tmp_path),
        *QUIET,
    ])
    # The classic path scales images per image in its workers: the test figures must
    # still be those of the best checkpoint with the scaling it recorded, by hand.
    assert_tested_checkpoint(results, best_checkpoint(tmp_path / "version_0"), image_folder)
