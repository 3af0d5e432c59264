"""Network registry: architecture name + plain values -> nn.Module.

This is the one place where names (architecture, norm, activation, init) become classes.
Every network has `get_classifier()` (timm's name for the head); the rest is its backbone.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from torch import nn

from src.core.errors import ConfigError, check_range, lookup
from src.modules.init import InitSettings, init_weights, validate_init
from src.modules.layers import act_nonlinearity, get_act_layer, get_norm_layer, norm_after_act
from src.modules.mlp import MLP
from src.modules.resnet import CifarResNet
from src.modules.timm_backbone import build_timm_model, check_timm_model


@dataclass(frozen=True)
class NetworkConfig:
    """Plain values describing one network; see ImageClassifier for each field's meaning."""

    num_classes: int
    in_channels: int
    image_size: int
    norm: str = "batch"
    norm_groups: int = 32
    norm_position: str = "before"
    act: str = "relu"
    act_slope: float | None = None
    act_alpha: float | None = None
    init: str = "default"
    init_std: float | None = None
    init_gain: float | None = None
    dropout: float = 0.0
    drop_block_prob: float = 0.0
    drop_block_size: int = 3
    hidden_widths: Sequence[int] = (512, 256)
    resnet_widths: Sequence[int] = (64, 128, 256, 512)
    timm_model: str = "resnet18"
    pretrained: bool = False
    pretrained_path: str | None = None

    def init_settings(self) -> InitSettings:
        nonlinearity, slope = act_nonlinearity(self.act, self.act_slope)
        return InitSettings(nonlinearity=nonlinearity, slope=slope, std=self.init_std,
                            gain=self.init_gain)


def _build_mlp(c: NetworkConfig) -> nn.Module:
    return MLP(
        in_features=c.in_channels * c.image_size * c.image_size,
        num_classes=c.num_classes,
        hidden_widths=list(c.hidden_widths),
        norm_layer=get_norm_layer(c.norm, spatial=False, groups=c.norm_groups),
        act_layer=get_act_layer(c.act, c.act_slope, c.act_alpha),
        dropout=c.dropout,
        norm_after_act=norm_after_act(c.norm_position),
    )


def _build_resnet18(c: NetworkConfig) -> nn.Module:
    return CifarResNet(
        num_classes=c.num_classes,
        in_channels=c.in_channels,
        norm_layer=get_norm_layer(c.norm, spatial=True, groups=c.norm_groups),
        act_layer=get_act_layer(c.act, c.act_slope, c.act_alpha),
        widths=list(c.resnet_widths),
        blocks_per_stage=(2, 2, 2, 2),
        dropout=c.dropout,
        norm_after_act=norm_after_act(c.norm_position),
        drop_block_prob=c.drop_block_prob,
        drop_block_size=c.drop_block_size,
    )


def _build_timm(c: NetworkConfig) -> nn.Module:
    return build_timm_model(c.timm_model, num_classes=c.num_classes, in_channels=c.in_channels,
                            pretrained=c.pretrained, pretrained_path=c.pretrained_path,
                            dropout=c.dropout)


NETWORKS: dict[str, Callable[[NetworkConfig], nn.Module]] = {
    "mlp": _build_mlp,
    "resnet18": _build_resnet18,
    "timm": _build_timm,
}

# Options that shape our own layers. A timm model keeps its own layers, so a value other
# than the default would be silently ignored there: it is refused instead.
_OWN_LAYER_OPTIONS = ("norm", "norm_position", "act", "act_slope", "act_alpha",
                      "drop_block_prob")


def _check(arch: str, c: NetworkConfig) -> None:
    """Fail with one line on any bad name or value, before anything is built."""
    check_range("num_classes", c.num_classes, 2)
    check_range("dropout", c.dropout, 0.0, 1.0, high_inclusive=False)
    check_range("drop_block_prob", c.drop_block_prob, 0.0, 1.0, high_inclusive=False)
    check_range("drop_block_size", c.drop_block_size, 1)
    for width in [*c.hidden_widths, *c.resnet_widths]:
        check_range("layer width", width, 1)
    if len(c.resnet_widths) != 4:
        raise ConfigError(f"resnet_widths needs 4 stage widths, got {list(c.resnet_widths)}")
    norm_after_act(c.norm_position)
    get_act_layer(c.act, c.act_slope, c.act_alpha)
    validate_init(c.init, c.init_settings())
    if arch == "mlp" and c.drop_block_prob > 0:
        raise ConfigError("drop_block_prob applies to conv networks (resnet18) only; "
                          "for the MLP use dropout")
    if arch == "timm":
        check_timm_model(c.timm_model)
        defaults = {f.name: f.default for f in fields(NetworkConfig)}
        changed = [f"{name}={getattr(c, name)!r}" for name in _OWN_LAYER_OPTIONS
                   if getattr(c, name) != defaults[name]]
        if changed:
            raise ConfigError(f"arch='timm' keeps the timm model's own layers, so "
                              f"{', '.join(changed)} would be ignored; leave these options "
                              f"at their defaults (they apply to resnet18 and mlp)")
    elif c.pretrained or c.pretrained_path is not None:
        raise ConfigError(f"pretrained weights need arch='timm' (with timm_model), not "
                          f"arch={arch!r}")


def build_network(arch: str, **values) -> nn.Module:
    """Build the network called `arch` ("mlp", "resnet18" or "timm") from plain values.

    values: the fields of NetworkConfig (num_classes, in_channels and image_size required).
    The weights are then initialized by `init`; with pretrained weights only the
    classifier head is, so the pretrained backbone is kept.
    """
    builder = lookup(NETWORKS, arch, "architecture")
    arch = arch.lower()
    config = NetworkConfig(**values)
    _check(arch, config)
    network = builder(config)
    pretrained = arch == "timm" and (config.pretrained or config.pretrained_path is not None)
    target = network.get_classifier() if pretrained else network
    init_weights(target, config.init, config.init_settings())
    return network
