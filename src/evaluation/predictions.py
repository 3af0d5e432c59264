"""Evaluation beyond one accuracy number: predicted probabilities, horizontal-flip
test-time augmentation, ensembles, confusion matrices and per-class accuracy.

Metrics come from torchmetrics; this module only gathers probabilities and writes files.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
)

from src.modules.tta import flip_tta


@dataclass
class Predictions:
    """Class probabilities for every image of one split, in the split's order."""

    probs: torch.Tensor  # [N, K] softmax of the images as they are
    flipped_probs: torch.Tensor  # [N, K] softmax of the horizontally mirrored images
    labels: torch.Tensor  # [N] int64

    @property
    def tta_probs(self) -> torch.Tensor:
        return flip_tta(self.probs, self.flipped_probs)


def ensemble_probs(members: Sequence[torch.Tensor]) -> torch.Tensor:
    """Average the predicted probabilities of several models: [M x [N, K]] -> [N, K]."""
    return torch.stack(list(members)).mean(dim=0)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float(multiclass_accuracy(probs, labels, num_classes=probs.shape[1],
                                     average="micro"))


def confusion_matrix(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[K, K] counts: row = true class, column = predicted class."""
    return multiclass_confusion_matrix(probs, labels, num_classes=probs.shape[1])


def per_class_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[K] accuracy on the images of each class (recall); 0 for a class with no images."""
    return multiclass_accuracy(probs, labels, num_classes=probs.shape[1], average="none")


class _FlipPredictor(L.LightningModule):
    """Wraps a classifier so `Trainer.predict` returns the probabilities of each image and
    of its mirror image, with the labels (the datamodule normalizes the batches)."""

    def __init__(self, classifier: L.LightningModule):
        super().__init__()
        self.classifier = classifier

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch  # [B, C, H, W] normalized, [B]
        probs = self.classifier(images).float().softmax(dim=-1)
        # Per-channel normalization commutes with a flip, so mirroring here equals
        # mirroring the raw image.
        flipped = self.classifier(images.flip(-1)).float().softmax(dim=-1)
        return probs, flipped, labels


def predict_with_flip(classifier: L.LightningModule, datamodule: L.LightningDataModule,
                      trainer: L.Trainer) -> Predictions:
    """Probabilities of the datamodule's prediction split (the test split) and its mirror."""
    batches = trainer.predict(_FlipPredictor(classifier), datamodule=datamodule)
    probs, flipped, labels = (torch.cat([batch[i].cpu() for batch in batches])
                              for i in range(3))
    return Predictions(probs=probs, flipped_probs=flipped, labels=labels)
