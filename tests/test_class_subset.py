"""Class subsets (relabeled 0..k-1) and class imbalance of the training split."""

import pytest
import torch

from src.core.errors import ConfigError
from src.datamodules.cifar10 import CIFAR10DataModule

# The fixture's class i has mean pixel value about 60 + 40 * i (see conftest).


def class_of(images: torch.Tensor) -> torch.Tensor:
    """The fixture class each image [N, C, H, W] was drawn from, read off its mean colour."""
    return ((images.float().mean(dim=(1, 2, 3)) - 60) / 40).round().long()


def datamodule(folder, **settings) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(data_dir=str(folder), device_resident=False, **settings)
    dm.setup()
    return dm


def test_class_subset_relabels_in_the_given_order(image_folder):
    dm = datamodule(image_folder, classes=["class2", "class0"], val_fraction=0.25)
    assert dm.num_classes == 2
    assert dm.classes == ["class2", "class0"]
    source_class = torch.tensor([2, 0])
    for image_set, per_class in ((dm.train_set, 18), (dm.val_set, 6), (dm.test_set, 8)):
        assert torch.bincount(image_set.labels).tolist() == [per_class, per_class]
        assert torch.equal(class_of(image_set.images), source_class[image_set.labels])
    assert dm.data_record()["classes"] == ["class2", "class0"]
    assert dm.data_record()["train_class_counts"] == [18, 18]


def test_num_classes_reflects_the_subset_before_setup(image_folder):
    dm = CIFAR10DataModule(data_dir=str(image_folder), classes=["class1", "class3", "class0"])
    assert dm.num_classes == 3
    # Without a folder the torchvision class names are known before loading.
    assert CIFAR10DataModule(data_dir="/nonexistent", classes=["cat", "dog"]).num_classes == 2


@pytest.mark.parametrize(("classes", "message"), [
    (["class0", "dog"], "unknown class 'dog'; the data set's classes are: "
                        "class0, class1, class2, class3"),
    (["class0"], "selects 1 class"),
    (["class0", "class1", "class0"], "lists class0 more than once"),
])
def test_bad_class_selection_fails_at_construction(image_folder, classes, message):
    with pytest.raises(ConfigError, match=message) as error:
        CIFAR10DataModule(data_dir=str(image_folder), classes=classes)
    assert "\n" not in str(error.value)


def test_unknown_torchvision_class_lists_the_cifar10_names():
    with pytest.raises(ConfigError, match="unknown class 'cats'; the data set's classes are: "
                                          "airplane, automobile, bird, cat, deer"):
        CIFAR10DataModule(data_dir="/nonexistent", source="torchvision", classes=["cats", "dog"])


def test_imbalance_ratio_keeps_that_fraction_of_every_class_after_the_first(image_folder):
    dm = datamodule(image_folder, classes=["class1", "class3"], imbalance_ratio=0.5,
                    val_fraction=None)
    assert torch.bincount(dm.train_set.labels).tolist() == [24, 12]
    assert torch.bincount(dm.test_set.labels).tolist() == [8, 8]  # test stays balanced
    assert torch.equal(class_of(dm.train_set.images), torch.tensor([1, 3])[dm.train_set.labels])


def test_validation_keeps_the_training_class_ratio(image_folder):
    dm = datamodule(image_folder, imbalance_ratio=0.25, val_fraction=0.25)
    # Pool per class: 24, 6, 6, 6; a quarter of each is held out for validation.
    assert torch.bincount(dm.train_set.labels).tolist() == [18, 4, 4, 4]  # 6 - round(1.5)
    assert torch.bincount(dm.val_set.labels).tolist() == [6, 2, 2, 2]
    assert torch.bincount(dm.test_set.labels).tolist() == [8, 8, 8, 8]


def test_imbalanced_subset_is_seeded(image_folder):
    first = datamodule(image_folder, imbalance_ratio=0.5, split_seed=1)
    again = datamodule(image_folder, imbalance_ratio=0.5, split_seed=1)
    other = datamodule(image_folder, imbalance_ratio=0.5, split_seed=2)
    assert torch.equal(first.split_indices["train"], again.split_indices["train"])
    assert not torch.equal(first.split_indices["train"], other.split_indices["train"])


def test_imbalance_ratio_out_of_range_fails(image_folder):
    with pytest.raises(ConfigError, match="imbalance_ratio=0.0 is out of range"):
        CIFAR10DataModule(data_dir=str(image_folder), imbalance_ratio=0.0)
