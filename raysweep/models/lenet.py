"""LeNet-300-100 (fully connected) and LeNet-5 (convolutional), as used by SNIP on MNIST."""

from __future__ import annotations

import math

from torch import nn

from .registry import register


@register(r"lenet_300_100", ("lenet_300_100",), "fully connected 300-100 network")
def lenet_300_100(*, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 300),
        nn.ReLU(),
        nn.Linear(300, 100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )


@register(r"lenet_5", ("lenet_5",), "two 5x5 conv layers (6, 16 channels) and a 120-84 head")
def lenet_5(*, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    channels, height, width = input_shape
    # Classic LeNet-5 leaves the second conv unpadded; inputs too small for that (8x8 digits) pad it
    # instead, and adaptive pooling brings any size to the 5x5 map the 400-unit head expects.
    second_padding = 0 if min(height, width) // 2 >= 5 else 2
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 16, 5, padding=second_padding),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(5),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


# Vysogorets & Kempe, Table 1: "All architectures include batch normalization layers followed by ReLU activations."
# Their LeNets are these: every hidden layer is followed by BatchNorm, then ReLU; the output layer by neither.

@register(r"lenet_300_100_bn", ("lenet_300_100_bn",),
          "lenet_300_100 with BatchNorm before each hidden ReLU (Vysogorets & Kempe, Table 1)")
def lenet_300_100_bn(*, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 300),
        nn.BatchNorm1d(300),
        nn.ReLU(),
        nn.Linear(300, 100),
        nn.BatchNorm1d(100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )


@register(r"lenet_5_bn", ("lenet_5_bn",),
          "LeNet-5 (6, 16 channels, 120-84 head) with BatchNorm before each hidden ReLU (Vysogorets & Kempe, Table 1)")
def lenet_5_bn(*, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    channels, height, width = input_shape
    # LeCun et al.'s LeNet-5 takes 32x32 inputs (CIFAR-10) without padding; 28x28 MNIST is padded by 2 to the same
    # 5x5 map before the head. Smaller inputs (8x8 digits) pad the second conv too and pool adaptively to 5x5.
    first_padding = 0 if min(height, width) >= 32 else 2
    second_padding = 0 if (min(height, width) + 2 * first_padding - 4) // 2 >= 5 else 2
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=first_padding),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 16, 5, padding=second_padding),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(5),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.BatchNorm1d(120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.BatchNorm1d(84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )
