"""One factory per layer concern: normalization and activation, resolved from names.

Networks never see strings: the edge (`build_network`) turns names into layer builders
once, and blocks call those builders, e.g. `norm_layer(64)` or `act_layer()`. This is
timm's `create_norm` / `create_act` pattern, kept small.
"""

from collections.abc import Callable
from functools import partial

from torch import nn

from src.errors import ConfigError, lookup

NormBuilder = Callable[[int], nn.Module]
ActBuilder = Callable[[], nn.Module]


def _group_norm(num_channels: int, groups: int) -> nn.Module:
    if groups < 1 or num_channels % groups != 0:
        raise ConfigError(
            f"norm_groups={groups} does not divide {num_channels} channels; choose a "
            f"divisor of every layer width (for ResNet18: 1, 2, 4, 8, 16, 32 or 64)"
        )
    return nn.GroupNorm(groups, num_channels)


# Normalization of feature maps [B, C, H, W]. "layer" normalizes each sample over
# (C, H, W), which for conv nets is GroupNorm with one group; "instance" over (H, W)
# per channel, with a learned per-channel scale and shift like the others.
_SPATIAL_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": lambda c, groups: nn.BatchNorm2d(c),
    "layer": lambda c, groups: nn.GroupNorm(1, c),
    "group": lambda c, groups: _group_norm(c, groups),
    "instance": lambda c, groups: nn.InstanceNorm2d(c, affine=True),
    "none": lambda c, groups: nn.Identity(),
}

# Normalization of feature vectors [B, F] (MLP hidden layers).
_VECTOR_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batch": lambda f, groups: nn.BatchNorm1d(f),
    "layer": lambda f, groups: nn.LayerNorm(f),
    "group": lambda f, groups: _group_norm(f, groups),
    "none": lambda f, groups: nn.Identity(),
}

NORM_NAMES = tuple(sorted(_SPATIAL_NORMS))
VECTOR_NORM_NAMES = tuple(sorted(_VECTOR_NORMS))


def get_norm_layer(kind: str, spatial: bool = True, groups: int = 32) -> NormBuilder:
    """Return a builder `channels -> nn.Module` for the normalization named `kind`.

    spatial: True for conv feature maps [B, C, H, W], False for vectors [B, F].
    groups: number of groups for kind="group".
    """
    registry = _SPATIAL_NORMS if spatial else _VECTOR_NORMS
    what = "normalization" if spatial else "normalization for vector features (MLP)"
    make = lookup(registry, kind, what)
    return partial(make, groups=groups)


ACTIVATIONS: dict[str, ActBuilder] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def get_act_layer(name: str) -> ActBuilder:
    """Return a builder `() -> nn.Module` for the activation called `name`."""
    return lookup(ACTIVATIONS, name, "activation")
