"""Weight averaging: EMA of the weights, and stochastic weight averaging (SWA).

Both are Lightning's `WeightAveraging` callback (a `torch.optim.swa_utils.AveragedModel`
of the LightningModule) with what it lacks for our fit-then-test runs:

- Validation runs on the averaged weights, and every checkpoint written during fitting
  holds them in its `state_dict` (the raw weights go to `current_model_state`, for
  resuming): `load_from_checkpoint` and the best-checkpoint test see averaged weights.
  Lightning's callback already swaps the averaged weights in for validation and writes
  them to checkpoints.
- `trainer.test(ckpt_path=...)` after `fit` in the same Trainer tests those averaged
  weights. Lightning's callback would reload `current_model_state` (the raw weights) over
  them, because its averaged copy still exists after fitting; here it is dropped when a
  non-fit stage starts, so evaluation uses exactly the weights loaded.
- The averaged copy lives on the training device. Lightning builds it in `setup`, before
  the strategy moves the model (so on the CPU when training on a GPU), which would copy
  every weight to the host at each update; it is moved in `on_fit_start`.

EMA updates after every optimizer step: ema = decay * ema + (1 - decay) * w (first
update: ema = w), on parameters and buffers (BatchNorm statistics too), like timm's
ModelEmaV2. SWA takes the equal average of the weights at the end of each epoch from
`epoch_start * max_epochs` on (Izmailov et al., 2018); before that, validation sees the
current weights. By default BatchNorm statistics of the averaged weights are recomputed
after each averaging with one forward pass over the training batches
(`torch.optim.swa_utils.update_bn`), as the SWA paper prescribes; with
`update_bn=False` the running statistics are averaged like the weights instead. SWA
leaves the learning rate to the model's schedule: SWA proper holds it constant (or
cyclic) while averaging, so pair it with such a schedule.
"""

import itertools
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn, update_bn

from src.core.errors import ConfigError, check_range


class _EvaluateAveragedWeights(WeightAveraging):
    """WeightAveraging with the fixes listed in the module docstring."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            # validate/test/predict: the module holds the weights to evaluate (from a
            # checkpoint written while fitting: the averaged ones); nothing to swap in.
            self._average_model = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # AveragedModel tests its update counter in Python at every update
        # (`n_averaged == 0`, `> 0`): kept on the host, that costs no device sync.
        counter = self._average_model.n_averaged
        if self._device is None:
            self._average_model.to(pl_module.device)
        self._average_model.n_averaged = counter if counter.device.type == "cpu" else counter.cpu()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None:  # resuming a fit: restore both weight sets
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def _copy_current_to_average(self, pl_module: L.LightningModule) -> None:
        average = self._average_model.module
        for average_tensor, current_tensor in zip(
                itertools.chain(average.parameters(), average.buffers()),
                itertools.chain(pl_module.parameters(), pl_module.buffers()), strict=True):
            average_tensor.detach().copy_(current_tensor.detach())


class EMAWeights(_EvaluateAveragedWeights):
    """Exponential moving average of the weights and buffers, updated every optimizer step.

    Args:
        decay: weight of the old average at each update, in (0, 1); about 1 / (1 - decay)
            steps are averaged (0.999: ~1000 steps).
        device: where to keep the averaged copy; default: the training device.
    """

    def __init__(self, decay: float = 0.999, device: str | None = None):
        check_range("ema.decay", decay, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        super().__init__(device=device, use_buffers=True,
                         multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None


class SWAWeights(_EvaluateAveragedWeights):
    """Equal average of the weights at the end of every epoch from `epoch_start` on.

    Args:
        epoch_start: fraction of max_epochs before averaging starts, in [0, 1): epochs
            floor(epoch_start * max_epochs) .. max_epochs - 1 (0-based) are averaged,
            each at its last optimizer step, before that epoch's validation.
        update_bn: recompute BatchNorm statistics of the averaged weights with one
            forward pass over the training batches after each averaging (True), or
            average the running statistics like the weights (False).
        device: where to keep the averaged copy; default: the training device.
    """

    def __init__(self, epoch_start: float = 0.75, update_bn: bool = True,
                 device: str | None = None):
        check_range("swa.epoch_start", epoch_start, 0.0, 1.0, high_inclusive=False)
        super().__init__(device=device, use_buffers=not update_bn)  # no avg_fn: equal mean
        self.epoch_start = epoch_start
        self.update_bn = update_bn
        self.first_epoch = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            if trainer.max_epochs is None or trainer.max_epochs < 1:
                raise ConfigError("SWA starts at a fraction of max_epochs; set "
                                  "--trainer.max_epochs")
            self.first_epoch = int(self.epoch_start * trainer.max_epochs)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        # Asked by on_train_batch_end below, which calls it only at an epoch's last batch.
        return step_idx is not None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch < self.first_epoch:
            # Not averaging yet: validation and checkpoints see the current weights.
            self._copy_current_to_average(pl_module)
            return
        if batch_idx + 1 < trainer.num_training_batches:
            return
        last_update = self._latest_update_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.update_bn and self._latest_update_step != last_update:
            self._recompute_batch_norm(trainer)

    def _recompute_batch_norm(self, trainer: L.Trainer) -> None:
        """One forward pass of the averaged model over this rank's training batches
        (transferred, augmented and normalized exactly as for training)."""
        def inputs():
            for batch in trainer.train_dataloader:
                yield trainer.strategy.batch_to_device(batch)[0]

        device = trainer.strategy.root_device
        # Forked RNG: augmentation draws here leave the training run's random stream
        # (and so its raw weights) identical to a run without SWA.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                trainer.precision_plugin.forward_context():
            update_bn(inputs(), self._average_model.module)


def build_weight_averaging(ema_decay: float | None = None, swa_epoch_start: float | None = None,
                           swa_update_bn: bool = True) -> list[WeightAveraging]:
    """The weight-averaging callback chosen by the flags: EMA, SWA or none."""
    if ema_decay is not None and swa_epoch_start is not None:
        raise ConfigError("choose one weight averaging: --ema.decay or --swa.epoch_start, "
                          "not both")
    if ema_decay is not None:
        return [EMAWeights(decay=ema_decay)]
    if swa_epoch_start is not None:
        return [SWAWeights(epoch_start=swa_epoch_start, update_bn=swa_update_bn)]
    return []
