"""The training progress bar, with the run's length and an honest ETA after a resume.

Lightning's bar says "Epoch 3" without the number of epochs, and after a resume in the
middle of an epoch it counts the batches done before the resume as done now, so its rate
and ETA are wrong for that epoch. This bar says "Epoch 4/30" and starts such an epoch at
the resumed batch (tqdm's `initial`), so the rate counts only the batches trained now.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class RunProgressBar(TQDMProgressBar):
    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        bar = self.train_progress_bar
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
        # Batches of this epoch trained before a resume (0 at a normal epoch start).
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if done > 0:
            bar.initial = bar.n = done
            bar.refresh()
