"""FiniteGuard: stop a diverged run at once and never checkpoint a broken model.

A NaN or infinite training loss, read on logging steps (`log_every_n_steps`), stops
training with one line naming the step, epoch and learning rate. Checkpoints whose
weights are no longer finite are refused, so `last.ckpt` keeps the last good state (the
loss may not have been read since the weights broke, and a checkpoint may be due).
"""

import os
from typing import Any

import lightning as L
import torch


class TrainingDiverged(RuntimeError):
    """The loss or the weights stopped being finite numbers."""


def _where(trainer: L.Trainer) -> str:
    learning_rates = [group["lr"] for optimizer in trainer.optimizers
                      for group in optimizer.param_groups]
    lr = ", ".join(f"{lr:.3g}" for lr in learning_rates) if learning_rates else "unknown"
    return f"step {trainer.global_step}, epoch {trainer.current_epoch}, learning rate {lr}"


def _last_good_checkpoint(trainer: L.Trainer) -> str:
    saved = [callback.last_model_path for callback in trainer.checkpoint_callbacks
             if os.path.isfile(getattr(callback, "last_model_path", "") or "")]
    return f"last good checkpoint: {saved[0]}" if saved else "no checkpoint was saved yet"


class FiniteGuard(L.Callback):
    """Raise `TrainingDiverged` on a non-finite loss or before saving non-finite weights."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        # Lightning runs checkpoint callbacks after all others, so this fires before any
        # checkpoint of this step is written. The loss is read on logging steps only (a read
        # per step would stall the GPU every step); non-finite weights are still never
        # checkpointed (on_save_checkpoint). Under DDP all ranks agree on the decision, so
        # none is left waiting for the others in the next all-reduce.
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or (trainer.global_step % max(1, trainer.log_every_n_steps) != 0):
            return
        finite = bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            raise TrainingDiverged(
                f"training loss is {loss.item()} at {_where(trainer)}; training stopped "
                f"({_last_good_checkpoint(trainer)}). Try a lower learning rate.")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        broken = [name for name, tensor in checkpoint["state_dict"].items()
                  if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if broken:
            raise TrainingDiverged(
                f"weights became non-finite ({broken[0]}) at {_where(trainer)}; training "
                f"stopped without saving them ({_last_good_checkpoint(trainer)}). "
                f"Try a lower learning rate.")
