"""Geometric batch augmentations: pad-crop, flip, random resized crop, rotation, affine.

Each image gets its own draw, all images are transformed at once. The warps
(resized crop, rotation, affine) build one 2x3 matrix per image and resample with
`F.affine_grid` + `F.grid_sample`, the same sampling torchvision's tensor kernels use
for one image, so they equal `torchvision.transforms.v2.functional.resized_crop / rotate /
affine` for the same parameters.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from src.core.errors import check_range, lookup
from src.datamodules.augment.base import (
    BatchAugmentation,
    check_probability,
    factor_range,
    ordered_pair,
    restore_dtype,
    sample_boxes,
    to_float,
    uniform,
)

INTERPOLATIONS = {"bilinear": "bilinear", "nearest": "nearest"}


# kept: 1.25x-1.31x the images/s of kornia's RandomCrop in 3 runs (batch 512, 2 CPU cores, torch's
# default 2 threads; 0.65x-1.01x at 1 thread; benchmark --augmentations, 2026-12-01);
# its float input would also end the uint8 [crop, flip] default before the flip.
class RandomCropWithPadding(BatchAugmentation):
    """Zero-pad by `padding` pixels, then crop back to H x W at a random offset per image.

    Equals torchvision's `RandomCrop(size, padding=padding)` for the same offsets.
    """

    def __init__(self, padding: int = 4):
        super().__init__()
        check_range("padding", padding, 0)
        self.padding = int(padding)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            return images
        batch = images.shape[0]
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


# kept: 1.63x-2.11x the images/s of kornia's RandomHorizontalFlip in 2 runs (batch 512, 2 CPU
# cores, torch's default 2 threads; 1.49x at 1 thread; benchmark --augmentations, 2026-12-01).
class RandomHorizontalFlip(BatchAugmentation):
    """Mirror each image left-right with probability `p`, independently per image."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(images.shape[0], device=images.device) < self.p  # [B]
        return self.flip(images, flip)

    @staticmethod
    def flip(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Mirror the images b where flip[b] ([B] bool) is True."""
        return torch.where(flip[:, None, None, None], images.flip(-1), images)


def warp(images: torch.Tensor, theta: torch.Tensor, mode: str, padding_mode: str) -> torch.Tensor:
    """Resample float images [B, C, H, W] with per-image matrices theta [B, 2, 3] that map
    output to input coordinates in affine_grid's normalized units (align_corners=False)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # [B, H, W, 2]
    out = F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out.clamp_(0, 1)  # bilinear weights may overshoot 1 by a rounding error


# kept: 1.15x-1.57x the images/s of kornia's RandomResizedCrop in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 3.50x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia resizes each crop separately (align_corners=True), not torchvision's sampling.
class RandomResizedCrop(BatchAugmentation):
    """Crop a random box (area fraction ~ U(scale), aspect ratio w/h ~ log-U(ratio)) and
    resize it back to H x W, per image. Box rule as torchvision's RandomResizedCrop; when
    10 draws fail to fit, the whole image is kept."""

    computes_in_float = True

    def __init__(self, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interpolation: str = "bilinear"):
        super().__init__()
        self.scale = ordered_pair("scale", scale, 0.0, 1.0)
        self.ratio = ordered_pair("ratio", ratio, 0.0)
        check_range("scale[1]", self.scale[1], 0.0, low_inclusive=False)
        check_range("ratio[0]", self.ratio[0], 0.0, low_inclusive=False)
        self.mode = lookup(INTERPOLATIONS, interpolation, "interpolation")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        top, left, box_h, box_w, found = sample_boxes(
            batch, height, width, self.scale, self.ratio, images.device, must_be_smaller=False)
        top, left = top * found, left * found
        box_h = torch.where(found, box_h, height)
        box_w = torch.where(found, box_w, width)
        return self.resized_crop(images, top, left, box_h, box_w)

    def resized_crop(self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                     box_h: torch.Tensor, box_w: torch.Tensor) -> torch.Tensor:
        """Resize box b (rows top..top+box_h-1, cols alike; [B] ints) to the full size.

        Output pixel j samples input column left - 0.5 + (j + 0.5) * box_w / W, the same
        point as torchvision's resize of the cropped image; the "border" padding repeats
        edge pixels as torchvision's resize does at the image border.
        """
        height, width = images.shape[-2:]
        theta = torch.zeros(images.shape[0], 2, 3, device=images.device)
        theta[:, 0, 0] = box_w / width
        theta[:, 0, 2] = (2 * left + box_w) / width - 1
        theta[:, 1, 1] = box_h / height
        theta[:, 1, 2] = (2 * top + box_h) / height - 1
        out = warp(to_float(images), theta, self.mode, padding_mode="border")
        return restore_dtype(out, images.dtype)


def inverse_affine_theta(angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor,
                         shear: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-image matrices [B, 2, 3] for `warp`, as torchvision's affine() builds them.

    angle [B] degrees clockwise, translate [B, 2] pixels (x, y), scale [B], shear [B, 2]
    degrees (x, y); rotation about the image center. The formula is torchvision's
    `_get_inverse_affine_matrix` (centered pixel coordinates), vectorized, then rescaled
    to affine_grid's normalized coordinates.
    """
    rot = torch.deg2rad(angle)
    shear_x, shear_y = torch.deg2rad(shear).unbind(-1)
    cos_sy, tan_sx = torch.cos(shear_y), torch.tan(shear_x)
    a = torch.cos(rot - shear_y) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot - shear_y) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale  # inverse rotate-scale-shear
    tx, ty = translate.unbind(-1)
    m2 = -m0 * tx - m1 * ty
    m5 = -m3 * tx - m4 * ty
    # Centered pixel units -> normalized units: x_norm = x_pixels / (W / 2).
    return torch.stack([
        torch.stack([m0, m1 * height / width, m2 * 2 / width], dim=-1),
        torch.stack([m3 * width / height, m4, m5 * 2 / height], dim=-1),
    ], dim=1)


# kept: 1.18x-1.64x the images/s of kornia's RandomAffine in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 1.67x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia also translates by fractions of a pixel where torchvision rounds to whole pixels.
class RandomAffine(BatchAugmentation):
    """Per-image random rotation, translation, scale and shear about the image center;
    outside pixels are zero. Parameters as torchvision's RandomAffine: degrees v means
    U(-v, v) (clockwise); translate [fx, fy]: shifts up to fx*W, fy*H pixels (rounded);
    scale [min, max]; shear v: x-shear U(-v, v) degrees, [min, max] likewise."""

    computes_in_float = True

    def __init__(self, degrees: float | Sequence[float] = 0.0,
                 translate: Sequence[float] = (0.125, 0.125),
                 scale: Sequence[float] = (1.0, 1.0), shear: float | Sequence[float] = 0.0,
                 interpolation: str = "bilinear"):
        super().__init__()
        self.degrees = factor_range("degrees", degrees, center=0.0)
        self.translate = ordered_pair("translate", translate, 0.0, 1.0)
        self.scale = ordered_pair("scale", scale, 0.0)
        check_range("scale[0]", self.scale[0], 0.0, low_inclusive=False)
        self.shear = factor_range("shear", shear, center=0.0, low=-89.0, high=89.0)
        self.mode = lookup(INTERPOLATIONS, interpolation, "interpolation")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        device = images.device
        angle = uniform(*self.degrees, batch, device)
        max_x, max_y = self.translate[0] * width, self.translate[1] * height
        translate = torch.stack([uniform(-max_x, max_x, batch, device),
                                 uniform(-max_y, max_y, batch, device)], dim=-1).round()
        scale = uniform(*self.scale, batch, device)
        shear = torch.stack([uniform(*self.shear, batch, device),
                             torch.zeros(batch, device=device)], dim=-1)
        return self.affine(images, angle, translate, scale, shear)

    def affine(self, images: torch.Tensor, angle: torch.Tensor, translate: torch.Tensor,
               scale: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
        """Apply the given per-image parameters (see `inverse_affine_theta`)."""
        height, width = images.shape[-2:]
        theta = inverse_affine_theta(angle, translate, scale, shear, height, width)
        out = warp(to_float(images), theta, self.mode, padding_mode="zeros")
        return restore_dtype(out, images.dtype)


# kept: 1.09x-1.50x the images/s of kornia's RandomRotation in 3 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 1.70x-1.78x at 1 thread; benchmark --augmentations, 2026-12-01).
class RandomRotation(RandomAffine):
    """Rotate each image by its own angle ~ U(-degrees, degrees) about its center
    (counter-clockwise positive, as torchvision's rotate); outside pixels are zero."""

    def __init__(self, degrees: float | Sequence[float] = 15.0, interpolation: str = "bilinear"):
        super().__init__(degrees=degrees, translate=(0.0, 0.0), interpolation=interpolation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        angle = uniform(*self.degrees, images.shape[0], images.device)
        return self.rotate(images, angle)

    def rotate(self, images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        """Rotate image b counter-clockwise by angle[b] degrees."""
        batch, device = images.shape[0], images.device
        zeros2 = torch.zeros(batch, 2, device=device)
        return self.affine(images, -angle, zeros2, torch.ones(batch, device=device), zeros2)
