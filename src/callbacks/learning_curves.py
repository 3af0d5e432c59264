"""LearningCurves: loss and accuracy per epoch, training and validation, as a PNG and a
CSV in the run folder after every fit, so overfitting is visible without W&B."""

import csv
import math
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from src.reporting.plots import plot_learning_curves

# Epoch-level metric names logged by ImageClassifier -> columns of the curves.
METRICS = {"train/loss_epoch": "train_loss", "train/acc": "train_acc",
           "val/loss": "val_loss", "val/acc": "val_acc"}
COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")


class LearningCurves(L.Callback):
    """Write <log_dir>/learning_curves.png and learning_curves.csv when fitting ends
    (also when it stops on an error or Ctrl-C, with the epochs completed so far).

    Args:
        enabled: record and write the curves.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.history: dict[int, dict[str, float]] = {}  # epoch -> column -> value

    def _record(self, trainer: L.Trainer, prefix: str) -> None:
        row = self.history.setdefault(trainer.current_epoch, {"epoch": trainer.current_epoch})
        for name, column in METRICS.items():
            if name.startswith(prefix) and name in trainer.callback_metrics:
                row[column] = float(trainer.callback_metrics[name])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The validation epoch's metrics are final here; the sanity check is no epoch.
        if self.enabled and not trainer.sanity_checking:
            self._record(trainer, "val/")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled:
            self._record(trainer, "train/")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # trainer.log_dir is a broadcast under DDP: every rank asks, rank 0 writes.
        self.write(trainer.log_dir)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        # No broadcast here: after an exception the other ranks may be gone.
        if trainer.world_size == 1:
            self.write(trainer.log_dir)

    @rank_zero_only
    def write(self, log_dir: str | None) -> None:
        if not self.enabled or not self.history or log_dir is None:
            return
        rows = [self.history[epoch] for epoch in sorted(self.history)]
        out_dir = Path(log_dir)
        os.makedirs(out_dir, exist_ok=True)
        with open(out_dir / "learning_curves.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([row.get(column, math.nan) for column in COLUMNS])
        plot_learning_curves(rows, out_dir / "learning_curves.png")
