"""Hayou et al.'s V-CNN (Table 4): a vanilla convolutional network of depth L, without normalisation or skip
connections, the setting in which their Edge-of-Chaos analysis of pruning is exact.

vanilla_cnn_L_W is L 3x3 convolutions (stride 1, padding 1, with biases) of W channels each, every one followed by a
ReLU, then global average pooling and one linear layer. Hayou et al.'s tables give no width; the registry's names
use W = 128, wide enough that a depth-100 network at the EOC keeps its signal (the fluctuation of a ReLU network's
squared activation length grows with the sum of its layers' reciprocal widths, L/W here: Hanin & Rolnick 2018), so
that Table 4's depths 10, 50 and 100 test the initialisation and not the width.
"""

from __future__ import annotations

from torch import nn

from .registry import BadArchitecture, Size, register

HAYOU_TABLE4_DEPTHS = (10, 50, 100)
WIDTH = 128


class VanillaCNN(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _check(depth: int, width: int) -> None:
    if depth < 1 or width < 1:
        raise BadArchitecture(f"vanilla_cnn depth {depth} and width {width} must be positive integers")


def _size(depth: int, width: int, *, num_classes: int, input_shape) -> Size:
    """VanillaCNN's parameters (biased convolutions, a linear head) and weight layers, without building it."""
    _check(depth, width)
    convs = 9 * input_shape[0] * width + width + (depth - 1) * (9 * width * width + width)
    return Size(convs + width * num_classes + num_classes, depth + 1)


@register(r"vanilla_cnn_(\d+)_(\d+)", tuple(f"vanilla_cnn_{d}_{WIDTH}" for d in HAYOU_TABLE4_DEPTHS),
          "vanilla_cnn_L_W: L 3x3 conv + ReLU layers of W channels, no BatchNorm, no skips, global average pooling "
          "and a linear head (Hayou et al.'s V-CNN)", _size)
def vanilla_cnn(depth: int, width: int, *, num_classes: int, input_shape) -> nn.Module:
    _check(depth, width)
    return VanillaCNN(depth, width, input_shape[0], num_classes)
