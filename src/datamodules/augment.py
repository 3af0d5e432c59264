"""Batch augmentations that run on the device, each image with its own random draw.

They take a whole batch [B, C, H, W] (uint8 or float) and use the global torch RNG of
the batch's device, which `seed_everything` seeds. The augmentation factory
`build_augmentations` maps config names to these classes.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import check_range, lookup


class RandomCropWithPadding(nn.Module):
    """Zero-pad by `padding` pixels, then crop back to H x W at a random offset per image.

    Equals torchvision's `RandomCrop(size, padding=padding)` for the same offsets.
    """

    def __init__(self, padding: int = 4):
        super().__init__()
        check_range("crop_padding", padding, 0)
        self.padding = padding

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            return images
        batch, _, height, width = images.shape
        offsets = torch.randint(0, 2 * self.padding + 1, (2, batch), device=images.device)
        return self.crop(images, offsets[0], offsets[1])

    def crop(self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        """Crop each padded image b at (top[b], left[b]); top, left: [B] int in [0, 2p]."""
        batch, channels, height, width = images.shape
        padded = F.pad(images, [self.padding] * 4)  # [B, C, H+2p, W+2p], zeros outside
        rows = top[:, None] + torch.arange(height, device=images.device)  # [B, H]
        cols = left[:, None] + torch.arange(width, device=images.device)  # [B, W]
        batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
        channel_index = torch.arange(channels, device=images.device)[None, :, None, None]
        return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


class RandomHorizontalFlip(nn.Module):
    """Mirror each image left-right with probability `p`, independently per image."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        check_range("flip_prob", p, 0.0, 1.0)
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(images.shape[0], device=images.device) < self.p  # [B]
        return torch.where(flip[:, None, None, None], images.flip(-1), images)


AUGMENTATIONS = {
    "crop": lambda settings: RandomCropWithPadding(settings["crop_padding"]),
    "flip": lambda settings: RandomHorizontalFlip(settings["flip_prob"]),
}


def build_augmentations(names: Sequence[str], crop_padding: int = 4,
                        flip_prob: float = 0.5) -> nn.Sequential:
    """Chain the named batch augmentations, in the order given (empty: no augmentation)."""
    settings = {"crop_padding": crop_padding, "flip_prob": flip_prob}
    return nn.Sequential(*[lookup(AUGMENTATIONS, name, "augmentation")(settings)
                           for name in names])
