"""EpochTimer: wall-clock seconds of each training epoch, logged as `time/train_epoch_s`.

The time runs from the start of the epoch to its end, minus the validation passes run
inside it (Lightning validates before `on_train_epoch_end`), so it measures training
alone: what a larger batch or a faster data path should shorten. CUDA runs
asynchronously, so the clock is read after a synchronize, at the few points where it is
read (epoch end, validation start and end), never per step.
"""

import time

import lightning as L

from src.core.clock import device_time


class EpochTimer(L.Callback):
    """Log `time/train_epoch_s` at the end of every training epoch.

    Args:
        enabled: measure and log the time of each training epoch.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._epoch_start: float | None = None
        self._validation_start: float | None = None
        self._validation_seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The previous epoch's end (or validation) already waited for the device.
        if self.enabled:
            self._epoch_start = time.perf_counter()
            self._validation_seconds = 0.0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is not None and not trainer.sanity_checking:
            self._validation_start = device_time(pl_module.device)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validation_start is not None:
            self._validation_seconds += device_time(pl_module.device) - self._validation_start
            self._validation_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is None:
            return
        seconds = device_time(pl_module.device) - self._epoch_start - self._validation_seconds
        pl_module.log("time/train_epoch_s", seconds, on_step=False, on_epoch=True)
        self._epoch_start = None
