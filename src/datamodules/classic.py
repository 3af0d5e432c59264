"""The classic data path (`--data.pipeline classic`): a torch Dataset that transforms one
image at a time with torchvision.transforms.v2, batched by a DataLoader with worker
processes, as most CIFAR code bases do.

It is the classic baseline to compare the fast path against, and the path for users who
want their own per-image transforms. The default fast path (`TensorBatchLoader`, batch
augmentations and normalization on the device) is much faster on a GPU.

The augmentations come from the same `data.augment` list: each maps onto the torchvision
v2 transform with the same rule and parameters (crop with padding = RandomCrop(padding),
flip = RandomHorizontalFlip, ...). Those without a per-image torchvision transform
(rgb_shift, cutout, and the batch-level mixup, cutmix, mosaic) are refused with one line.
Images stay uint8 tensors [C, H, W] until the first transform that computes in float,
then float 0..1; the last steps are ToDtype(float32, scale=True) and Normalize with the
training-split statistics (or the constants `--data.normalization` picks), the same
normalization as the fast path's.
"""

from collections.abc import Callable

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2

from src.core.errors import ConfigError
from src.datamodules.augment import AUGMENTATIONS, AugmentationPipeline
from src.datamodules.augment.color import (
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    RandomGrayscale,
)
from src.datamodules.augment.erase import RandomErasing
from src.datamodules.augment.geometric import (
    RandomAffine,
    RandomCropWithPadding,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
)
from src.datamodules.augment.policy import PerImagePolicy

INTERPOLATION_MODES = {"bilinear": InterpolationMode.BILINEAR,
                       "nearest": InterpolationMode.NEAREST}


def _maybe(transform: v2.Transform, p: float) -> v2.Transform:
    return transform if p == 1.0 else v2.RandomApply([transform], p=p)


# Batch augmentation class -> its per-image torchvision transform (built from the batch
# augmentation's checked parameters; `size` is the image side).
PER_IMAGE_TRANSFORMS: dict[type[nn.Module], Callable[[nn.Module, int], v2.Transform]] = {
    RandomCropWithPadding: lambda a, size: v2.RandomCrop(size, padding=a.padding),
    RandomHorizontalFlip: lambda a, size: v2.RandomHorizontalFlip(a.p),
    RandomResizedCrop: lambda a, size: v2.RandomResizedCrop(
        size, scale=a.scale, ratio=a.ratio, interpolation=INTERPOLATION_MODES[a.mode]),
    RandomRotation: lambda a, size: v2.RandomRotation(
        a.degrees, interpolation=INTERPOLATION_MODES[a.mode]),
    RandomAffine: lambda a, size: v2.RandomAffine(
        a.degrees, translate=a.translate, scale=a.scale, shear=a.shear,
        interpolation=INTERPOLATION_MODES[a.mode]),
    ColorJitter: lambda a, size: _maybe(v2.ColorJitter(
        brightness=a.brightness, contrast=a.contrast, saturation=a.saturation,
        hue=a.hue), a.p),
    RandomGrayscale: lambda a, size: v2.RandomGrayscale(a.p),
    GaussianNoise: lambda a, size: _maybe(v2.GaussianNoise(a.mean, a.sigma, clip=True), a.p),
    GaussianBlur: lambda a, size: _maybe(v2.GaussianBlur(a.kernel_size, a.sigma), a.p),
    RandomErasing: lambda a, size: v2.RandomErasing(a.p, a.scale, a.ratio, value=a.value),
}
# Need float 0..1 images in torchvision (our batch version also takes uint8).
FLOAT_ONLY = (RandomErasing,)


def supported_names() -> list[str]:
    """The augmentation names the classic path can apply."""
    return [name for name, cls in AUGMENTATIONS.items()
            if cls in PER_IMAGE_TRANSFORMS or issubclass(cls, PerImagePolicy)]


def check_per_image(augmentations: AugmentationPipeline) -> None:
    """Refuse, with one line, augmentations the classic path cannot apply per image."""
    for augmentation in augmentations.augmentations:
        if isinstance(augmentation, PerImagePolicy) or type(augmentation) in PER_IMAGE_TRANSFORMS:
            continue
        name = next(key for key, cls in AUGMENTATIONS.items() if type(augmentation) is cls)
        raise ConfigError(
            f"augmentation {name!r} has no per-image torchvision transform, so "
            f"--data.pipeline classic cannot apply it; use --data.pipeline fast or one of: "
            f"{', '.join(supported_names())}")


def per_image_transform(augmentations: AugmentationPipeline, image_size: int,
                        mean: torch.Tensor, std: torch.Tensor,
                        pil_input: bool = False) -> v2.Compose:
    """uint8 image [C, H, W] -> augmented (in list order), normalized float32 [C, H, W].

    mean, std: per-channel shift and divisor in 0..1 units (by default the training
    statistics; see `ImageDataModule.normalization_constants`). pil_input: the images
    are PIL images (`PILImages`), augmented as such until the first step in float, where
    they become tensors (ToImage + ToDtype: what ToTensor does).
    """
    check_per_image(augmentations)
    to_tensor = [v2.ToImage()] if pil_input else []  # PIL image -> uint8 tensor [C, H, W]
    steps: list[v2.Transform] = []
    in_float = False
    for augmentation in augmentations.augmentations:
        needs_float = augmentation.computes_in_float or isinstance(augmentation, FLOAT_ONLY)
        if needs_float and not in_float:  # once, like the batch pipeline
            steps += [*to_tensor, v2.ToDtype(torch.float32, scale=True)]
            in_float = True
        if isinstance(augmentation, PerImagePolicy):
            steps.append(augmentation.transform)  # already torchvision's own transform
        else:
            steps.append(PER_IMAGE_TRANSFORMS[type(augmentation)](augmentation, image_size))
    if not in_float:
        steps += to_tensor
    steps += [v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(mean=mean.tolist(), std=std.tolist())]
    return v2.Compose(steps)


class TransformedImages(Dataset):
    """Images [N, C, H, W] uint8 and labels [N]; item i = (transform(image i), label i)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform):
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


class PILImages(Dataset):
    """Images [N, C, H, W] uint8 and labels [N], held the way torchvision.datasets.CIFAR10
    holds them (one uint8 array [N, H, W, C], a list of labels); item i = (transform(PIL
    image i), label i). The Dataset of the common CIFAR training scripts; its transform
    comes from `per_image_transform(..., pil_input=True)`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform):
        # [N, H, W, C] in one block, as CIFAR10.data: items are views, not copies.
        pixels = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.data = pixels[..., 0] if pixels.shape[-1] == 1 else pixels  # gray: [N, H, W]
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def classic_loader(images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform,
                   batch_size: int, train: bool, num_workers: int, drop_last: bool = False,
                   world_size: int = 1, pin_memory: bool = False,
                   dataset_class: type[Dataset] = TransformedImages) -> DataLoader:
    """A DataLoader over `dataset_class(images, labels, transform)` (`TransformedImages`,
    or `PILImages`). Under DDP, Lightning swaps in a DistributedSampler (which repeats a
    few images so every rank gets as many)."""
    per_rank = -(-len(labels) // world_size)
    # Batch norm cannot train on a final batch of a single image.
    drop_last = train and (drop_last or per_rank % batch_size == 1)
    return DataLoader(dataset_class(images, labels, transform), batch_size=batch_size,
                      shuffle=train, num_workers=num_workers, drop_last=drop_last,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)
