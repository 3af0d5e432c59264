"""Checkpoint checks that turn unpickling and state-dict tracebacks into one line.

`read_checkpoint(path)` opens a file with `torch.load(weights_only=True)` (nothing in
the file is executed) and says in one line when it is missing or is not a Lightning
checkpoint. `check_weights_fit(...)` compares parameter names and shapes before any are
copied, so a checkpoint of another architecture or number of classes is refused with the
settings that differ rather than a page of missing keys.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from src.errors import ConfigError

# The ImageClassifier arguments that decide the names and shapes of the weights.
NETWORK_SETTINGS = ("arch", "num_classes", "in_channels", "image_size", "norm", "act",
                    "hidden_widths", "resnet_widths")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint onto the CPU, or fail with one line saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; pass a .ckpt file written by a "
                          f"run (<run dir>/version_N/checkpoints/*.ckpt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling, zip, EOF errors...: every unreadable file
        reason = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"{path} is not a readable PyTorch checkpoint "
                          f"({type(error).__name__}: {reason}); pass a .ckpt file written "
                          f"by a run") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= set(
            checkpoint):
        raise ConfigError(f"{path} is a PyTorch file but not a Lightning checkpoint of an "
                          f"ImageClassifier (no state_dict and hyper_parameters); pass a "
                          f".ckpt file written by a run")
    return checkpoint


def _plain(value: Any) -> Any:
    return [_plain(item) for item in value] if isinstance(value, list | tuple) else value


def check_weights_fit(expected: Mapping[str, torch.Tensor], checkpoint: Mapping[str, Any],
                      hparams: Mapping[str, Any]) -> None:
    """Fail with one line unless the checkpoint's weights have the names and shapes of
    `expected` (the state dict of the network built from `hparams`)."""
    found = checkpoint["state_dict"]
    missing = [name for name in expected if name not in found]
    unknown = [name for name in found if name not in expected]
    reshaped = [name for name in expected
                if name in found and tuple(found[name].shape) != tuple(expected[name].shape)]
    if not (missing or unknown or reshaped):
        return
    saved = checkpoint.get("hyper_parameters") or {}
    details = [f"{key}={_plain(saved[key])!r} there, {_plain(hparams[key])!r} here"
               for key in NETWORK_SETTINGS
               if key in saved and key in hparams and _plain(saved[key]) != _plain(hparams[key])]
    if not details and (missing or unknown):
        example = (missing or unknown)[0]
        details.append(f"{len(missing)} weights of this network are not in it and "
                       f"{len(unknown)} of its weights are not in this network, e.g. {example}")
    if not details:
        name = reshaped[0]
        details.append(f"{name} is {list(found[name].shape)} there, "
                       f"{list(expected[name].shape)} here")
    raise ConfigError(f"the checkpoint holds another network ({'; '.join(details)}); load it "
                      f"with the --model settings of the run that wrote it")
