"""Clocks for training-speed measurements: steps per second and time to an accuracy.

Device work is asynchronous, so every clock reading waits for the device first
(`device_time`); nothing else here waits for it.
"""

import time
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

from src.core.clock import device_time
from src.modules.tta import mirror_averaged_probs


class StepTimer(L.Callback):
    """Times the training steps after `warmup` steps: images per second over them.

    The clock runs from the end of the last warm-up step (the start of training when
    `warmup` is 0) to the end of the run's last step (`trainer.max_steps`), so it covers
    the batch loading, transfer, augmentation and optimizer step of each measured step.
    The device is waited for only at those two points: a wait after every step would
    stop the host from queueing the next step while the device works, as it does in a
    real run.
    """

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.images = 0
        self.start: float | None = None
        self.end: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.warmup == 0:
            self.start = device_time(pl_module.device)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps done, this one included
        if step == self.warmup:
            self.start = device_time(pl_module.device)
        elif step > self.warmup:
            self.images += len(batch[1])  # a shape: no device sync
            if step == trainer.max_steps:
                self.end = device_time(pl_module.device)

    @property
    def images_per_second(self) -> float:
        if self.start is None or self.end is None or self.images == 0:
            raise RuntimeError("no measured steps: train for max_steps > warmup steps")
        return self.images / (self.end - self.start)


def evaluated_module(trainer: L.Trainer, pl_module: L.LightningModule) -> L.LightningModule:
    """The weights a fit would test: the EMA/SWA average when a callback keeps one."""
    for callback in trainer.callbacks:
        average = getattr(callback, "_average_model", None)
        if isinstance(callback, WeightAveraging) and average is not None:
            return average.module
    return pl_module


@torch.no_grad()
def accuracies(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               labels: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
               device: torch.device, batch_size: int = 1000,
               with_flip: bool = False) -> tuple[float, float | None]:
    """Shares of `images` (uint8 [N, C, H, W], any device) classified as `labels` [N], in
    one pass: (plain, with flip TTA) where flip TTA classifies by the mean softmax of each
    image and its mirror image; the second is None unless `with_flip`."""
    correct = torch.zeros((), dtype=torch.int64, device=device)
    correct_tta = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(labels), batch_size):
        batch = normalize(images[start:start + batch_size].to(device))
        batch_labels = labels[start:start + batch_size].to(device)
        logits = forward(batch)  # [B, K]
        correct += (logits.argmax(dim=-1) == batch_labels).sum()
        if with_flip:
            probs = mirror_averaged_probs(forward, batch, logits)
            correct_tta += (probs.argmax(dim=-1) == batch_labels).sum()
    plain = correct.item() / len(labels)
    return plain, correct_tta.item() / len(labels) if with_flip else None


def accuracy(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
             labels: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
             device: torch.device, batch_size: int = 1000) -> float:
    """Share of `images` (uint8 [N, C, H, W], any device) classified as `labels` [N]."""
    return accuracies(forward, images, labels, normalize, device, batch_size)[0]


class TimeToAccuracy(L.Callback):
    """Test accuracy after every training epoch, off the clock; stops training once it
    reaches `target`.

    The clock starts when training starts (data already loaded) and counts everything
    Lightning does in the epochs (validation included), minus this callback's own test
    evaluations. `history`: (epoch, seconds, test accuracy) after each epoch; `reached`:
    that tuple for the first epoch at or above the target, or None. With `flip_tta`,
    `flip_tta_accuracy[epoch]` is the test accuracy with flip TTA after that epoch, also
    off the clock; the target is judged on the plain accuracy.
    """

    def __init__(self, target: float, images: torch.Tensor, labels: torch.Tensor,
                 flip_tta: bool = False):
        self.target = target
        self.images, self.labels = images, labels
        self.flip_tta = flip_tta
        self.flip_tta_accuracy: dict[int, float] = {}
        self.history: list[tuple[int, float, float]] = []
        self.reached: tuple[int, float, float] | None = None
        self.start = 0.0
        self.off_clock = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = device_time(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        paused = device_time(pl_module.device)
        seconds = paused - self.start - self.off_clock
        module = evaluated_module(trainer, pl_module)
        was_training = module.training
        module.eval()
        with trainer.precision_plugin.forward_context():
            value, value_tta = accuracies(module, self.images, self.labels,
                                          trainer.datamodule.normalize, pl_module.device,
                                          with_flip=self.flip_tta)
        if value_tta is not None:
            self.flip_tta_accuracy[trainer.current_epoch + 1] = value_tta
        module.train(was_training)
        entry = (trainer.current_epoch + 1, seconds, value)
        self.history.append(entry)
        if value >= self.target and self.reached is None:
            self.reached = entry
            trainer.should_stop = True
        self.off_clock += time.perf_counter() - paused
