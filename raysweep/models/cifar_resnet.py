"""CIFAR ResNets (He et al. 2016): ResNet-D with D = 6n+2, width W in the first stage (Liu's ResNet-20-W).

Frankle et al.'s variant: BatchNorm before activations and 1x1-conv (+BatchNorm) shortcuts where the shape
changes. The same network with its residual branches scaled by 1/sqrt(L), L = number of residual blocks, is
Hayou et al.'s Stable ResNet. GraSP's "WRN-32-2" is, as Frankle et al. (Table 4) note, ResNet-32 at twice
the standard width ("Wang et al. use twice the standard width"), so wide_resnet_D_K is ResNet-D with
first-stage width 16*K.

Hayou et al.'s ResNet32/50/104 are that width too (first stage 32: cifar_resnet_D_32, stable_resnet_D_32): their
"ResNet32 (NO PRUNING) 94.80" is the "Reported 94.8%" of WRN-32-2 in Frankle's Tables 3 and 5, and their SNIP and
GraSP rows at 90/95/98% are within 0.3 points of the numbers Frankle reprints from Wang et al. for WRN-32-2. The
_tanh variants (Hayou's Table 9) replace every ReLU by tanh.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import BadArchitecture, Size, register

DEFAULT_WIDTH = 16
HAYOU_DEPTHS = (32, 50, 104)


class Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, branch_scale: float,
                 activation=torch.relu):
        super().__init__()
        self.activation = activation
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.branch_scale = branch_scale
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.activation(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.shortcut(x) + self.branch_scale * self.branch(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int, stable: bool = False,
                 activation=torch.relu):
        super().__init__()
        self.activation = activation
        blocks_per_stage = (depth - 2) // 6
        num_blocks = 3 * blocks_per_stage
        scale = 1.0 / math.sqrt(num_blocks) if stable else 1.0
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(3):
            out_channels = width * 2**stage
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Block(channels, out_channels, stride, scale, activation))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.bn(self.conv(x)))
        return self.fc(self.pool(self.blocks(x)).flatten(1))


def _check(family: str, depth: int, width: int) -> None:
    if depth < 8 or (depth - 2) % 6:
        raise BadArchitecture(f"{family} depth {depth} is not 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110)")
    if width < 1:
        raise BadArchitecture(f"{family} width {width} must be a positive integer")


def _size(family: str, depth: int, width: int, num_classes: int, input_shape) -> Size:
    """CifarResNet(depth, width)'s parameters and weight layers, counted as its constructor creates them."""
    _check(family, depth, width)
    n = (depth - 2) // 6
    parameters, channels = 9 * input_shape[0] * width + 2 * width, width   # the first conv and its BatchNorm
    for stage in range(3):
        out = width * 2**stage
        # n blocks of two 3x3 convs with BatchNorm; the first takes `channels` in and, past stage 0, has a 1x1
        # shortcut with BatchNorm (stride 2)
        parameters += 9 * channels * out + (2 * n - 1) * 9 * out * out + 4 * n * out
        parameters += (channels * out + 2 * out) if stage > 0 else 0
        channels = out
    return Size(parameters + channels * num_classes + num_classes, 6 * n + 4)


def _wide(depth: int, factor: int) -> int:
    if factor < 1:
        raise BadArchitecture(f"wide_resnet width factor {factor} must be a positive integer")
    return DEFAULT_WIDTH * factor


@register(
    r"cifar_resnet_(\d+)(?:_(\d+))?",
    (*(f"cifar_resnet_{d}" for d in (20, 32, 44, 56, 110)), *(f"cifar_resnet_{d}_32" for d in HAYOU_DEPTHS)),
    "cifar_resnet_D or cifar_resnet_D_W: depth D = 6n+2, first-stage width W (default 16)",
    lambda depth, width=DEFAULT_WIDTH, **kw: _size("cifar_resnet", depth, width, **kw),
)
def cifar_resnet(depth: int, width: int = DEFAULT_WIDTH, *, num_classes: int, input_shape) -> nn.Module:
    _check("cifar_resnet", depth, width)
    return CifarResNet(depth, width, num_classes, input_shape[0])


@register(
    r"wide_resnet_(\d+)_(\d+)",
    ("wide_resnet_32_2",),
    "wide_resnet_D_K: cifar_resnet_D with first-stage width 16*K (GraSP's WRN-32-2)",
    lambda depth, factor, **kw: _size("wide_resnet", depth, _wide(depth, factor), **kw),
)
def wide_resnet(depth: int, factor: int, *, num_classes: int, input_shape) -> nn.Module:
    _check("wide_resnet", depth, _wide(depth, factor))
    return CifarResNet(depth, DEFAULT_WIDTH * factor, num_classes, input_shape[0])


@register(
    r"stable_resnet_(\d+)(?:_(\d+))?",
    tuple(f"stable_resnet_{d}_32" for d in HAYOU_DEPTHS),
    "stable_resnet_D or stable_resnet_D_W: cifar_resnet with residual branches scaled by 1/sqrt(#blocks) "
    "(Hayou et al.'s ResNet32/50/104 are stable_resnet_{32,50,104}_32)",
    lambda depth, width=DEFAULT_WIDTH, **kw: _size("stable_resnet", depth, width, **kw),
)
def stable_resnet(depth: int, width: int = DEFAULT_WIDTH, *, num_classes: int, input_shape) -> nn.Module:
    _check("stable_resnet", depth, width)
    return CifarResNet(depth, width, num_classes, input_shape[0], stable=True)


@register(r"cifar_resnet_(\d+)_(\d+)_tanh", ("cifar_resnet_32_32_tanh", "cifar_resnet_50_32_tanh"),
          "cifar_resnet_D_W with tanh in place of every ReLU (Hayou et al.'s Table 9)",
          lambda depth, width, **kw: _size("cifar_resnet", depth, width, **kw))
def cifar_resnet_tanh(depth: int, width: int, *, num_classes: int, input_shape) -> nn.Module:
    _check("cifar_resnet", depth, width)
    return CifarResNet(depth, width, num_classes, input_shape[0], activation=torch.tanh)


@register(r"stable_resnet_(\d+)_(\d+)_tanh", ("stable_resnet_32_32_tanh", "stable_resnet_50_32_tanh"),
          "stable_resnet_D_W with tanh in place of every ReLU (Hayou et al.'s Table 9)",
          lambda depth, width, **kw: _size("stable_resnet", depth, width, **kw))
def stable_resnet_tanh(depth: int, width: int, *, num_classes: int, input_shape) -> nn.Module:
    _check("stable_resnet", depth, width)
    return CifarResNet(depth, width, num_classes, input_shape[0], stable=True, activation=torch.tanh)
