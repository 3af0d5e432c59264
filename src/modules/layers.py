"""One factory per layer concern: normalization and activation, resolved from names.

Networks never see strings: the edge (`build_network`) turns names into layer builders
once, and blocks call those builders, e.g. `norm_layer(64)` or `act_layer()`. This is
timm's `create_norm` / `create_act` pattern, kept small.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from src.core.errors import ConfigError, check_range, lookup

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


# Where the normalization sits relative to the activation: "before" is
# linear/conv -> norm -> act (the ResNet paper's order), "after" is linear/conv -> act -> norm.
NORM_POSITIONS = {"before": False, "after": True}


def norm_after_act(position: str) -> bool:
    """True when `position` ("before" or "after") puts the norm after the activation."""
    return lookup(NORM_POSITIONS, position, "norm_position")


class GainPreserving(nn.Module):
    """a * phi(x) + b, with constants a, b chosen so that, for x ~ N(0, 1), both
    E[(a phi(x) + b)^2] = 1 and E[(a phi'(x))^2] = 1 (a fixes the gradients' second
    moment, then b the activations').

    With weights of variance 1/fan_in (init="kaiming_*", whose gain for these activations
    is 1), every layer then hands a unit second moment to the next, so deep stacks neither
    explode nor vanish at initialization. a and b are fixed constants, not learned.
    """

    def __init__(self, phi: nn.Module, a: float, b: float):
        super().__init__()
        self.phi = phi
        self.a = a
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi(x) * self.a + self.b

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}"


def _gain_preserving(phi: Callable[[], nn.Module], a: float, b: float) -> ActBuilder:
    return lambda: GainPreserving(phi(), a, b)


@dataclass(frozen=True)
class ActivationSpec:
    """One registered activation.

    make: builds the module, called with the parameters in `defaults` as keywords.
    defaults: the parameters it accepts ("slope", "alpha") and their default values.
    nonlinearity: the matching `torch.nn.init.calculate_gain` name, used by the Kaiming
        and orthogonal inits (with `defaults["slope"]` or the user's slope for leaky_relu).
    """

    make: Callable[..., nn.Module]
    defaults: Mapping[str, float] = field(default_factory=dict)
    nonlinearity: str = "relu"


# torch.nn.init has gains for relu, leaky_relu, tanh, sigmoid, selu and linear only. The
# smooth ReLU-like activations (elu, silu, gelu) take the ReLU gain, as is common. SELU
# takes "linear" (variance 1/fan_in), the init its self-normalizing derivation assumes
# (PyTorch's calculate_gain docs say the same). The gain-preserving variants take "linear"
# because they keep the second moment at 1 themselves.
ACTIVATIONS: dict[str, ActivationSpec] = {
    "relu": ActivationSpec(nn.ReLU),
    "relu6": ActivationSpec(nn.ReLU6),
    "leaky_relu": ActivationSpec(lambda slope: nn.LeakyReLU(slope), {"slope": 0.01},
                                 "leaky_relu"),
    "prelu": ActivationSpec(lambda slope: nn.PReLU(init=slope), {"slope": 0.25},
                            "leaky_relu"),
    "elu": ActivationSpec(lambda alpha: nn.ELU(alpha), {"alpha": 1.0}),
    "selu": ActivationSpec(nn.SELU, nonlinearity="linear"),
    "silu": ActivationSpec(nn.SiLU),
    "swish": ActivationSpec(nn.SiLU),
    "gelu": ActivationSpec(nn.GELU),
    "gelu_tanh": ActivationSpec(partial(nn.GELU, approximate="tanh")),
    "tanh": ActivationSpec(nn.Tanh, nonlinearity="tanh"),
    "sigmoid": ActivationSpec(nn.Sigmoid, nonlinearity="sigmoid"),
    # Gain-preserving variants a * phi(x) + b (constants from the course material, for
    # the default slope 0.01 and alpha 1; leaky_relu: a = sqrt(2 / (1 + 0.01^2))). gelu's
    # are those of nn.GELU (exact, erf): the course's 1.4915, -0.9097 belong to the
    # sigmoid approximation x * sigmoid(1.702 x).
    "gpn_tanh": ActivationSpec(_gain_preserving(nn.Tanh, 1.4674, 0.3885), nonlinearity="linear"),
    "gpn_relu": ActivationSpec(_gain_preserving(nn.ReLU, 1.4142, 0.0), nonlinearity="linear"),
    "gpn_leaky_relu": ActivationSpec(
        _gain_preserving(partial(nn.LeakyReLU, 0.01), 1.4141, 0.0), nonlinearity="linear"),
    "gpn_elu": ActivationSpec(_gain_preserving(nn.ELU, 1.2234, 0.0742), nonlinearity="linear"),
    "gpn_selu": ActivationSpec(_gain_preserving(nn.SELU, 0.9660, 0.2585), nonlinearity="linear"),
    "gpn_gelu": ActivationSpec(_gain_preserving(nn.GELU, 1.4811, -0.9095),
                               nonlinearity="linear"),
}

# The range each activation parameter must lie in: (low, high, low_inclusive).
_PARAM_RANGES = {"slope": (0.0, 1.0, True), "alpha": (0.0, None, False)}


def _act_params(name: str, slope: float | None, alpha: float | None) -> dict[str, float]:
    """The parameters for activation `name`: its defaults, overridden by the given ones."""
    spec = lookup(ACTIVATIONS, name, "activation")
    given = {key: value for key, value in (("slope", slope), ("alpha", alpha))
             if value is not None}
    for key, value in given.items():
        if key not in spec.defaults:
            takers = ", ".join(n for n, s in ACTIVATIONS.items() if key in s.defaults)
            why = " (gpn_* variants have fixed constants)" if name.startswith("gpn_") else ""
            raise ConfigError(f"act_{key} does not apply to act={name!r}{why}; it applies "
                              f"to: {takers}")
        low, high, low_inclusive = _PARAM_RANGES[key]
        check_range(f"act_{key}", value, low, high, low_inclusive=low_inclusive)
    return {**spec.defaults, **given}


def get_act_layer(name: str, slope: float | None = None,
                  alpha: float | None = None) -> ActBuilder:
    """Return a builder `() -> nn.Module` for the activation called `name`.

    slope: negative slope of leaky_relu (default 0.01) or initial slope of prelu (0.25).
    alpha: alpha of elu (default 1.0). None keeps the activation's default; a value for an
        activation that has no such parameter is an error rather than silently ignored.
    """
    params = _act_params(name, slope, alpha)
    return partial(ACTIVATIONS[name.lower()].make, **params)


def act_nonlinearity(name: str, slope: float | None = None) -> tuple[str, float]:
    """(nonlinearity, negative slope) of activation `name`, as torch.nn.init expects them."""
    params = _act_params(name, slope, None)
    return ACTIVATIONS[name.lower()].nonlinearity, params.get("slope", 0.0)
