"""Weight initialization by name: one registry of torch.nn.init schemes.

`init_weights(module, name, ...)` re-initializes every Linear and Conv layer in `module`
with the scheme called `name`, sets their biases to zero and resets normalization layers
to weight 1, bias 0. "default" leaves the framework's own initialization untouched
(PyTorch's for our networks, the model's own for timm models).

Standard deviations of the schemes, for a weight with fan_in inputs and fan_out outputs
per unit (fan = channels * kernel area for convs) and gain g:
    normal            std
    xavier_normal     g * sqrt(2 / (fan_in + fan_out))              (g = 1 by default)
    xavier_uniform    the same std, from U(-a, a) with a = sqrt(3) * std
    kaiming_normal    g / sqrt(fan_in), g matched to the activation  (mode fan_in)
    kaiming_uniform   the same std, from U(-a, a)
    orthogonal        g / sqrt(max(out_units, fan_in)): the weight as a matrix
                      [out_units, fan_in] has orthonormal rows (or columns)
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from src.core.errors import ConfigError, check_range, lookup


@dataclass(frozen=True)
class InitSettings:
    """What a scheme may need. nonlinearity/slope describe the network's activation."""

    nonlinearity: str = "relu"  # torch.nn.init.calculate_gain name of the activation
    slope: float = 0.0  # negative slope, for nonlinearity="leaky_relu"
    std: float | None = None  # normal: standard deviation (None: 0.01)
    gain: float | None = None  # xavier_*: gain (None: 1); orthogonal (None: activation's)

    def activation_gain(self) -> float:
        return nn.init.calculate_gain(self.nonlinearity, self.slope)


WeightInit = Callable[[torch.Tensor, InitSettings], None]


def _normal(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.normal_(weight, 0.0, 0.01 if s.std is None else s.std)


def _xavier_normal(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.xavier_normal_(weight, gain=1.0 if s.gain is None else s.gain)


def _xavier_uniform(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.xavier_uniform_(weight, gain=1.0 if s.gain is None else s.gain)


def _kaiming_normal(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.kaiming_normal_(weight, a=s.slope, mode="fan_in", nonlinearity=s.nonlinearity)


def _kaiming_uniform(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.kaiming_uniform_(weight, a=s.slope, mode="fan_in", nonlinearity=s.nonlinearity)


def _orthogonal(weight: torch.Tensor, s: InitSettings) -> None:
    nn.init.orthogonal_(weight, gain=s.activation_gain() if s.gain is None else s.gain)


# None: keep the framework's initialization.
INITS: dict[str, WeightInit | None] = {
    "default": None,
    "normal": _normal,
    "xavier_normal": _xavier_normal,
    "xavier_uniform": _xavier_uniform,
    "kaiming_normal": _kaiming_normal,
    "kaiming_uniform": _kaiming_uniform,
    "orthogonal": _orthogonal,
}

# Which schemes read init_std / init_gain: setting one for another scheme is an error, so a
# typo in a sweep cannot silently train something else than the user asked for.
_USES_STD = ("normal",)
USES_GAIN = ("xavier_normal", "xavier_uniform", "orthogonal")

WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
               nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def validate_init(name: str, settings: InitSettings) -> None:
    """Fail with one line on an unknown scheme or a parameter it does not use."""
    lookup(INITS, name, "init")
    name = name.lower()
    if settings.std is not None:
        if name not in _USES_STD:
            raise ConfigError(f"init_std applies to init='normal' only, not init={name!r}")
        check_range("init_std", settings.std, 0.0, low_inclusive=False)
    if settings.gain is not None:
        if name not in USES_GAIN:
            raise ConfigError(f"init_gain applies to init in {list(USES_GAIN)}, not "
                              f"init={name!r} (kaiming_* take the activation's gain)")
        check_range("init_gain", settings.gain, 0.0, low_inclusive=False)


@torch.no_grad()
def init_weights(module: nn.Module, name: str, settings: InitSettings) -> None:
    """Initialize `module` in place with the scheme called `name`.

    Linear and Conv weights get the scheme and their biases zero; normalization layers
    get weight 1, bias 0. Other parameters (PReLU slopes, embeddings) keep their init.
    """
    validate_init(name, settings)
    init_weight = INITS[name.lower()]
    if init_weight is None:
        return
    for layer in module.modules():
        if isinstance(layer, WEIGHTED_LAYERS):
            init_weight(layer.weight, settings)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, NORM_LAYERS):
            if getattr(layer, "weight", None) is not None:
                nn.init.ones_(layer.weight)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
