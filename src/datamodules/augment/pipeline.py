"""Training-batch augmentations chosen by name: the `AUGMENTATIONS` registry and the pipeline.

A recipe lists them in order (`data.augment`), each item a name (default parameters) or
a mapping `{name: ..., <param>: value}`:

    augment: [crop, flip, {name: cutout, size: 8}, {name: mixup, alpha: 0.2}]

They run in `ImageDataModule.on_after_batch_transfer`, on the device, for the whole batch
at once, each image with its own random draw from torch's global generator of the batch's
device (seeded by `seed_everything`). The policy augmentations (autoaugment, randaugment,
trivialaugment) are the exception: torchvision draws once per call, so they loop over the
images (slower). `noise` runs kornia's RandomGaussianNoise (`KorniaAugmentation`); the
others are our own code, each kept for a measured reason said next to it (issue 11,
`python -m experiments.benchmark --augmentations`). Label-mixing ones (mixup, cutmix,
mosaic) turn the integer labels [B] into soft targets [B, num_classes].

Dtype: batches arrive as uint8 (0..255). Pure pixel moves (crop, flip, erasing, cutout,
cutmix, mosaic, the policies) keep uint8; the pipeline converts to float (0..1)
once, just before the first augmentation that needs float arithmetic, and the batch stays
float from there on. Normalization, after the augmentations, accepts either.
"""

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.core.errors import ConfigError, lookup
from src.datamodules.augment.base import LabelMixing, to_float
from src.datamodules.augment.color import (
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    RandomGrayscale,
    RandomRGBShift,
)
from src.datamodules.augment.erase import Cutout, RandomErasing
from src.datamodules.augment.geometric import (
    RandomAffine,
    RandomCropWithPadding,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
)
from src.datamodules.augment.mix import CutMix, MixUp, Mosaic
from src.datamodules.augment.policy import AutoAugment, RandAugment, TrivialAugment

# name -> builder; the builder's keyword arguments are the parameters a config may set.
AUGMENTATIONS: dict[str, type[nn.Module]] = {
    "crop": RandomCropWithPadding,
    "resized_crop": RandomResizedCrop,
    "flip": RandomHorizontalFlip,
    "rotate": RandomRotation,
    "affine": RandomAffine,
    "color_jitter": ColorJitter,
    "grayscale": RandomGrayscale,
    "rgb_shift": RandomRGBShift,
    "noise": GaussianNoise,
    "blur": GaussianBlur,
    "erasing": RandomErasing,
    "cutout": Cutout,
    "autoaugment": AutoAugment,
    "randaugment": RandAugment,
    "trivialaugment": TrivialAugment,
    "mixup": MixUp,
    "cutmix": CutMix,
    "mosaic": Mosaic,
}

AugmentSpec = str | Mapping[str, Any]


def parameter_defaults(name: str) -> dict[str, Any]:
    """The parameters of augmentation `name` and their default values."""
    builder = lookup(AUGMENTATIONS, name, "augmentation")
    return {parameter.name: parameter.default
            for parameter in inspect.signature(builder).parameters.values()}


def build_augmentation(spec: AugmentSpec) -> nn.Module:
    """One augmentation from a name or a mapping {name: ..., <param>: value}."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ConfigError(f"augmentation {spec!r} must be a name or a mapping with a 'name' "
                          f"key, e.g. {{name: crop, padding: 4}}")
    builder = lookup(AUGMENTATIONS, name, "augmentation")
    known = {parameter: parameter for parameter in parameter_defaults(name)}
    for parameter in params:
        lookup(known, parameter, f"parameter of augmentation {name!r}:")
    try:
        return builder(**params)
    except ConfigError as error:
        raise ConfigError(f"augmentation {name!r}: {error}") from None
    except (TypeError, ValueError) as error:  # e.g. a word where a number belongs
        raise ConfigError(f"augmentation {name!r}: bad parameters {params!r} ({error})") from None


class AugmentationPipeline(nn.Module):
    """The chosen augmentations, in order: (images [B, C, H, W] uint8, labels [B] int)
    -> (images uint8 or float 0..1, targets: labels as given, or soft [B, num_classes]
    float when a label-mixing augmentation is in the list)."""

    def __init__(self, augmentations: Sequence[nn.Module], num_classes: int):
        super().__init__()
        self.augmentations = nn.ModuleList(augmentations)
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = labels
        for augmentation in self.augmentations:
            if augmentation.computes_in_float:
                images = to_float(images)  # once: later ones find it float already
            if isinstance(augmentation, LabelMixing):
                if targets.ndim == 1:
                    targets = F.one_hot(targets, self.num_classes).float()
                images, targets = augmentation(images, targets)
            else:
                images = augmentation(images)
        return images, targets

    def __len__(self) -> int:
        return len(self.augmentations)


def build_augmentations(specs: Sequence[AugmentSpec], num_classes: int) -> AugmentationPipeline:
    """Chain the listed augmentations, in the order given (empty: no augmentation)."""
    if isinstance(specs, str | Mapping):
        specs = [specs]
    return AugmentationPipeline([build_augmentation(spec) for spec in specs], num_classes)
