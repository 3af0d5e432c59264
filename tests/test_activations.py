"""Activations by name: every one builds in both networks, trains, and does what it says."""

import math

import pytest
import torch
from torch import nn

from src.core.errors import ConfigError
from src.modules.layers import ACTIVATIONS, GainPreserving, act_nonlinearity, get_act_layer
from tests.factories import TINY, make_network

GPN_NAMES = sorted(name for name in ACTIVATIONS if name.startswith("gpn_"))


def assert_trains(net: nn.Module, in_channels: int = 3, size: int = 8) -> None:
    """Output [B, classes] is finite and every parameter receives a finite gradient."""
    x = torch.randn(4, in_channels, size, size)
    logits = net(x)
    assert logits.shape == (4, 3)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("arch", ["mlp", "resnet18"])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_activation_builds_and_trains_in_both_networks(arch, act):
    torch.manual_seed(0)
    net = make_network(arch, num_classes=3, in_channels=3, image_size=8, act=act,
                       **TINY[arch])
    activation_type = type(get_act_layer(act)())
    assert any(type(m) is activation_type for m in net.modules())
    assert_trains(net)


# The constants are written with 4 decimals: rounding moves each by up to half a unit of
# the 4th decimal.
CONSTANT_ROUNDING = 0.5e-4


@pytest.mark.parametrize("name", GPN_NAMES)
def test_gain_preserving_constants_give_unit_forward_and_backward_second_moments(name):
    """For x ~ N(0, 1), a and b satisfy the two conditions that define them:
    E[(a phi(x) + b)^2] = 1 (activations keep a unit second moment) and
    E[(a phi'(x))^2] = 1 (so do the gradients flowing back), e.g. for tanh
    a = 1 / sqrt(E[sech^4 x]) = 1.4674 and b = sqrt(1 - a^2 E[tanh^2 x]) = 0.3885.

    Monte Carlo on 4 million draws: each moment must be 1 within 5 standard errors of its
    sample mean (computed from the sample) plus the effect of rounding a and b to 4
    decimals (first-order: |dM/da| + |dM/db| times half a unit of the 4th decimal)."""
    n = 4_000_000
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=generator, dtype=torch.float64, requires_grad=True)
    layer = get_act_layer(name)()
    assert isinstance(layer, GainPreserving)
    a, b = layer.a, layer.b
    out = layer(x)
    (slope,) = torch.autograd.grad(out.sum(), x)  # a * phi'(x), through the layer itself
    out = out.detach()
    phi = (out - b) / a
    forward, backward = out.square(), slope.square()
    # dE[(a phi + b)^2]/da = 2 E[phi (a phi + b)], /db = 2 E[a phi + b];
    # dE[(a phi')^2]/da = 2 E[(a phi')^2] / a (b does not enter it).
    forward_rounding = CONSTANT_ROUNDING * (abs(2 * (phi * out).mean().item())
                                            + abs(2 * out.mean().item()))
    backward_rounding = CONSTANT_ROUNDING * abs(2 * backward.mean().item() / a)
    for what, moment, rounding in (("E[(a phi(x) + b)^2]", forward, forward_rounding),
                                   ("E[(a phi'(x))^2]", backward, backward_rounding)):
        standard_error = moment.std().item() / math.sqrt(n)
        tolerance = 5 * standard_error + rounding
        assert abs(moment.mean().item() - 1.0) <= tolerance, (
            f"{name}: {what} = {moment.mean().item():.5f}, not 1 within {tolerance:.5f}")


def test_gain_preserving_is_a_phi_plus_b():
    layer = get_act_layer("gpn_tanh")()
    x = torch.linspace(-3, 3, 13)
    assert torch.allclose(layer(x), 1.4674 * torch.tanh(x) + 0.3885)
    assert not list(layer.parameters())  # fixed constants, not learned


def test_activation_parameters_reach_the_layers():
    x = torch.tensor([-2.0, 1.0])
    assert get_act_layer("leaky_relu", slope=0.2)()(x).tolist() == pytest.approx([-0.4, 1.0])
    assert get_act_layer("leaky_relu")()(x).tolist() == pytest.approx([-0.02, 1.0])
    assert get_act_layer("prelu", slope=0.1)()(x).tolist() == pytest.approx([-0.2, 1.0])
    elu = get_act_layer("elu", alpha=0.5)()
    assert elu(x).tolist() == pytest.approx([0.5 * (math.exp(-2.0) - 1), 1.0])
    exact, approx = get_act_layer("gelu")(), get_act_layer("gelu_tanh")()
    assert exact.approximate == "none" and approx.approximate == "tanh"
    assert isinstance(get_act_layer("swish")(), nn.SiLU)


def test_activation_parameters_reach_the_networks():
    net = make_network("resnet18", num_classes=3, in_channels=3, image_size=16,
                        act="leaky_relu", act_slope=0.3, **TINY["resnet18"])
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.3}
    net = make_network("mlp", num_classes=3, in_channels=3, image_size=16, act="elu",
                        act_alpha=0.7, **TINY["mlp"])
    assert {m.alpha for m in net.modules() if isinstance(m, nn.ELU)} == {0.7}


def test_nonlinearity_matches_activation_for_init():
    assert act_nonlinearity("relu") == ("relu", 0.0)
    assert act_nonlinearity("leaky_relu") == ("leaky_relu", 0.01)
    assert act_nonlinearity("leaky_relu", 0.2) == ("leaky_relu", 0.2)
    assert act_nonlinearity("prelu") == ("leaky_relu", 0.25)
    assert act_nonlinearity("tanh")[0] == "tanh"
    assert act_nonlinearity("selu")[0] == "linear"
    assert all(act_nonlinearity(name)[0] == "linear" for name in GPN_NAMES)


def test_unknown_activation_fails_with_one_line_listing_the_names():
    with pytest.raises(ConfigError) as error:
        make_network("mlp", num_classes=3, in_channels=3, image_size=8, act="relu7")
    message = str(error.value)
    assert "\n" not in message and "'relu7'" in message
    assert all(name in message for name in ACTIVATIONS)


@pytest.mark.parametrize(("act", "params", "expected"), [
    ("relu", {"slope": 0.1}, "act_slope does not apply to act='relu'"),
    ("gpn_elu", {"alpha": 0.5}, r"gpn_\* variants have fixed constants"),
    ("leaky_relu", {"slope": -0.1}, "act_slope=-0.1 is out of range"),
    ("elu", {"alpha": 0.0}, "act_alpha=0.0 is out of range"),
])
def test_bad_activation_parameters_fail_with_one_line(act, params, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        get_act_layer(act, **params)
    assert "\n" not in str(error.value)
