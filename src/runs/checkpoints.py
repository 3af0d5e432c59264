"""Writing and reading checkpoints safely.

- `SafeCheckpointIO` (installed by the command line as the trainer's checkpoint plugin)
  writes each checkpoint to a temporary file in the same folder and renames it over the
  target, so a crash or a kill while saving never leaves a truncated `last.ckpt`; it
  reads with `torch.load(weights_only=True)`, which refuses to run pickled code, and
  turns a file that is not a readable checkpoint into one `CheckpointError` line.
- `read_checkpoint` is the one reader of checkpoint files (resume, test, predict, evaluate
  and `ImageClassifier.load_from_checkpoint` all go through it); `check_checkpoint_fits`
  checks a file's weights against a module before they are loaded.
"""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from src.core.errors import UserInputError

# Hyperparameters that shape the network's weights, named when a checkpoint does not fit.
NETWORK_HPARAMS = ("arch", "num_classes", "in_channels", "image_size", "norm", "norm_groups",
                   "hidden_widths", "resnet_widths")


class CheckpointError(UserInputError):
    """A checkpoint file that cannot be read, or that belongs to another network."""


def _is_local(path: str | Path) -> bool:
    return "://" not in str(path)


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint with weights-only unpickling; one line when it fails."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in reason:
            reason = ("it holds pickled Python objects, which are only loaded from trusted "
                      "files with torch.load(weights_only=False)")
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def check_checkpoint_fits(checkpoint: dict[str, Any], model: torch.nn.Module,
                          path: str | Path = "the checkpoint") -> None:
    """Fail with one line when the checkpoint's weights do not fit `model`'s parameters."""
    expected = model.state_dict()
    saved = checkpoint["state_dict"]
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    reshaped = [name for name in expected
                if name in saved and saved[name].shape != expected[name].shape]
    if not (missing or unexpected or reshaped):
        return
    saved_hparams = checkpoint.get("hyper_parameters", {})
    model_hparams = getattr(model, "hparams", {})
    differences = [f"{key}={saved_hparams[key]!r} there, {model_hparams[key]!r} here"
                   for key in NETWORK_HPARAMS
                   if key in saved_hparams and key in model_hparams
                   and _plain(saved_hparams[key]) != _plain(model_hparams[key])]
    if not differences:
        if reshaped:
            name = reshaped[0]
            differences = [f"{name} is {tuple(saved[name].shape)} there, "
                           f"{tuple(expected[name].shape)} here"]
        else:
            name = (missing or unexpected)[0]
            differences = [f"{name} is {'missing' if missing else 'unexpected'} there"]
    raise CheckpointError(f"{path} holds a different network ({'; '.join(differences)})")


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal when their items do ([32] in YAML, (32,) in Python)."""
    return list(value) if isinstance(value, list | tuple) else value


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic checkpoint writes and weights-only reads (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same folder, so the rename below stays on one file system and is atomic.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def load_checkpoint(self, path: Any, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        # Weights-only whatever the caller asks: a checkpoint is data, never code.
        if not _is_local(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        return read_checkpoint(path, map_location=map_location)
