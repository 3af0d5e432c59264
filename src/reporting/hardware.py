"""The one description of the machine a figure was measured on, for every report."""

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_line() -> str:
    """'GPU NVIDIA H100 80GB HBM3, 16 CPU cores; torch 2.11.0' or 'CPU AMD EPYC ... (2 cores,
    2 torch threads), no GPU; torch 2.14.1'."""
    cores = os.cpu_count()
    if torch.cuda.is_available():
        device = f"GPU {torch.cuda.get_device_name(0)}, {cores} CPU cores"
    else:
        threads = torch.get_num_threads()
        device = f"CPU {cpu_model()} ({cores} cores, {threads} torch threads), no GPU"
    return f"{device}; torch {torch.__version__}"
