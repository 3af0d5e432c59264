"""Label-mixing batch augmentations: mixup, cutmix and a 4-image mosaic.

Each image is mixed with partners drawn from the same batch (a random permutation), and
its target becomes the matching mixture of the partners' targets: soft targets [B, K],
rows summing to 1, which the classifier's cross-entropy accepts.

torchvision's v2.MixUp / v2.CutMix draw ONE mixing ratio (and one box) per batch and
pair each image with its neighbour (`roll(1)`). Here every image draws its own ratio,
box and partner, all at once on the device; the formulas are the same as torchvision's.
"""

from collections.abc import Sequence

import torch

from src.core.errors import check_range
from src.datamodules.augment.base import (
    LabelMixing,
    box_mask,
    check_probability,
    chosen,
    ordered_pair,
    restore_dtype,
    to_float,
)


def beta_draws(alpha: float, batch: int, device: torch.device) -> torch.Tensor:
    """[B] mixing ratios ~ Beta(alpha, alpha)."""
    # Built on the device by a fill, and not validated: a host copy or a check of the
    # values would make the host wait for the device.
    concentration = torch.full((batch,), float(alpha), device=device)
    beta = torch.distributions.Beta(concentration, concentration, validate_args=False)
    return beta.sample()


def mix_targets(targets: torch.Tensor, weight: torch.Tensor,
                partner: torch.Tensor) -> torch.Tensor:
    """weight[b] * targets[b] + (1 - weight[b]) * targets[partner[b]]; targets [B, K]."""
    return weight[:, None] * targets + (1 - weight[:, None]) * targets[partner]


