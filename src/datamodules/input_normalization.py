"""How pixel values are scaled before they reach the network (`--data.normalization`).

Each name maps the training split's per-channel statistics (0..1 units) to the shift and
divisor of `(pixel / 255 - shift) / divisor`, so the fast path (on the device) and the
classic path (torchvision's Normalize after ToDtype(scale=True)) apply the same formula:
- standardize: (x - mean) / std per channel, with the training split's statistics;
- unit: pixel / 255, values in [0, 1];
- none: the raw pixel values 0..255, as float.
"""

from collections.abc import Callable

import torch

from src.core.errors import lookup

Constants = tuple[torch.Tensor, torch.Tensor]  # shift [C], divisor [C], in 0..1 units

NORMALIZATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], Constants]] = {
    "standardize": lambda mean, std: (mean, std),
    "unit": lambda mean, std: (torch.zeros_like(mean), torch.ones_like(std)),
    "none": lambda mean, std: (torch.zeros_like(mean), torch.full_like(std, 1 / 255)),
}


def normalization_constants(name: str, mean: torch.Tensor, std: torch.Tensor) -> Constants:
    """(shift, divisor) for `(x - shift) / divisor` on images in 0..1 units."""
    return lookup(NORMALIZATIONS, name, "input normalization")(mean, std)
