"""Hayou et al.'s Stable ResNet for ImageNet (their Table 8, ResNet50): torchvision's ResNet with every residual
branch scaled by 1/sqrt(L), L the number of residual blocks (16 for ResNet-50), as their CIFAR Stable ResNets
(cifar_resnet.stable_resnet) are."""

from __future__ import annotations

import math

from torch import nn

from .registry import register
from .torchvision_nets import _resnet


class BranchScale(nn.Module):
    """Multiplies its input by a constant: appended to a block's last BatchNorm, it scales the residual branch."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * x

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


@register(r"stable_imagenet_resnet_(\d+)", ("stable_imagenet_resnet_50",),
          "imagenet_resnet_D (depth 18, 34, 50, 101 or 152) with residual branches scaled by 1/sqrt(#blocks)")
def stable_imagenet_resnet(depth: int, *, num_classes: int, input_shape) -> nn.Module:
    model = _resnet("stable_imagenet_resnet", depth, num_classes)
    if input_shape[0] != 3:
        model.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
    scale = 1.0 / math.sqrt(len(blocks))
    for block in blocks:   # the branch ends in bn3 (Bottleneck) or bn2 (BasicBlock); the shortcut is untouched
        last = "bn3" if hasattr(block, "bn3") else "bn2"
        setattr(block, last, nn.Sequential(getattr(block, last), BranchScale(scale)))
    return model
