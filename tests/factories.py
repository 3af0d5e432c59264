"""Short ways to build the library's pieces in tests, from plain keywords."""

from src.modules.losses import LossSettings, build_loss
from src.modules.networks import NetworkSettings, NetworkShape, build_network


def make_network(arch: str = "resnet18", *, num_classes: int, in_channels: int, image_size: int,
            **settings):
    """build_network for `arch` with NetworkSettings(**settings)."""
    return build_network(NetworkSettings(arch=arch, **settings),
                         NetworkShape(num_classes, in_channels, image_size))


def make_loss(name: str, num_classes: int, **settings):
    """build_loss for `name` with LossSettings(**settings)."""
    return build_loss(LossSettings(loss=name, **settings), num_classes)


# Tiny widths per architecture (a width setting of the other architecture is refused).
TINY = {"mlp": {"hidden_widths": (16, 8)}, "resnet18": {"resnet_widths": (4, 4, 8, 8)},
        "timm": {}}
