"""Horizontal-flip test-time augmentation: classify an image by the mean of the class
probabilities of the image and of its mirror image (probabilities, not logits)."""

from collections.abc import Callable

import torch


def flip_tta(probs: torch.Tensor, flipped_probs: torch.Tensor) -> torch.Tensor:
    """Horizontal-flip test-time augmentation: the mean of the two probability vectors."""
    return (probs + flipped_probs) / 2


def mirror_averaged_probs(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          logits: torch.Tensor) -> torch.Tensor:
    """Flip TTA of one batch: [B, K] mean softmax of `images` [B, C, H, W] (whose `logits`
    [B, K] are already computed) and of their mirror images.

    Per-channel normalization commutes with a flip, so mirroring a normalized batch
    equals mirroring the raw images.
    """
    return flip_tta(logits.float().softmax(dim=-1),
                    forward(images.flip(-1)).float().softmax(dim=-1))
