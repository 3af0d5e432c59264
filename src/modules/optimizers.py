"""Optimizer factory: one registry maps names to torch.optim / timm.optim classes.

`OptimizerSettings` declares every optimizer setting once (src/core/settings.py).
`make_optimizer(module, settings)` also splits the parameters into a decayed and a
non-decayed group when biases and normalization parameters should get no weight decay.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from timm.optim import Lamb
from torch import nn
from torch.optim import Optimizer

from src.core.errors import ConfigError
from src.core.settings import check_settings, setting, settings_group

# L-BFGS line search: torch's names, plus "none" for a fixed step of size lr.
LBFGS_LINE_SEARCHES: dict[str, str | None] = {"strong_wolfe": "strong_wolfe", "none": None}


ParamGroups = list[dict[str, Any]]


def _sgd(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov,
                           weight_decay=s.weight_decay)


def _adagrad(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    return torch.optim.Adagrad(groups, lr=s.lr, weight_decay=s.weight_decay)


def _rmsprop(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    return torch.optim.RMSprop(groups, lr=s.lr, alpha=s.rmsprop_alpha,
                               momentum=s.rmsprop_momentum, weight_decay=s.weight_decay)


def _adam(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    return torch.optim.Adam(groups, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


def _adamw(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


def _lamb(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    # always_adapt: timm's Lamb applies the layer-wise trust ratio only where weight decay
    # is non-zero unless told to always adapt; without it LAMB at weight decay 0 (and on
    # the no-decay group) would be Adam with gradient clipping.
    return Lamb(groups, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay,
                always_adapt=True)


def _lbfgs(groups: ParamGroups, s: "OptimizerSettings") -> Optimizer:
    # L-BFGS re-evaluates the loss through the closure Lightning passes to step();
    # it supports one parameter group and no weight decay (checked in validate_optimizer).
    return torch.optim.LBFGS(groups, lr=s.lr, max_iter=s.lbfgs_max_iter,
                             history_size=s.lbfgs_history_size,
                             line_search_fn=LBFGS_LINE_SEARCHES[s.lbfgs_line_search])


OPTIMIZERS: dict[str, Callable[[ParamGroups, "OptimizerSettings"], Optimizer]] = {
    "sgd": _sgd,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adam": _adam,
    "adamw": _adamw,
    "lamb": _lamb,
    "lbfgs": _lbfgs,
}


_ADAM_LIKE = ("adam", "adamw", "lamb")


@settings_group
@dataclass(frozen=True)
class OptimizerSettings:
    """How the weights are updated: the optimizer and its settings."""

    optimizer: str = setting(
        "sgd", "optimizer (lbfgs: full-batch training on a small subset, with weight_decay 0, "
        "lr about 1 and batch_size >= the subset)", choices=OPTIMIZERS)
    lr: float = setting(0.1, "(peak) learning rate", low=0.0, low_inclusive=False)
    weight_decay: float = setting(
        5e-4, "L2 penalty (sgd, adagrad, rmsprop, adam) or decoupled weight decay (adamw, "
        "lamb)", low=0.0)
    decay_norm_and_bias: bool = setting(
        True, "apply weight decay to biases and normalization weights too; false puts every "
        "1-D parameter in a group without weight decay")
    momentum: float = setting(0.9, "SGD momentum", low=0.0, high=1.0, high_inclusive=False,
                              applies=("optimizer", ("sgd",)))
    nesterov: bool = setting(True, "Nesterov momentum", applies=("optimizer", ("sgd",)))
    betas: tuple[float, float] = setting(
        (0.9, 0.999), "moment coefficients (beta1, beta2)", low=0.0, high=1.0,
        high_inclusive=False, applies=("optimizer", _ADAM_LIKE))
    rmsprop_alpha: float = setting(
        0.99, "smoothing constant of the squared-gradient average", low=0.0, high=1.0,
        low_inclusive=False, high_inclusive=False, applies=("optimizer", ("rmsprop",)))
    rmsprop_momentum: float = setting(0.0, "RMSprop momentum", low=0.0, high=1.0,
                                      high_inclusive=False, applies=("optimizer", ("rmsprop",)))
    lbfgs_max_iter: int = setting(20, "iterations (loss evaluations on the batch) per step",
                                  low=1, applies=("optimizer", ("lbfgs",)))
    lbfgs_history_size: int = setting(100, "number of past updates kept", low=1,
                                      applies=("optimizer", ("lbfgs",)))
    lbfgs_line_search: str = setting("strong_wolfe", "line search (none: a fixed step of lr)",
                                     choices=LBFGS_LINE_SEARCHES,
                                     applies=("optimizer", ("lbfgs",)))


def validate_optimizer(settings: OptimizerSettings) -> None:
    """Fail early (before any training or file output) on a bad name or value."""
    check_settings(settings)
    s, name = settings, settings.optimizer.lower()
    if len(s.betas) != 2:
        raise ConfigError(f"betas={list(s.betas)!r} must hold two numbers, e.g. [0.9, 0.999]")
    if name == "sgd" and s.nesterov and s.momentum <= 0:
        raise ConfigError("nesterov=True needs momentum > 0; set --model.momentum 0.9 "
                          "or --model.nesterov false")
    if name == "lbfgs" and s.weight_decay > 0:
        raise ConfigError(f"optimizer lbfgs has no weight decay (weight_decay={s.weight_decay}); "
                          "set --model.weight_decay 0")


def is_norm_or_bias(name: str, parameter: nn.Parameter) -> bool:
    """Biases, normalization weights (and other 1-D parameters such as PReLU slopes).

    The same rule as timm's `param_groups_weight_decay`: a parameter with at most one
    dimension, or whose name ends in ".bias".
    """
    return parameter.ndim <= 1 or name.endswith(".bias")


def parameter_groups(module: nn.Module, weight_decay: float,
                     decay_norm_and_bias: bool) -> ParamGroups:
    """One group with every parameter, or a "decay" and a "no_decay" group.

    Unlike timm's `param_groups_weight_decay`, frozen parameters are kept: a backbone
    frozen now and unfrozen later must still be in the optimizer. The group names are
    what the LR monitor shows ("lr/decay", "lr/no_decay").
    """
    named = list(module.named_parameters())
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": [p for _, p in named]}]
    decay = [p for n, p in named if not is_norm_or_bias(n, p)]
    no_decay = [p for n, p in named if is_norm_or_bias(n, p)]
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [group for group in groups if group["params"]]


def make_optimizer(module: nn.Module, settings: OptimizerSettings) -> Optimizer:
    validate_optimizer(settings)
    groups = parameter_groups(module, settings.weight_decay, settings.decay_norm_and_bias)
    return OPTIMIZERS[settings.optimizer.lower()](groups, settings)


def uses_momentum(optimizer: Optimizer) -> bool:
    """Whether the optimizer has a momentum (or Adam-style beta1) a schedule may cycle."""
    return "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0.0) > 0
