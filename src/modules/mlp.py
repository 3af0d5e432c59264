"""Multi-layer perceptron on flattened images."""

from collections.abc import Sequence

import torch
from torch import nn

from src.modules.layers import ActBuilder, NormBuilder


class MLP(nn.Module):
    """Flatten -> [Linear -> norm -> activation -> dropout] per hidden width -> Linear.

    in_features: C*H*W of the input images (3072 for CIFAR-10).
    hidden_widths: width of each hidden layer, e.g. [512, 256]; empty for a linear model.
    norm_after_act: False: Linear -> norm -> act; True: Linear -> act -> norm.
    """

    def __init__(self, in_features: int, num_classes: int, hidden_widths: Sequence[int],
                 norm_layer: NormBuilder, act_layer: ActBuilder, dropout: float = 0.0,
                 norm_after_act: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = in_features
        for width in hidden_widths:
            layers.append(nn.Linear(width_in, width))
            if norm_after_act:
                layers += [act_layer(), norm_layer(width)]
            else:
                layers += [norm_layer(width), act_layer()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width_in = width
        self.features = nn.Sequential(*layers)
        self.num_features = width_in
        # No normalization on the classifier output: the logits must stay free.
        self.head = nn.Linear(width_in, num_classes)

    def get_classifier(self) -> nn.Module:
        """The classifier head (timm's name for it); everything else is the backbone."""
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # [B, C, H, W] -> [B, num_features]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # [B, num_features] -> [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
