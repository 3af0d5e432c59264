"""Images/s of each registry augmentation beside kornia's batched equivalent.

Both sides get the same batch on the same device: uint8 images of CIFAR's shape, as the
training batches arrive, and integer labels. The registry side runs as the pipeline runs
it (`AugmentationPipeline`: converted to float once if the augmentation computes in
float, labels one-hot before a mixing augmentation). kornia takes float images only, so
its side converts the uint8 batch to float 0..1 inside the timed call, and a mixing
augmentation's (label, partner label, ratio) rows become soft targets [B, K], as ours
return them. Nothing is compared but time: which of the two keeps the same distribution
is the tests' business (tests/test_augment_kornia.py).
"""

from collections.abc import Callable

import kornia.augmentation as KA
import torch
import torch.nn.functional as F
from kornia.augmentation import auto
from torch import nn

from src.core.clock import device_time
from src.datamodules.augment import AugmentationPipeline, build_augmentation
from src.datamodules.augment.base import KorniaAugmentation, to_float

NUM_CLASSES = 10


class Clamped(nn.Module):
    """A kornia intensity augmentation whose result may leave 0..1, clipped back (ours
    clip, as torchvision's gaussian_noise(clip=True) does)."""

    def __init__(self, augmentation: nn.Module):
        super().__init__()
        self.augmentation = augmentation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.augmentation(images).clamp_(0, 1)


def randaugment(a: nn.Module, size: int) -> nn.Module | None:
    # kornia's magnitude m is a fraction m / 30 of each operation's range, torchvision's a
    # bin of num_magnitude_bins over the same span: the same fraction is m = 30 * bin / (bins - 1).
    policy = a.transform
    m = 30 * policy.magnitude / (policy.num_magnitude_bins - 1)
    if policy.num_ops < 1 or not 0 < m < 30:
        return None  # outside what kornia's RandAugment accepts
    return auto.RandAugment(n=policy.num_ops, m=m)


# Registry name -> kornia's module for the same parameters (from the built augmentation's
# checked attributes; `size` is the image side). Absent: kornia has no such augmentation.
KORNIA_EQUIVALENTS: dict[str, Callable[[nn.Module, int], nn.Module | None]] = {
    "crop": lambda a, size: KA.RandomCrop((size, size), padding=a.padding),
    "resized_crop": lambda a, size: KA.RandomResizedCrop(
        (size, size), scale=a.scale, ratio=a.ratio, resample=a.mode.upper()),
    "flip": lambda a, size: KA.RandomHorizontalFlip(p=a.p),
    "rotate": lambda a, size: KA.RandomRotation(a.degrees, resample=a.mode.upper(), p=1.0),
    "affine": lambda a, size: KA.RandomAffine(
        a.degrees, translate=a.translate, scale=a.scale, shear=a.shear,
        resample=a.mode.upper(), p=1.0),
    "color_jitter": lambda a, size: KA.ColorJitter(
        a.brightness, a.contrast, a.saturation, a.hue, p=a.p, order=(0, 1, 2, 3)),
    "grayscale": lambda a, size: KA.RandomGrayscale(p=a.p),
    "rgb_shift": lambda a, size: KA.RandomRGBShift(a.shift, a.shift, a.shift, p=a.p),
    "noise": lambda a, size: Clamped(KA.RandomGaussianNoise(a.mean, a.sigma, p=a.p)),
    "blur": lambda a, size: KA.RandomGaussianBlur(
        (a.kernel_size, a.kernel_size), a.sigma, border_type="reflect", p=a.p),
    "erasing": lambda a, size: KA.RandomErasing(
        scale=a.scale, ratio=a.ratio, value=a.value, p=a.p),
    "autoaugment": lambda a, size: auto.AutoAugment(policy=a.transform.policy.value),
    "randaugment": randaugment,
    "trivialaugment": lambda a, size: auto.TrivialAugment(),
    "mixup": lambda a, size: KA.RandomMixUpV2(p=a.p, data_keys=["input", "class"]),
    "cutmix": lambda a, size: KA.RandomCutMixV2(
        beta=a.alpha, p=a.p, data_keys=["input", "class"], use_correct_lambda=True),
    "mosaic": lambda a, size: KA.RandomMosaic(
        (size, size), start_ratio_range=a.center, p=a.p),
}


class KorniaSide(nn.Module):
    """kornia's module as our pipeline would need it: uint8 images converted to float
    0..1; a mixing augmentation's labels returned as soft targets [B, K]."""

    def __init__(self, kornia_module: nn.Module, num_classes: int):
        super().__init__()
        self.kornia = kornia_module
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = to_float(images)
        if not isinstance(self.kornia, KA.RandomMixUpV2 | KA.RandomCutMixV2):
            return self.kornia(images), labels  # RandomMosaic: no class labels to mix
        out, mixed = self.kornia(images, labels)
        mixed = mixed.reshape(-1, images.shape[0], 3)[-1]  # cutmix: one row per mix
        own, partner, ratio = mixed[:, 0].long(), mixed[:, 1].long(), mixed[:, 2:]
        # mixup's ratio weighs the partner; cutmix's (use_correct_lambda) the image itself
        own_weight = 1 - ratio if isinstance(self.kornia, KA.RandomMixUpV2) else ratio
        targets = (own_weight * F.one_hot(own, self.num_classes)
                   + (1 - own_weight) * F.one_hot(partner, self.num_classes))
        return out, targets


def kornia_side(name: str, augmentation: nn.Module, size: int) -> KorniaSide | None:
    """kornia's counterpart of registry augmentation `name` as built, or None."""
    build = KORNIA_EQUIVALENTS.get(name)
    module = build(augmentation, size) if build is not None else None
    return None if module is None else KorniaSide(module, NUM_CLASSES)


def sides(name: str, size: int,
          device: torch.device) -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """setup label -> the call that augments one batch (images, labels): the registry's
    augmentation `name` with its default parameters, then kornia's where it has one."""
    augmentation = build_augmentation(name)
    registry = AugmentationPipeline([augmentation], NUM_CLASSES).to(device)
    module = type(augmentation)
    runs = f"{module.__module__.rsplit('.', 1)[-1]}.{module.__name__}"
    if isinstance(augmentation, KorniaAugmentation):
        runs += f" = kornia {type(augmentation.kornia).__name__}"
    found = {f"{name}: registry ({runs})": registry}
    kornia = kornia_side(name, augmentation, size)
    if kornia is not None:
        found[f"{name}: kornia {kornia_name(kornia.kornia)}"] = kornia.to(device)
    return found


def kornia_name(module: nn.Module) -> str:
    if isinstance(module, Clamped):
        return f"{type(module.augmentation).__name__} + clip to 0..1"
    return type(module).__name__


def batch(batch_size: int, size: int, device: torch.device,
          seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic uint8 images [B, 3, size, size] and labels [B] on `device`, seeded."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, size, size), generator=generator,
                           dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
    return images.to(device), labels.to(device)


def images_per_second(augment: Callable[[torch.Tensor, torch.Tensor], object],
                      images: torch.Tensor, labels: torch.Tensor, warmup: int, steps: int,
                      device: torch.device) -> float:
    """Batches augmented per second over `steps` calls after `warmup` untimed ones,
    times the batch size; the device is waited for at the two clock readings only."""
    with torch.no_grad():
        for _ in range(warmup):
            augment(images, labels)
        start = device_time(device)
        for _ in range(steps):
            augment(images, labels)
        elapsed = device_time(device) - start
    return steps * images.shape[0] / elapsed
