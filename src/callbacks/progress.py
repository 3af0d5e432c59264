"""The training progress bar, with the run's length and an honest ETA after a resume.

Lightning's bar says "Epoch 3" without the number of epochs, and after a resume in the
middle of an epoch it counts the batches done before the resume as done now, so its rate
and ETA are wrong for that epoch. This bar says "Epoch 4/30", and when an epoch's first
batch is not batch 0 (the epoch was resumed there), it starts counting there (tqdm's
`initial`), so the rate covers only the batches trained now.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class RunProgressBar(TQDMProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self._first_batch_of_epoch = True

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            self.train_progress_bar.set_description(
                f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
        self._first_batch_of_epoch = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._first_batch_of_epoch:
            self._first_batch_of_epoch = False
            if batch_idx > 0:  # resumed at this batch: the ones before were not trained now
                bar = self.train_progress_bar
                bar.initial = bar.n = batch_idx
                bar.start_t = bar._time()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