# kept: 1.57x-2.41x the images/s of kornia's RandomMixUpV2 in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 2.20x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia's ratio is uniform (Beta(1, 1) only), not Beta(alpha, alpha).
class MixUp(LabelMixing):
    """mixup (Zhang et al. 2018): x = lam*x + (1-lam)*x_partner, targets likewise, with
    lam ~ Beta(alpha, alpha) per image; each image is mixed with probability `p`."""

    computes_in_float = True

    def __init__(self, alpha: float = 1.0, p: float = 1.0):
        super().__init__()
        check_range("alpha", alpha, 0.0, low_inclusive=False)
        self.alpha = float(alpha)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, device = images.shape[0], images.device
        lam = torch.where(chosen(self.p, batch, device), beta_draws(self.alpha, batch, device),
                          1.0)
        return self.mix(images, targets, lam, torch.randperm(batch, device=device))

    @staticmethod
    def mix(images: torch.Tensor, targets: torch.Tensor, lam: torch.Tensor,
            partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix image b with image partner[b] at ratio lam[b] ([B] each)."""
        x = to_float(images)
        weight = lam.to(x.dtype)[:, None, None, None]
        mixed = weight * x + (1 - weight) * x[partner]
        return restore_dtype(mixed, images.dtype), mix_targets(targets, lam, partner)


# kept: 4.42x-5.23x the images/s of kornia's RandomCutMixV2 in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 7.18x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia's box lies wholly inside the image, torchvision's is clipped at the border.
class CutMix(LabelMixing):
    """CutMix (Yun et al. 2019): paste a box of a partner image into each image; the
    target weight of the partner equals the pasted area fraction. Box rule as torchvision's
    CutMix (lam ~ Beta(alpha, alpha), box sides sqrt(1-lam) of the image's, centered at a
    random pixel, clipped), one box per image; each image is mixed with probability `p`."""

    def __init__(self, alpha: float = 1.0, p: float = 1.0):
        super().__init__()
        check_range("alpha", alpha, 0.0, low_inclusive=False)
        self.alpha = float(alpha)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = images.shape
        device = images.device
        lam = beta_draws(self.alpha, batch, device)
        half = 0.5 * (1 - lam).sqrt() * chosen(self.p, batch, device)  # 0: no box
        half_h = (half * height).floor().long()
        half_w = (half * width).floor().long()
        center_y = torch.randint(0, height, (batch,), device=device)
        center_x = torch.randint(0, width, (batch,), device=device)
        top, left = (center_y - half_h).clamp_min(0), (center_x - half_w).clamp_min(0)
        bottom = (center_y + half_h).clamp_max(height)
        right = (center_x + half_w).clamp_max(width)
        mask = box_mask(top, left, bottom - top, right - left, height, width)
        return self.paste(images, targets, mask, torch.randperm(batch, device=device))

    @staticmethod
    def paste(images: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
              partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy image partner[b]'s pixels under mask[b] ([B, 1, H, W] bool) into image b."""
        pasted_fraction = mask.flatten(1).float().mean(dim=1)  # [B]
        out = torch.where(mask, images[partner], images)
        return out, mix_targets(targets, 1 - pasted_fraction, partner)


# kept: 2.23x-2.44x the images/s of kornia's RandomMosaic in 2 runs (batch 512, 2 CPU cores,
# torch's default 2 threads; 1.40x at 1 thread; benchmark --augmentations, 2026-12-01);
# kornia's mosaic mixes no class labels.
class Mosaic(LabelMixing):
    """4-image mosaic: each image is cut into 2 x 2 tiles at its own random center
    (fractions of H and W drawn from `center`); the top-left tile shows the central crop
    of the image itself, the other three the central crops of three random partners.
    Target weights are the tiles' area fractions. Applied with probability `p`."""

    def __init__(self, center: Sequence[float] = (0.25, 0.75), p: float = 1.0):
        super().__init__()
        self.center = ordered_pair("center", center, 0.0, 1.0)
        self.p = check_probability("p", p)

    def forward(self, images: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = images.shape
        device = images.device
        apply = chosen(self.p, batch, device)

        def split_point(size: int) -> torch.Tensor:
            low, high = round(self.center[0] * size), round(self.center[1] * size)
            point = torch.randint(low, high + 1, (batch,), device=device)
            return torch.where(apply, point, size)  # size: one tile, the whole image

        sources = torch.stack([torch.arange(batch, device=device)]
                              + [torch.randperm(batch, device=device) for _ in range(3)], 1)
        return self.tile(images, targets, split_point(height), split_point(width), sources)

    @staticmethod
    def tile(images: torch.Tensor, targets: torch.Tensor, split_y: torch.Tensor,
             split_x: torch.Tensor, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tile image b at (split_y[b], split_x[b]) ([B] ints in 0..H, 0..W) from the
        images sources[b] ([B, 4]: top-left, top-right, bottom-left, bottom-right)."""
        batch, channels, height, width = images.shape
        device = images.device

        def source_positions(split: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
            # Output position i lies in the first tile (length split) or the second
            # (length size - split); each tile shows the central part of its source.
            i = torch.arange(size, device=device)[None, :]  # [1, size]
            split = split[:, None]  # [B, 1]
            second = i >= split  # [B, size]
            first_pos = i + (size - split) // 2
            second_pos = i - split + split // 2
            return torch.where(second, second_pos, first_pos), second

        rows, bottom = source_positions(split_y, height)  # [B, H]
        cols, right = source_positions(split_x, width)  # [B, W]
        tile = 2 * bottom[:, :, None].long() + right[:, None, :].long()  # [B, H, W] in 0..3
        source = sources.gather(1, tile.flatten(1)).view(batch, 1, height, width)
        channel = torch.arange(channels, device=device)[None, :, None, None]
        out = images[source, channel, rows[:, None, :, None], cols[:, None, None, :]]
        split_y, split_x = split_y.float(), split_x.float()
        areas = torch.stack([split_y * split_x, split_y * (width - split_x),
                             (height - split_y) * split_x,
                             (height - split_y) * (width - split_x)], 1) / (height * width)
        mixed = (areas[:, :, None] * targets[sources]).sum(dim=1)  # [B, K]
        return out, mixed
