"""Occlusion batch augmentations: random erasing and cutout, one box per image.

They only overwrite pixels, so they work on uint8 batches directly. Erasing happens
before normalization here, so `value` is a pixel intensity (0..1 units; 0 is black),
not a normalized value as in torchvision's RandomErasing after Normalize.
"""

from collections.abc import Sequence

import torch

from src.core.errors import check_range
from src.datamodules.augment.base import (
    BatchAugmentation,
    box_mask,
    check_probability,
    chosen,
    ordered_pair,
    sample_boxes,
)


def fill_boxes(images: torch.Tensor, mask: torch.Tensor, value: float) -> torch.Tensor:
    """Set the pixels under mask [B, 1, H, W] to `value` (0..1 units) in all channels."""
    fill = round(value * 255) if images.dtype == torch.uint8 else value
    return images.masked_fill(mask, fill)


# kept for its distribution: kornia's RandomErasing draws h/w uniformly on [r0, 1] or on
# [1, r1] (half and half, one try, the box may fill the image) where torchvision draws
# log(h/w) uniformly (tests/test_augment_kornia.py). Speed alone would not decide: 0.86x,
# 1.13x and 1.48x kornia's images/s in 3 runs at batch 512 on 2 CPU cores at torch's
# default 2 threads, 2.05x and 2.25x at 1 thread (benchmark --augmentations, 2026-12-01).
class RandomErasing(BatchAugmentation):
    """Erase one random box per image with probability `p`: torchvision's RandomErasing
    box rule (area fraction ~ U(scale), aspect ratio h/w ~ log-U(ratio), box strictly
    smaller than the image, 10 draws, none erased if none fits), drawn per image."""

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.33),
                 ratio: Sequence[float] = (0.3, 3.3), value: float = 0.0):
        super().__init__()
        self.p = check_probability("p", p)
        self.scale = ordered_pair("scale", scale, 0.0, 1.0)
        self.ratio = ordered_pair("ratio", ratio, 0.0)
        check_range("ratio[0]", self.ratio[0], 0.0, low_inclusive=False)
        check_range("value", value, 0.0, 1.0)
        self.value = float(value)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        # torchvision's ratio here is h/w; sample_boxes draws w/h: log-uniform either way.
        width_ratio = (1 / self.ratio[1], 1 / self.ratio[0])
        top, left, box_h, box_w, found = sample_boxes(
            batch, height, width, self.scale, width_ratio, images.device, must_be_smaller=True)
        erase = found & chosen(self.p, batch, images.device)
        mask = box_mask(top, left, box_h * erase, box_w * erase, height, width)
        return fill_boxes(images, mask, self.value)


# kept: kornia has no cutout (a fixed-size square at a uniform centre).
class Cutout(BatchAugmentation):
    """Cutout (DeVries & Taylor 2017): erase a size x size square centered at a uniformly
    random pixel of each image (clipped at the borders), with probability `p`."""

    def __init__(self, size: int = 16, p: float = 1.0, value: float = 0.0):
        super().__init__()
        check_range("size", size, 1)
        self.size = int(size)
        self.p = check_probability("p", p)
        check_range("value", value, 0.0, 1.0)
        self.value = float(value)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        device = images.device
        center_y = torch.randint(0, height, (batch,), device=device)
        center_x = torch.randint(0, width, (batch,), device=device)
        top = (center_y - self.size // 2).clamp(0, height)
        left = (center_x - self.size // 2).clamp(0, width)
        bottom = (center_y + self.size - self.size // 2).clamp(0, height)
        right = (center_x + self.size - self.size // 2).clamp(0, width)
        erase = chosen(self.p, batch, device)
        mask = box_mask(top, left, (bottom - top) * erase, (right - left) * erase, height, width)
        return fill_boxes(images, mask, self.value)
