"""InitialLossCheck: is the loss of the very first training batch what chance predicts?

A freshly initialized classifier should be unsure of every class: its loss on the first
batch should be close to the loss of uniform predictions, ln(num_classes) for
cross-entropy (2.303 for 10 classes). Far above it means overconfident wrong outputs
(weights initialized too large, inputs not normalized); far below it means the task
leaks the answer or the loss is not the one intended. "Far" is a relative difference of
more than `tolerance` (default 25%: 1.73 to 2.88 for 10 classes), wide enough for the
usual spread of a default initialization and narrow enough to catch a broken one.
"""

import math

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from src.core.errors import check_range


def uniform_prediction_loss(pl_module: L.LightningModule, targets: torch.Tensor,
                            num_classes: int) -> float:
    """The model's training loss for all-zero logits (uniform predictions) on `targets`:
    ln(num_classes) for cross-entropy, with or without label smoothing."""
    if not hasattr(pl_module, "loss"):
        return math.log(num_classes)
    zeros = torch.zeros(len(targets), num_classes, device=targets.device)
    with torch.no_grad():
        return float(pl_module.loss(zeros, targets))


class InitialLossCheck(L.Callback):
    """Compare the first training batch's loss with the loss of uniform predictions.

    Args:
        enabled: run the check (it costs nothing: it reads the first batch's loss).
        tolerance: warn when |loss - expected| / expected exceeds this fraction.
    """

    def __init__(self, enabled: bool = True, tolerance: float = 0.25):
        check_range("initial_loss_check.tolerance", tolerance, 0.0, low_inclusive=False)
        self.enabled = enabled
        self.tolerance = tolerance
        self.initial_loss: float | None = None
        self.expected_loss: float | None = None
        self._pending = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only a run that starts from scratch; a resumed run is past its first batch.
        self._pending = self.enabled and trainer.global_step == 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if not self._pending:
            return
        self._pending = False
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        targets = batch[1]  # [B] class indices (or [B, K] probabilities)
        num_classes = pl_module.hparams.num_classes
        # Lightning hands on the loss divided by the number of accumulated batches.
        self.initial_loss = float(loss.detach()) * trainer.accumulate_grad_batches
        self.expected_loss = uniform_prediction_loss(pl_module, targets, num_classes)
        self.report(num_classes)

    def report(self, num_classes: int) -> None:
        loss, expected = self.initial_loss, self.expected_loss
        off = abs(loss - expected) / expected
        text = (f"Initial loss check: first-batch loss {loss:.3f}, expected about "
                f"{expected:.3f} for uniform predictions (ln {num_classes} = "
                f"{math.log(num_classes):.3f} for cross-entropy): {100 * off:.0f}% off")
        if off <= self.tolerance:
            rank_zero_info(f"{text}, OK.")
        elif loss > expected:
            rank_zero_warn(f"{text}, more than {100 * self.tolerance:.0f}%. The network is "
                           f"confidently wrong before training: check the initialization "
                           f"(weights too large?), that inputs are normalized, and the loss.")
        else:
            rank_zero_warn(f"{text}, more than {100 * self.tolerance:.0f}%. The loss is "
                           f"lower than chance before training: check the loss function "
                           f"and that labels do not leak into the inputs.")
