"""Photometric batch augmentations: color jitter, grayscale, RGB shift, noise, blur.

Each image gets its own random factors, all images are transformed at once. The formulas
are torchvision's (`adjust_brightness / contrast / saturation / hue`, `rgb_to_grayscale`,
`gaussian_blur`, `gaussian_noise`) with the scalar factor replaced by one factor per image.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

# torchvision's own HSV conversions (private helpers of adjust_hue), batched as they are.
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from src.core.errors import ConfigError, check_range
from src.datamodules.augment.base import (
    BatchAugmentation,
    KorniaAugmentation,
    check_probability,
    chosen,
    factor_range,
    ordered_pair,
    restore_dtype,
    to_float,
    uniform,
)


def per_image(values: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, 1, 1], to broadcast one value per image."""
    return values[:, None, None, None]


def blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend with one ratio per image: ratio*images + (1-ratio)*other, in [0, 1]."""
    ratio = per_image(ratio)
    return (images * ratio + other * (1 - ratio)).clamp_(0, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] float -> [B, 1, H, W] luminance (torchvision's weights); C=1 as it is."""
    return images if images.shape[1] == 1 else TF.rgb_to_grayscale(images)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * per_image(factor)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
    return blend(images, mean, factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:  # as torchvision (and PIL): no saturation in gray images
        return images
    return blend(images, grayscale(images), factor)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of image b by shift[b] turns, shift in [-0.5, 0.5]."""
    if images.shape[1] == 1:
        return images
    hue, saturation, value = _rgb_to_hsv(images).unbind(dim=1)
    hue = (hue + shift[:, None, None]).remainder_(1.0)
    return _hsv_to_rgb(torch.stack((hue, saturation, value), dim=1))


# kept: 1.47x-1.59x the images/s of kornia's ColorJitter(order=(0, 1, 2, 3)) in 2 runs (batch 512,
# 2 CPU cores, torch's default 2 threads; 1.41x at 1 thread; benchmark --augmentations,
# 2026-12-01).
class ColorJitter(BatchAugmentation):
    """Random brightness, contrast, saturation and hue, each image its own four factors.

    Ranges as torchvision's ColorJitter: a number v gives factors in [max(0, 1-v), 1+v]
    (hue: shifts in [-v, v] turns, v <= 0.5); a pair [min, max] is used as it is. Unlike
    torchvision (a random order per call), the order is fixed: brightness, contrast,
    saturation, hue. Applied to each image with probability `p`.
    """

    computes_in_float = True

    def __init__(self, brightness: float | Sequence[float] = 0.4,
                 contrast: float | Sequence[float] = 0.4,
                 saturation: float | Sequence[float] = 0.4,
                 hue: float | Sequence[float] = 0.1, p: float = 1.0):
        super().__init__()
        self.brightness = factor_range("brightness", brightness, center=1.0, low=0.0)
        self.contrast = factor_range("contrast", contrast, center=1.0, low=0.0)
        self.saturation = factor_range("saturation", saturation, center=1.0, low=0.0)
        self.hue = factor_range("hue", hue, center=0.0, low=-0.5, high=0.5)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, device = images.shape[0], images.device
        apply = chosen(self.p, batch, device)

        def draw(low: float, high: float, identity: float) -> torch.Tensor:
            return torch.where(apply, uniform(low, high, batch, device), identity)

        # Skipping the HSV round trip is decided by the settings, never by the draws
        # (looking at the draws would wait for the device).
        hue = draw(*self.hue, 0.0) if self.hue != (0.0, 0.0) else None
        return self.jitter(images, draw(*self.brightness, 1.0), draw(*self.contrast, 1.0),
                           draw(*self.saturation, 1.0), hue)

    @staticmethod
    def jitter(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
               saturation: torch.Tensor, hue: torch.Tensor | None) -> torch.Tensor:
        """Apply the given per-image factors ([B] each; hue None: none) in the fixed order."""
        out = to_float(images)
        out = adjust_brightness(out, brightness)
        out = adjust_contrast(out, contrast)
        out = adjust_saturation(out, saturation)
        if hue is not None:
            out = adjust_hue(out, hue)
        return restore_dtype(out, images.dtype)


# kept: 1.18x the images/s of kornia's RandomGrayscale over 15 interleaved pairs, 0.95x-2.07x
# over 3 runs (batch 512, 2 CPU cores, torch's default 2 threads; 1.36x-1.47x at 1 thread;
# benchmark --augmentations, 2026-12-01): the closest call of the kept ones.
class RandomGrayscale(BatchAugmentation):
    """Replace each image by its luminance (all channels) with probability `p`."""

    computes_in_float = True

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = to_float(images)
        gray = chosen(self.p, images.shape[0], images.device)
        out = torch.where(per_image(gray), grayscale(out).expand_as(out), out)
        return restore_dtype(out, images.dtype)


# kept: 1.81x-2.65x the images/s of kornia's RandomRGBShift in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 2.44x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia's takes 3-channel images only.
class RandomRGBShift(BatchAugmentation):
    """Add to each channel of each image its own offset ~ U(-shift, shift) (0..1 pixel
    units; 0.08 is about 20 of 255, albumentations' RGBShift default), probability `p`."""

    computes_in_float = True

    def __init__(self, shift: float = 0.08, p: float = 0.5):
        super().__init__()
        check_range("shift", shift, 0.0, 1.0)
        self.shift = float(shift)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels = images.shape[:2]
        offsets = torch.empty(batch, channels, 1, 1, device=images.device)
        offsets.uniform_(-self.shift, self.shift)
        offsets *= per_image(chosen(self.p, batch, images.device))
        out = (to_float(images) + offsets).clamp_(0, 1)
        return restore_dtype(out, images.dtype)


class GaussianNoise(KorniaAugmentation):
    """Add independent N(mean, sigma^2) noise to every pixel (0..1 units), clipped to the
    valid range (torchvision's `gaussian_noise(clip=True)`), applied to each image with
    probability `p`. The noise is drawn per pixel, so every image gets its own.

    kornia's RandomGaussianNoise, plus the clip: 1.09x and 1.12x the images/s of
    torchvision's gaussian_noise on the uint8 batch, conversion to float included (batch
    512, 2 CPU cores, torch's default 2 threads; 0.85x at 1 thread; benchmark
    --augmentations, 2026-12-01); same distribution (tests/test_augment_kornia.py)."""

    def __init__(self, sigma: float = 0.05, mean: float = 0.0, p: float = 1.0):
        check_range("sigma", sigma, 0.0)
        check_range("mean", mean, -1.0, 1.0)
        check_probability("p", p)
        import kornia.augmentation  # here: its import takes a second, paid only when used

        super().__init__(kornia.augmentation.RandomGaussianNoise(
            mean=float(mean), std=float(sigma), p=float(p)))
        self.sigma, self.mean, self.p = float(sigma), float(mean), float(p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return restore_dtype(super().forward(to_float(images)).clamp_(0, 1), images.dtype)


# kept: 1.29x-1.31x the images/s of kornia's RandomGaussianBlur in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 1.17x at 1 thread; benchmark --augmentations, 2026-12-01).
class GaussianBlur(BatchAugmentation):
    """Blur each image with its own sigma ~ U(sigma) (pixels), a kernel_size x kernel_size
    Gaussian with reflected borders (torchvision's gaussian_blur), probability `p`."""

    computes_in_float = True

    def __init__(self, kernel_size: int = 5, sigma: Sequence[float] = (0.1, 2.0),
                 p: float = 0.5):
        super().__init__()
        check_range("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size={kernel_size!r} must be odd")
        self.kernel_size = int(kernel_size)
        self.sigma = ordered_pair("sigma", sigma, 0.0)
        check_range("sigma[0]", self.sigma[0], 0.0, low_inclusive=False)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, device = images.shape[0], images.device
        sigma = uniform(*self.sigma, batch, device)
        blurred = self.blur(images, sigma)
        return torch.where(per_image(chosen(self.p, batch, device)), blurred, images)

    def blur(self, images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Blur image b with standard deviation sigma[b] pixels (both directions)."""
        batch, channels, height, width = images.shape
        half = self.kernel_size // 2
        x = torch.linspace(-half, half, self.kernel_size, device=images.device)
        kernel = torch.exp(-0.5 * (x[None, :] / sigma[:, None]).square())  # [B, k]
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
        # One group per (image, channel): a separable blur, rows then columns.
        out = to_float(images).reshape(1, batch * channels, height, width)
        out = F.pad(out, [half, half, half, half], mode="reflect")
        out = F.conv2d(out, kernel[:, None, None, :], groups=batch * channels)
        out = F.conv2d(out, kernel[:, None, :, None], groups=batch * channels)
        return restore_dtype(out.reshape(batch, channels, height, width), images.dtype)
