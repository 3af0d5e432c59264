"""Networks: every normalization of both networks builds, runs and trains every parameter."""

import pytest
import torch

from src.core.errors import ConfigError
from src.modules.layers import NORM_NAMES, VECTOR_NORM_NAMES
from tests.factories import make_network

TINY_RESNET = (8, 16, 16, 16)


def _check_forward_backward(net: torch.nn.Module, images: torch.Tensor, num_classes: int):
    net.train()
    logits = net(images)
    assert logits.shape == (images.shape[0], num_classes)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} received an all-zero gradient"


@pytest.mark.parametrize("norm", NORM_NAMES)
def test_resnet18_every_norm(norm):
    torch.manual_seed(0)
    groups = {"norm_groups": 4} if norm == "group" else {}
    net = make_network("resnet18", num_classes=7, in_channels=3, image_size=32, norm=norm,
                       resnet_widths=TINY_RESNET, **groups)
    _check_forward_backward(net, torch.randn(4, 3, 32, 32), 7)


@pytest.mark.parametrize("norm", VECTOR_NORM_NAMES)
def test_mlp_every_norm(norm):
    torch.manual_seed(0)
    groups = {"norm_groups": 4} if norm == "group" else {}
    net = make_network("mlp", num_classes=5, in_channels=1, image_size=28, norm=norm,
                       hidden_widths=(16, 8), dropout=0.1, **groups)
    _check_forward_backward(net, torch.randn(6, 1, 28, 28), 5)


def test_resnet18_parameter_count_matches_the_reference():
    net = make_network("resnet18", num_classes=10, in_channels=3, image_size=32, norm="batch")
    assert sum(p.numel() for p in net.parameters()) == 11_173_962


def test_resnet18_is_the_cifar_variant():
    net = make_network("resnet18", num_classes=10, in_channels=3, image_size=32)
    stem_conv = net.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    blocks = [len(stage) for stage in net.stages]
    assert blocks == [2, 2, 2, 2]
    # 32x32 input -> 4x4 maps at the last stage (three stride-2 stages).
    features = net.stages(net.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape == (1, 512, 4, 4)


def test_mlp_layout_follows_the_widths():
    net = make_network("mlp", num_classes=10, in_channels=3, image_size=32, norm="layer",
                        act="gelu", hidden_widths=(64, 32), dropout=0.5)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 64), (64, 32), (32, 10)]
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.GELU) for m in net.modules()) == 2


@pytest.mark.parametrize("arguments, message", [
    ({"arch": "resnet50"}, "unknown arch 'resnet50'; choose one of: mlp, resnet18, timm"),
    ({"arch": "resnet18", "norm": "bach"}, "unknown norm 'bach'"),
    ({"arch": "mlp", "norm": "instance"}, "unknown normalization for vector features"),
    ({"arch": "resnet18", "act": "relu7"}, "unknown act 'relu7'"),
    ({"arch": "resnet18", "norm": "group", "norm_groups": 3}, "norm_groups=3 does not divide 64"),
    ({"arch": "mlp", "dropout": 1.0}, "dropout=1.0 is out of range"),
])
def test_bad_network_settings_fail_with_one_line(arguments, message):
    with pytest.raises(ConfigError) as error:
        make_network(num_classes=10, in_channels=3, image_size=32, **arguments)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("arch", "widths", "groups", "expected_layers"), [
    # ResNet18: stem 1 + 8 blocks x 2 + 3 projection shortcuts = 20 norms. Widths that
    # the default 32 groups also divide, so a lost setting would build without error.
    ("resnet18", {"resnet_widths": (32, 32, 64, 64)}, 4, 20),
    ("mlp", {"hidden_widths": (64, 32)}, 8, 2),
])
def test_group_norm_gets_the_configured_number_of_groups(arch, widths, groups, expected_layers):
    torch.manual_seed(0)
    net = make_network(arch, num_classes=3, in_channels=3, image_size=8, norm="group",
                       norm_groups=groups, **widths)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == expected_layers
    assert {m.num_groups for m in norms} == {groups}
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.LayerNorm)
                   for m in net.modules())
