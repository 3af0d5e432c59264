"""Network registry: architecture name + plain values -> nn.Module.

This is the one place where names (architecture, norm, activation) become classes.
"""

from collections.abc import Callable, Sequence

from torch import nn

from src.errors import ConfigError, check_range, lookup
from src.modules.layers import get_act_layer, get_norm_layer
from src.modules.mlp import MLP
from src.modules.resnet import CifarResNet


def _build_mlp(*, num_classes: int, in_channels: int, image_size: int, norm: str,
               norm_groups: int, act: str, dropout: float, hidden_widths: Sequence[int],
               **_unused) -> nn.Module:
    return MLP(
        in_features=in_channels * image_size * image_size,
        num_classes=num_classes,
        hidden_widths=list(hidden_widths),
        norm_layer=get_norm_layer(norm, spatial=False, groups=norm_groups),
        act_layer=get_act_layer(act),
        dropout=dropout,
    )


def _build_resnet18(*, num_classes: int, in_channels: int, norm: str, norm_groups: int,
                    act: str, dropout: float, resnet_widths: Sequence[int],
                    **_unused) -> nn.Module:
    return CifarResNet(
        num_classes=num_classes,
        in_channels=in_channels,
        norm_layer=get_norm_layer(norm, spatial=True, groups=norm_groups),
        act_layer=get_act_layer(act),
        widths=list(resnet_widths),
        blocks_per_stage=(2, 2, 2, 2),
        dropout=dropout,
    )


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _build_mlp,
    "resnet18": _build_resnet18,
}


def build_network(arch: str, *, num_classes: int, in_channels: int, image_size: int,
                  norm: str = "batch", norm_groups: int = 32, act: str = "relu",
                  dropout: float = 0.0, hidden_widths: Sequence[int] = (512, 256),
                  resnet_widths: Sequence[int] = (64, 128, 256, 512)) -> nn.Module:
    """Build the network called `arch` ("mlp" or "resnet18") from plain values."""
    builder = lookup(NETWORKS, arch, "architecture")
    check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
    check_range("num_classes", num_classes, 2)
    for width in [*hidden_widths, *resnet_widths]:
        check_range("layer width", width, 1)
    if len(resnet_widths) != 4:
        raise ConfigError(f"resnet_widths needs 4 stage widths, got {list(resnet_widths)}")
    return builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                   norm=norm, norm_groups=norm_groups, act=act, dropout=dropout,
                   hidden_widths=hidden_widths, resnet_widths=resnet_widths)
