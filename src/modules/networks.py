"""Network registry: architecture name + plain values -> nn.Module.

This is the one place where names (architecture, norm, activation, init) become classes.
Every network has `get_classifier()` (timm's name for the head); the rest is its backbone.
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from src.core.errors import ConfigError, check_range
from src.core.settings import check_settings, setting, settings_group
from src.modules.init import INITS, USES_GAIN, InitSettings, init_weights
from src.modules.layers import (
    ACTIVATIONS,
    NORM_NAMES,
    NORM_POSITIONS,
    act_nonlinearity,
    get_act_layer,
    get_norm_layer,
    norm_after_act,
)
from src.modules.mlp import MLP
from src.modules.resnet import CifarResNet
from src.modules.timm_backbone import build_timm_model, check_timm_model


@dataclass(frozen=True)
class NetworkShape:
    """What the data decide about the network: its input and output sizes."""

    num_classes: int
    in_channels: int
    image_size: int


def _build_mlp(c: "NetworkSettings", shape: NetworkShape) -> nn.Module:
    return MLP(
        in_features=shape.in_channels * shape.image_size * shape.image_size,
        num_classes=shape.num_classes,
        hidden_widths=list(c.hidden_widths),
        norm_layer=get_norm_layer(c.norm, spatial=False, groups=c.norm_groups),
        act_layer=get_act_layer(c.act, c.act_slope, c.act_alpha),
        dropout=c.dropout,
        norm_after_act=norm_after_act(c.norm_position),
    )


def _build_resnet18(c: "NetworkSettings", shape: NetworkShape) -> nn.Module:
    return CifarResNet(
        num_classes=shape.num_classes,
        in_channels=shape.in_channels,
        norm_layer=get_norm_layer(c.norm, spatial=True, groups=c.norm_groups),
        act_layer=get_act_layer(c.act, c.act_slope, c.act_alpha),
        widths=list(c.resnet_widths),
        blocks_per_stage=(2, 2, 2, 2),
        dropout=c.dropout,
        norm_after_act=norm_after_act(c.norm_position),
        drop_block_prob=c.drop_block_prob,
        drop_block_size=c.drop_block_size,
    )


def _build_timm(c: "NetworkSettings", shape: NetworkShape) -> nn.Module:
    return build_timm_model(c.timm_model, num_classes=shape.num_classes,
                            in_channels=shape.in_channels, pretrained=c.pretrained,
                            pretrained_path=c.pretrained_path, dropout=c.dropout)


NETWORKS: dict[str, Callable[["NetworkSettings", NetworkShape], nn.Module]] = {
    "mlp": _build_mlp,
    "resnet18": _build_resnet18,
    "timm": _build_timm,
}

_OWN_LAYERS = ("resnet18", "mlp")  # a timm model keeps its own layers
_ACT_SLOPE_TAKERS = tuple(name for name, spec in ACTIVATIONS.items() if "slope" in spec.defaults)
_ACT_ALPHA_TAKERS = tuple(name for name, spec in ACTIVATIONS.items() if "alpha" in spec.defaults)


@settings_group
@dataclass(frozen=True)
class NetworkSettings:
    """The network: architecture, layers, initialization and regularization layers."""

    arch: str = setting("resnet18", "architecture: resnet18 (CIFAR ResNet18), mlp, or timm "
                        "(the timm model named by timm_model)", choices=NETWORKS)
    norm: str = setting("batch", "normalization layer (instance: ResNet only)",
                        choices=NORM_NAMES, applies=("arch", _OWN_LAYERS))
    norm_groups: int = setting(32, "groups of the group norm; must divide every layer width",
                               low=1, applies=("norm", ("group",)))
    norm_position: str = setting(
        "before", "before (linear/conv -> norm -> act) or after (-> act -> norm) the "
        "activation; in a ResNet block 'after' also moves the second norm after the residual "
        "addition; never applied to the classifier output", choices=NORM_POSITIONS,
        applies=("arch", _OWN_LAYERS))
    act: str = setting("relu", "activation (gpn_*: gain-preserving a*phi(x)+b)",
                       choices=ACTIVATIONS, applies=("arch", _OWN_LAYERS))
    act_slope: float | None = setting(None, "negative slope (leaky_relu) or initial slope "
                                      "(prelu)", low=0.0, high=1.0,
                                      none_means="0.01 for leaky_relu, 0.25 for prelu",
                                      applies=("act", _ACT_SLOPE_TAKERS))
    act_alpha: float | None = setting(None, "elu alpha", low=0.0, low_inclusive=False,
                                      none_means="1.0", applies=("act", _ACT_ALPHA_TAKERS))
    init: str = setting("default", "weight init of every Linear/Conv layer (default: the "
                        "framework's; kaiming_*: fan_in with the activation's gain); except "
                        "for default, biases start at 0 and norm layers at weight 1, bias 0; "
                        "with pretrained weights only the head", choices=INITS)
    init_std: float | None = setting(None, "standard deviation of init normal", low=0.0,
                                     low_inclusive=False, none_means="0.01",
                                     applies=("init", ("normal",)))
    init_gain: float | None = setting(None, "gain of xavier_* and orthogonal", low=0.0,
                                      low_inclusive=False,
                                      none_means="1 for xavier_*, the activation's for "
                                      "orthogonal", applies=("init", USES_GAIN))
    dropout: float = setting(0.0, "dropout probability: MLP hidden layers, or before the "
                             "ResNet (and timm) head", low=0.0, high=1.0, high_inclusive=False)
    drop_block_prob: float = setting(0.0, "DropBlock drop probability in ResNet stages 3 and 4 "
                                     "(0: off)", low=0.0, high=1.0, high_inclusive=False,
                                     applies=("arch", ("resnet18",)))
    drop_block_size: int = setting(3, "DropBlock block side in pixels (clipped to the map)",
                                   low=1, applies=("arch", ("resnet18",)))
    hidden_widths: tuple[int, ...] = setting((512, 256), "MLP hidden layer widths", low=1,
                                             applies=("arch", ("mlp",)))
    resnet_widths: tuple[int, int, int, int] = setting(
        (64, 128, 256, 512), "ResNet18 stage widths", low=1, applies=("arch", ("resnet18",)))
    timm_model: str = setting("resnet18", "timm model name, e.g. resnet18, convnext_nano",
                              applies=("arch", ("timm",)))
    pretrained: bool = setting(False, "start from timm's pretrained weights (local cache or "
                               "download); to rebuild a checkpoint without them, load it with "
                               "load_from_checkpoint(path, pretrained=False)",
                               applies=("arch", ("timm",)))
    pretrained_path: str | None = setting(None, "local timm-format weights file to start from "
                                          "(implies pretrained)", applies=("arch", ("timm",)))
    freeze_backbone_epochs: int = setting(
        0, "train only the classifier head for this many epochs, then the whole network; "
        "frozen batch norms keep their statistics; with DDP use --trainer.strategy "
        "ddp_find_unused_parameters_true", low=0)

    def init_settings(self) -> InitSettings:
        nonlinearity, slope = act_nonlinearity(self.act, self.act_slope)
        return InitSettings(nonlinearity=nonlinearity, slope=slope, std=self.init_std,
                            gain=self.init_gain)


def validate_network(settings: NetworkSettings, shape: NetworkShape) -> None:
    """Fail with one line on any bad name or value, before anything is built."""
    check_settings(settings)
    check_range("num_classes", shape.num_classes, 2)
    if len(settings.resnet_widths) != 4:
        raise ConfigError(f"resnet_widths needs 4 stage widths, got "
                          f"{list(settings.resnet_widths)}")
    arch = settings.arch.lower()
    if arch in _OWN_LAYERS:
        get_act_layer(settings.act, settings.act_slope, settings.act_alpha)
    if arch == "timm":
        check_timm_model(settings.timm_model)


def build_network(settings: NetworkSettings, shape: NetworkShape) -> nn.Module:
    """Build the network `settings.arch` ("mlp", "resnet18" or "timm") for data of `shape`.

    The weights are then initialized by `init`; with pretrained weights only the
    classifier head is, so the pretrained backbone is kept.
    """
    validate_network(settings, shape)
    arch = settings.arch.lower()
    network = NETWORKS[arch](settings, shape)
    pretrained = arch == "timm" and (settings.pretrained or settings.pretrained_path is not None)
    target = network.get_classifier() if pretrained else network
    init_weights(target, settings.init, settings.init_settings())
    return network
