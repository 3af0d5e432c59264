"""Reading a clock around device work: CUDA runs asynchronously, so the kernels already
queued belong to the time being measured and are waited for first."""

import time

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_time(device: torch.device) -> float:
    """`time.perf_counter()` once `device` has finished the work queued on it."""
    synchronize(device)
    return time.perf_counter()
