"""torchvision's ImageNet architectures (weights=None), adapted to the input channels and class count.

torchvision is imported when one of them is built: importing it takes seconds, and checking a spec's model names
(raysweep run, --dry-run) needs only the registry."""

from __future__ import annotations

from torch import nn

from .registry import BadArchitecture, register

_RESNETS = (18, 34, 50, 101, 152)
_WIDE = (50, 101)


def _resnet(family: str, depth: int, num_classes: int) -> nn.Module:
    import torchvision
    if depth not in _RESNETS:
        raise BadArchitecture(f"{family} depth {depth} is not one of {list(_RESNETS)}")
    return getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)


@register(r"imagenet_resnet_(\d+)", ("imagenet_resnet_18", "imagenet_resnet_50"), "depth 18, 34, 50, 101 or 152")
def imagenet_resnet(depth: int, *, num_classes: int, input_shape) -> nn.Module:
    model = _resnet("imagenet_resnet", depth, num_classes)
    if input_shape[0] != 3:
        model.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
    return model


@register(r"imagenet_wide_resnet_(\d+)", ("imagenet_wide_resnet_50",),
          "torchvision's Wide ResNet-50-2 / 101-2 (bottleneck width doubled), Liu et al.'s Wide ResNet-50")
def imagenet_wide_resnet(depth: int, *, num_classes: int, input_shape) -> nn.Module:
    import torchvision
    if depth not in _WIDE:
        raise BadArchitecture(f"imagenet_wide_resnet depth {depth} is not one of {list(_WIDE)}")
    model = getattr(torchvision.models, f"wide_resnet{depth}_2")(weights=None, num_classes=num_classes)
    if input_shape[0] != 3:
        model.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
    return model


@register(
    r"tiny_resnet_(\d+)",
    ("tiny_resnet_18",),
    "ImageNet ResNet (depth 18, 34, 50, 101, 152) modified for TinyImageNet: 3x3 stride-1 first conv, no max-pool",
)
def tiny_resnet(depth: int, *, num_classes: int, input_shape) -> nn.Module:
    model = _resnet("tiny_resnet", depth, num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register(r"mobilenet_v2", ("mobilenet_v2",), "torchvision MobileNetV2, width multiplier 1")
def mobilenet_v2(*, num_classes: int, input_shape) -> nn.Module:
    import torchvision
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    if input_shape[0] != 3:
        first = model.features[0][0]
        model.features[0][0] = nn.Conv2d(
            input_shape[0], first.out_channels, 3, stride=first.stride, padding=1, bias=False
        )
    return model
