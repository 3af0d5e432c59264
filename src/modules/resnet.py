"""ResNet18 in its CIFAR form (He et al., 2016; the layout of the common CIFAR repos).

Unlike the ImageNet ResNet18 the stem is a single 3x3 stride-1 convolution with no
max-pool, so a 32x32 image keeps full resolution in the first stage:
32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> global average pool -> linear head.
"""

from collections.abc import Sequence

import torch
from timm.layers import DropBlock2d
from torch import nn

from src.modules.layers import ActBuilder, NormBuilder


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every conv is followed by a norm layer (or nothing, for norm="none",
    # where we keep the same parameter layout so the variants stay comparable).
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut.

    norm_after_act=False (the ResNet paper's order):
        out = act(norm2(conv2(act(norm1(conv1(x))))) + shortcut(x))
    norm_after_act=True swaps every "norm -> act" pair into "act -> norm"; the residual
    addition stays where it is, so the block's output is normalized:
        out = norm2(act(conv2(norm1(act(conv1(x)))) + shortcut(x)))
    The projection shortcut (1x1 conv -> norm) has no activation, so it is the same in
    both orders, and both orders have the same parameters.
    drop_block: applied to the block's output (after the residual addition, as in the
    DropBlock paper); nn.Identity() for none.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_layer: NormBuilder, act_layer: ActBuilder, norm_after_act: bool = False,
                 drop_block: nn.Module | None = None):
        super().__init__()
        self.norm_after_act = norm_after_act
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
        self.drop_block = drop_block if drop_block is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_after_act:
            out = self.norm1(self.act1(self.conv1(x)))
            out = self.norm2(self.act2(self.conv2(out) + self.shortcut(x)))
        else:
            out = self.act1(self.norm1(self.conv1(x)))
            out = self.act2(self.norm2(self.conv2(out)) + self.shortcut(x))
        return self.drop_block(out)


# Stages (1-based) whose blocks get DropBlock: the DropBlock paper (Ghiasi et al., 2018)
# found applying it to the last two groups of a ResNet best.
DROP_BLOCK_STAGES = (3, 4)


class CifarResNet(nn.Module):
    """ResNet with BasicBlocks; `blocks_per_stage=[2, 2, 2, 2]` is ResNet18.

    norm_after_act: put each normalization after its activation (see BasicBlock); the
        stem becomes conv -> act -> norm.
    dropout: dropout probability on the pooled features, before the linear head.
    drop_block_prob, drop_block_size: DropBlock (timm.layers.DropBlock2d) at the output of
        every block of stages 3 and 4 (8x8 and 4x4 maps on CIFAR; a block larger than the
        map is clipped to it); active in training only.
    """

    def __init__(self, num_classes: int, in_channels: int, norm_layer: NormBuilder,
                 act_layer: ActBuilder, widths: Sequence[int] = (64, 128, 256, 512),
                 blocks_per_stage: Sequence[int] = (2, 2, 2, 2), dropout: float = 0.0,
                 norm_after_act: bool = False, drop_block_prob: float = 0.0,
                 drop_block_size: int = 3):
        super().__init__()
        stem_norm_act = [act_layer(), norm_layer(widths[0])] if norm_after_act else [
            norm_layer(widths[0]), act_layer()]
        self.stem = nn.Sequential(conv3x3(in_channels, widths[0]), *stem_norm_act)
        stages = []
        channels = widths[0]
        stage_shapes = zip(widths, blocks_per_stage, strict=True)
        for stage_index, (width, num_blocks) in enumerate(stage_shapes):
            first_stride = 1 if stage_index == 0 else 2
            use_drop_block = drop_block_prob > 0 and stage_index + 1 in DROP_BLOCK_STAGES
            blocks = []
            for block_index in range(num_blocks):
                stride = first_stride if block_index == 0 else 1
                drop_block = (DropBlock2d(drop_block_prob, drop_block_size)
                              if use_drop_block else None)
                blocks.append(BasicBlock(channels, width, stride, norm_layer, act_layer,
                                         norm_after_act, drop_block))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(channels, num_classes)

    def get_classifier(self) -> nn.Module:
        """The classifier head (timm's name for it); everything else is the backbone."""
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))  # [B, C, H, W] -> [B, 512]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))  # [B, 512] -> [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
