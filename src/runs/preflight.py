"""Checks of the machine a run asks for, made before the Trainer exists or writes a file.

Lightning would find some of these problems itself, but later (after folders are
created) or with a message that does not say which flag to change.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from src.core.errors import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """Fail with one line when `path` cannot be created or written (set through `flag`).

    Nothing is left behind: the check walks up to the nearest existing folder and creates
    and removes an empty folder there, the one test that also holds for root, read-only
    mounts and network file systems (os.access answers "yes" to root everywhere).
    """
    target = Path(path).absolute()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path}: {target} is a file, not a folder; "
                          f"choose a folder for the run's output")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path} cannot be created: {existing} is a file; "
                          f"choose another folder for the run's output")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as error:
        raise ConfigError(f"{flag} {path} is not writable ({error.strerror} in {existing}); "
                          f"choose a folder you can write to") from None


def runs_on_gpu(accelerator: object) -> bool:
    """Whether Trainer(accelerator=...) will pick a CUDA device."""
    if accelerator in GPU_ACCELERATORS:
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def check_accelerator(accelerator: object, precision: object) -> None:
    """Fail with one line when the requested device or precision is not on this machine."""
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(f"--trainer.accelerator {accelerator} asks for a GPU, but PyTorch "
                          f"sees none (torch.cuda.is_available() is False); use "
                          f"--trainer.accelerator cpu, or auto to take a GPU when there is one")
    wants_bf16 = isinstance(precision, str) and precision.startswith("bf16")
    # Emulated bf16 (pre-Ampere GPUs) runs, but far slower than 16-mixed: refuse it.
    if wants_bf16 and runs_on_gpu(accelerator) and not torch.cuda.is_bf16_supported(
            including_emulation=False):
        raise ConfigError(f"--trainer.precision {precision}: the GPU "
                          f"{torch.cuda.get_device_name()} has no native bfloat16 support; "
                          f"use --trainer.precision 16-mixed or 32-true")


def default_precision(accelerator: Any) -> str:
    """bf16 mixed precision on GPUs that support it, full precision elsewhere."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    native_bf16 = on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)
    return "bf16-mixed" if native_bf16 else "32-true"
