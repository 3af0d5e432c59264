"""Shared pieces of the batch augmentations: dtype handling, per-image draws, boxes, ranges.

Pixel conventions (the same as torchvision's): uint8 images hold 0..255, float images hold
0..1. Every augmentation returns the dtype and value range it was given. Augmentations
whose arithmetic needs floats set `computes_in_float`; the pipeline converts a uint8 batch
to float once, before the first of them, so a chain of them never rounds in between.
"""

import math
from collections.abc import Sequence

import torch
from torch import nn

from src.core.errors import ConfigError, check_range


class BatchAugmentation(nn.Module):
    """An augmentation of a whole batch [B, C, H, W] -> [B, C, H, W], one draw per image."""

    computes_in_float: bool = False


class KorniaAugmentation(BatchAugmentation):
    """A kornia augmentation behind a registry name: the adapter class checks and keeps
    our parameters (names, defaults, ranges), builds kornia's module from them, and keeps
    the pipeline's contract: float 0..1 arithmetic (`computes_in_float`), the dtype it was
    given back, one draw per image, and draws from torch's generator of the batch's device
    (kornia draws on the CPU unless told otherwise)."""

    computes_in_float = True

    def __init__(self, augmentation: nn.Module):
        super().__init__()
        self.kornia = augmentation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.kornia.device != images.device:
            self.kornia.set_rng_device_and_dtype(images.device, torch.float32)
        out = self.kornia(to_float(images))
        return restore_dtype(out, images.dtype)


class LabelMixing(nn.Module):
    """An augmentation that mixes images of the batch, and their targets with them.

    forward(images [B, C, H, W], targets [B, K] float, rows summing to 1)
        -> (images, targets [B, K] float, rows summing to 1).
    """

    computes_in_float: bool = False


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1; float images are returned as they are."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


def restore_dtype(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Back to `dtype` after float arithmetic: float 0..1 -> uint8 0..255 (rounded)."""
    if dtype == torch.uint8 and images.dtype != torch.uint8:
        return images.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return images


def chosen(p: float, batch: int, device: torch.device) -> torch.Tensor:
    """[B] bool: which images an augmentation applied with probability `p` acts on."""
    return torch.rand(batch, device=device) < p


def uniform(low: float, high: float, batch: int, device: torch.device) -> torch.Tensor:
    """[B] float32 drawn uniformly from [low, high)."""
    return torch.empty(batch, device=device).uniform_(low, high)


def random_offsets(limit: torch.Tensor) -> torch.Tensor:
    """[B] int64 drawn uniformly from 0..limit[b] (inclusive), per image."""
    return (torch.rand(limit.shape, device=limit.device) * (limit + 1)).floor().long()


def sample_boxes(batch: int, height: int, width: int, scale: tuple[float, float],
                 ratio: tuple[float, float], device: torch.device, must_be_smaller: bool,
                 tries: int = 10) -> tuple[torch.Tensor, ...]:
    """Random boxes (top, left, box_h, box_w) [B] int64 and found [B] bool, one per image.

    torchvision's RandomResizedCrop / RandomErasing rule, drawn for all images at once:
    area fraction ~ U(scale), log aspect ratio (w/h) ~ U(log ratio), sides rounded; up to
    `tries` draws per image, the first that fits is kept (`found` False: none fitted).
    `must_be_smaller`: the box must be strictly smaller than the image (erasing).
    """
    area = height * width * torch.empty(tries, batch, device=device).uniform_(*scale)
    log_ratio = torch.empty(tries, batch, device=device).uniform_(math.log(ratio[0]),
                                                                 math.log(ratio[1]))
    aspect = log_ratio.exp()
    box_w = (area * aspect).sqrt().round().long()  # [T, B]
    box_h = (area / aspect).sqrt().round().long()
    if must_be_smaller:
        fits = (box_h < height) & (box_w < width)
    else:
        fits = (box_h > 0) & (box_w > 0) & (box_h <= height) & (box_w <= width)
    first = fits.int().argmax(dim=0, keepdim=True)  # [1, B], 0 where none fits
    box_h = box_h.gather(0, first)[0].clamp(1, height)
    box_w = box_w.gather(0, first)[0].clamp(1, width)
    top = random_offsets(height - box_h)
    left = random_offsets(width - box_w)
    return top, left, box_h, box_w, fits.any(dim=0)


def box_mask(top: torch.Tensor, left: torch.Tensor, box_h: torch.Tensor, box_w: torch.Tensor,
             height: int, width: int) -> torch.Tensor:
    """[B, 1, H, W] bool, True inside each image's box rows top..top+box_h-1 (cols alike)."""
    rows = torch.arange(height, device=top.device)[None, :]  # [1, H]
    cols = torch.arange(width, device=top.device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])  # [B, H]
    inside_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])  # [B, W]
    return (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]


# -- parameter checks: one clear line (ConfigError) for every bad value --

def check_probability(name: str, value: float) -> float:
    check_range(name, value, 0.0, 1.0)
    return float(value)


def ordered_pair(name: str, value: Sequence[float], low: float | None = None,
                 high: float | None = None) -> tuple[float, float]:
    """A [min, max] pair inside [low, high]."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name}={value!r} must be a pair [min, max]")
    first, second = float(value[0]), float(value[1])
    check_range(f"{name}[0]", first, low, high)
    check_range(f"{name}[1]", second, low, high)
    if first > second:
        raise ConfigError(f"{name}={list(value)!r} must be ordered [min, max]")
    return first, second


def factor_range(name: str, value: float | Sequence[float], center: float,
                 low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """torchvision's convention: a number v means [center - v, center + v] (cut at `low`);
    a pair [min, max] is used as it is."""
    if isinstance(value, int | float):
        check_range(name, value, 0.0, None if high is None else high - center)
        lower = center - value if low is None else max(low, center - value)
        return float(lower), float(center + value)
    return ordered_pair(name, value, low, high)
