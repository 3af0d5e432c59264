"""Optimizer and learning-rate schedule factories: names -> torch.optim classes.

Schedules get their length from the trainer (`estimated_stepping_batches`, steps per
epoch), never from a hard-coded number, and say whether they step per optimizer step or
per epoch, as Lightning's scheduler config expects.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer, lr_scheduler

from src.errors import ConfigError, check_range, lookup


@dataclass(frozen=True)
class OptimizerSettings:
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)


def _sgd(params: Iterable, s: OptimizerSettings) -> Optimizer:
    return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov,
                           weight_decay=s.weight_decay)


def _adam(params: Iterable, s: OptimizerSettings) -> Optimizer:
    return torch.optim.Adam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


def _adamw(params: Iterable, s: OptimizerSettings) -> Optimizer:
    return torch.optim.AdamW(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


OPTIMIZERS: dict[str, Callable[[Iterable, OptimizerSettings], Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
}


def validate_optimizer(name: str, settings: OptimizerSettings) -> None:
    """Fail early (before any training or file output) on a bad name or value."""
    lookup(OPTIMIZERS, name, "optimizer")
    check_range("lr", settings.lr, 0.0, low_inclusive=False)
    check_range("weight_decay", settings.weight_decay, 0.0)
    check_range("momentum", settings.momentum, 0.0, 1.0, high_inclusive=False)
    if name == "sgd" and settings.nesterov and settings.momentum <= 0:
        raise ConfigError("nesterov=True needs momentum > 0; set --model.momentum 0.9 "
                          "or --model.nesterov false")


def make_optimizer(name: str, params: Iterable, settings: OptimizerSettings) -> Optimizer:
    validate_optimizer(name, settings)
    return OPTIMIZERS[name.lower()](params, settings)


@dataclass(frozen=True)
class ScheduleSettings:
    total_steps: int  # optimizer steps in the whole run, from the trainer
    max_epochs: int
    onecycle_pct_start: float = 0.25  # fraction of the run spent warming up
    step_size_epochs: int = 30
    step_gamma: float = 0.1
    min_lr: float = 0.0


# Each builder returns (scheduler, interval) or None for a constant learning rate.
ScheduleBuilder = Callable[[Optimizer, ScheduleSettings], tuple[Any, str] | None]


def _constant(optimizer: Optimizer, s: ScheduleSettings) -> None:
    return None


def _onecycle(optimizer: Optimizer, s: ScheduleSettings) -> tuple[Any, str]:
    check_range("onecycle_pct_start", s.onecycle_pct_start, 0.0, 1.0, low_inclusive=False,
                high_inclusive=False)
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=s.total_steps,
                                   pct_start=s.onecycle_pct_start), "step"


def _cosine(optimizer: Optimizer, s: ScheduleSettings) -> tuple[Any, str]:
    # Stepped per batch so the decay is smooth even for runs of a few epochs.
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.total_steps,
                                          eta_min=s.min_lr), "step"


def _step(optimizer: Optimizer, s: ScheduleSettings) -> tuple[Any, str]:
    check_range("step_size_epochs", s.step_size_epochs, 1)
    return lr_scheduler.StepLR(optimizer, step_size=s.step_size_epochs,
                               gamma=s.step_gamma), "epoch"


SCHEDULERS: dict[str, ScheduleBuilder] = {
    "constant": _constant,
    "onecycle": _onecycle,
    "cosine": _cosine,
    "step": _step,
}


def validate_scheduler(name: str) -> None:
    lookup(SCHEDULERS, name, "scheduler")


def make_scheduler(name: str, optimizer: Optimizer,
                   settings: ScheduleSettings) -> dict[str, Any] | None:
    """Return Lightning's `lr_scheduler` config dict, or None for a constant rate."""
    built = lookup(SCHEDULERS, name, "scheduler")(optimizer, settings)
    if built is None:
        return None
    scheduler, interval = built
    return {"scheduler": scheduler, "interval": interval, "frequency": 1, "name": "lr"}
