"""ExactResume: restore what Lightning's own resume misses, so a resumed run matches.

- The global random number generators. Lightning checkpoints do not hold them, yet
  dropout and the on-device batch augmentations draw from them: without them a resumed
  run draws other crops, flips and dropout masks than the unbroken run. They are stored
  as tensors and plain numbers so checkpoints still load with `weights_only=True`.
- The training loader's position within the epoch. Lightning saves it in the fit-loop
  state but only restores it when it sets the loader up after loading the checkpoint;
  a schedule that asks for `trainer.estimated_stepping_batches` in `configure_optimizers`
  (onecycle, cosine) makes it set the loader up before, and the position is dropped.
  Here it is handed to the loader when training starts, before its first batch.
"""

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The torch (CPU and every CUDA device), numpy and Python RNG states."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's key array becomes a tensor: weights-only loading refuses numpy arrays.
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss,
                  cached_gaussian),
        "python": random.getstate(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available():
        # A run resumed on a machine with fewer GPUs restores the devices it has.
        for device, state in enumerate(states["torch.cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss,
                         cached_gaussian))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class ExactResume(L.Callback):
    """Checkpoint the RNG states; on resume, restore them and the loader position."""

    def __init__(self) -> None:
        self._rng_states: dict[str, Any] | None = None
        self._loader_states: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng_states = state_dict["rng"]

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
        self._loader_states = fit_loop.get("state_dict", {}).get("combined_loader", [])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Both applied here, after everything that runs between loading the checkpoint and
        # the first training batch: a random draw there must not shift the stream the
        # training batches see, and the loader reads its position at its first batch.
        if self._rng_states is not None:
            restore_rng_states(self._rng_states)
            self._rng_states = None
        loader = trainer.train_dataloader
        if len(self._loader_states) == 1 and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(self._loader_states[0])
        self._loader_states = []
