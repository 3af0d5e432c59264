"""Policy augmentations: AutoAugment, RandAugment, TrivialAugment (torchvision's classes).

torchvision's v2 transforms draw ONE set of parameters per call: given a batch they would
apply the same operation and magnitude to every image. So these run torchvision's
transform once per image, in a Python loop over the batch: each image gets its own draw,
but the cost grows with the batch size (a few small device operations per image), unlike
the vectorized augmentations. They take uint8 or float images, as torchvision does, and
draw from torch's global CPU generator.
"""

import torch
from torchvision.transforms import v2

from src.core.errors import check_range, lookup
from src.datamodules.augment.base import BatchAugmentation

AUTOAUGMENT_POLICIES = {
    "cifar10": v2.AutoAugmentPolicy.CIFAR10,
    "imagenet": v2.AutoAugmentPolicy.IMAGENET,
    "svhn": v2.AutoAugmentPolicy.SVHN,
}


# kept for the distribution, not the speed: ours run at 0.14x-0.22x, 0.04x-0.08x and
# 0.04x-0.05x the images/s of kornia's AutoAugment, RandAugment and TrivialAugment in 2 runs
# (batch 512, 2 CPU cores, torch's default 2 threads; 0.42x, 0.13x, 0.18x at 1 thread;
# benchmark --augmentations, 2026-12-01),
# but kornia's pick one sub-policy (RandAugment: one set of num_ops operations) per call for
# the whole batch (tests/test_augment_kornia.py), and their magnitudes are not torchvision's:
# RandAugment m=9 sets brightness to 0.64 for every image (torchvision: 1 +- 0.27, random
# sign) and shears 16.2 degrees (torchvision: atan(0.09) = 5.1); kornia's TrivialAugment has
# the original ranges (rotate +-30 degrees), not TrivialAugment Wide's (+-135).
class PerImagePolicy(BatchAugmentation):
    """Apply a torchvision transform to each image of the batch separately."""

    def __init__(self, transform: v2.Transform):
        super().__init__()
        self.transform = transform

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(image) for image in images])


class AutoAugment(PerImagePolicy):
    """AutoAugment (Cubuk et al. 2019) with a learned policy: cifar10, imagenet or svhn."""

    def __init__(self, policy: str = "cifar10"):
        super().__init__(v2.AutoAugment(lookup(AUTOAUGMENT_POLICIES, policy,
                                               "AutoAugment policy")))


class RandAugment(PerImagePolicy):
    """RandAugment (Cubuk et al. 2020): num_ops random operations at a fixed magnitude
    (0..num_magnitude_bins-1)."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        check_range("num_ops", num_ops, 0)
        check_range("num_magnitude_bins", num_magnitude_bins, 2)
        check_range("magnitude", magnitude, 0, num_magnitude_bins - 1)
        super().__init__(v2.RandAugment(num_ops=int(num_ops), magnitude=int(magnitude),
                                        num_magnitude_bins=int(num_magnitude_bins)))


class TrivialAugment(PerImagePolicy):
    """TrivialAugment Wide (Muller & Hutter 2021): one random operation at a random
    magnitude per image."""

    def __init__(self, num_magnitude_bins: int = 31):
        check_range("num_magnitude_bins", num_magnitude_bins, 2)
        super().__init__(v2.TrivialAugmentWide(num_magnitude_bins=int(num_magnitude_bins)))
