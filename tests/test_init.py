"""Weight initialization by name: measured std of large layers against the closed forms."""

import math

import pytest
import torch
from torch import nn

from src.core.errors import ConfigError
from src.modules.init import INITS, InitSettings, init_weights
from tests.factories import TINY, make_network

RELU_GAIN = math.sqrt(2.0)


def leaky_gain(slope: float) -> float:
    return math.sqrt(2.0 / (1.0 + slope**2))


# (fan_in, fan_out, out_units, layer): a 1000x1000 Linear and a wide 3x3 conv
# (fan = channels * 9; out_units = output channels).
LAYERS = {
    "linear": (1000, 1000, 1000, lambda: nn.Linear(1000, 1000)),
    "conv": (128 * 9, 256 * 9, 256, lambda: nn.Conv2d(128, 256, 3)),
}


def expected_std(init: str, fan_in: int, fan_out: int, out_units: int,
                 settings: InitSettings, activation_gain: float) -> float:
    """The closed-form standard deviation of each scheme, written out independently."""
    gain = settings.gain
    if init == "normal":
        return 0.01 if settings.std is None else settings.std
    if init in ("xavier_normal", "xavier_uniform"):
        return (1.0 if gain is None else gain) * math.sqrt(2.0 / (fan_in + fan_out))
    if init in ("kaiming_normal", "kaiming_uniform"):
        return activation_gain / math.sqrt(fan_in)
    if init == "orthogonal":
        # The weight as a matrix [out units, fan_in] has orthonormal rows (or columns),
        # scaled by the gain: mean square gain^2 / max(out units, fan_in).
        return (activation_gain if gain is None else gain) / math.sqrt(max(fan_in, out_units))
    raise AssertionError(init)


# (settings, the gain of that activation by its textbook formula)
ACTIVATION_CASES = [
    (InitSettings("relu"), RELU_GAIN),
    (InitSettings("leaky_relu", slope=0.2), leaky_gain(0.2)),
    (InitSettings("tanh"), 5.0 / 3.0),
    (InitSettings("linear"), 1.0),  # selu and the gain-preserving variants
]
CASES = (
    [("normal", InitSettings(), RELU_GAIN), ("normal", InitSettings(std=0.05), RELU_GAIN)]
    + [(init, InitSettings(gain=gain), RELU_GAIN)
       for init in ("xavier_normal", "xavier_uniform") for gain in (None, 2.0)]
    + [(init, settings, gain) for init in ("kaiming_normal", "kaiming_uniform")
       for settings, gain in ACTIVATION_CASES]
    # Orthogonal (a QR decomposition, slower): the activation's gain, or an explicit one.
    + [("orthogonal", settings, gain) for settings, gain in ACTIVATION_CASES[:2]]
    + [("orthogonal", InitSettings("tanh", gain=0.5), 5.0 / 3.0)]
)


@pytest.mark.parametrize("layer_kind", sorted(LAYERS))
@pytest.mark.parametrize(("init", "settings", "activation_gain"), CASES)
def test_measured_std_matches_formula(layer_kind, init, settings, activation_gain):
    torch.manual_seed(0)
    fan_in, fan_out, out_units, make = LAYERS[layer_kind]
    layer = make()
    init_weights(layer, init, settings)
    measured = layer.weight.std().item()
    expected = expected_std(init, fan_in, fan_out, out_units, settings, activation_gain)
    assert measured == pytest.approx(expected, rel=0.05)
    assert layer.weight.mean().item() == pytest.approx(0.0, abs=0.05 * expected)
    assert torch.count_nonzero(layer.bias) == 0


def test_uniform_schemes_are_uniform_and_normal_ones_are_not():
    torch.manual_seed(0)
    for init, bounded in (("kaiming_uniform", True), ("kaiming_normal", False)):
        layer = nn.Linear(1000, 1000)
        init_weights(layer, init, InitSettings("relu"))
        bound = RELU_GAIN * math.sqrt(3.0 / 1000)
        inside = layer.weight.abs().max().item() <= bound
        assert inside == bounded


def test_orthogonal_rows_are_orthogonal():
    layer = nn.Linear(300, 200)
    init_weights(layer, "orthogonal", InitSettings(gain=1.0))
    assert torch.allclose(layer.weight @ layer.weight.T, torch.eye(200), atol=1e-4)


@pytest.mark.parametrize("arch", ["mlp", "resnet18"])
@pytest.mark.parametrize("init", sorted(set(INITS) - {"default"}))
def test_networks_get_zero_biases_and_unit_norms(arch, init):
    torch.manual_seed(0)
    net = make_network(arch, num_classes=3, in_channels=3, image_size=8, init=init,
                       **TINY[arch])
    # The MLP's Linear biases start non-zero in PyTorch, so this checks the reset.
    for module in net.modules():
        if isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.count_nonzero(module.bias) == 0


def test_norm_layers_are_reset_to_identity_affine():
    norms = nn.Sequential(nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.LayerNorm(4),
                          nn.InstanceNorm2d(4, affine=True))
    for norm in norms:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    init_weights(norms, "xavier_normal", InitSettings())
    for norm in norms:
        assert torch.all(norm.weight == 1) and torch.count_nonzero(norm.bias) == 0


def test_network_init_uses_the_activation_gain():
    """End to end: the MLP's first layer (3072 inputs) gets the leaky-ReLU Kaiming std."""
    torch.manual_seed(0)
    net = make_network("mlp", num_classes=10, in_channels=3, image_size=32,
                        hidden_widths=(512,), act="leaky_relu", act_slope=0.2,
                        init="kaiming_normal")
    first = net.features[1]
    assert first.weight.std().item() == pytest.approx(leaky_gain(0.2) / math.sqrt(3072),
                                                      rel=0.05)
    net = make_network("mlp", num_classes=10, in_channels=3, image_size=32,
                        hidden_widths=(512,), act="gpn_tanh", init="kaiming_normal")
    assert net.features[1].weight.std().item() == pytest.approx(1 / math.sqrt(3072), rel=0.05)


def test_default_init_keeps_the_framework_init():
    torch.manual_seed(0)
    net = make_network("mlp", num_classes=3, in_channels=3, image_size=8, init="default",
                        hidden_widths=(16,))
    # PyTorch's Linear default draws biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    assert torch.count_nonzero(net.head.bias) > 0


@pytest.mark.parametrize(("values", "expected"), [
    ({"init": "he"}, "unknown init 'he'; choose one of: default, kaiming_normal"),
    ({"init": "xavier_normal", "init_std": 0.1}, "init_std applies to init normal only"),
    ({"init": "kaiming_normal", "init_gain": 2.0},
     "init_gain applies to init xavier_normal, xavier_uniform, orthogonal only"),
    ({"init": "normal", "init_std": 0.0}, "init_std=0.0 is out of range"),
])
def test_bad_init_settings_fail_with_one_line(values, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        make_network("mlp", num_classes=3, in_channels=3, image_size=8, **values)
    assert "\n" not in str(error.value)
