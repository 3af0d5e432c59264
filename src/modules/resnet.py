"""ResNet18 in its CIFAR form (He et al., 2016; the layout of the common CIFAR repos).

Unlike the ImageNet ResNet18 the stem is a single 3x3 stride-1 convolution with no
max-pool, so a 32x32 image keeps full resolution in the first stage:
32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> global average pool -> linear head.
"""

from collections.abc import Sequence

import torch
from torch import nn

from src.modules.layers import ActBuilder, NormBuilder


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every conv is followed by a norm layer (or nothing, for norm="none",
    # where we keep the same parameter layout so the variants stay comparable).
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_layer: NormBuilder, act_layer: ActBuilder):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.norm1 = norm_layer(out_channels)
        self.act1 = act_layer()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = norm_layer(out_channels)
        self.act2 = act_layer()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_layer(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with BasicBlocks; `blocks_per_stage=[2, 2, 2, 2]` is ResNet18."""

    def __init__(self, num_classes: int, in_channels: int, norm_layer: NormBuilder,
                 act_layer: ActBuilder, widths: Sequence[int] = (64, 128, 256, 512),
                 blocks_per_stage: Sequence[int] = (2, 2, 2, 2), dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), norm_layer(widths[0]), act_layer()
        )
        stages = []
        channels = widths[0]
        stage_shapes = zip(widths, blocks_per_stage, strict=True)
        for stage_index, (width, num_blocks) in enumerate(stage_shapes):
            first_stride = 1 if stage_index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                stride = first_stride if block_index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, norm_layer, act_layer))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))  # [B, C, H, W] -> [B, 512]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))  # [B, 512] -> [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
