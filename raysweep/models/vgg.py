"""VGG with BatchNorm for CIFAR (Frankle et al. A.1, after Lee et al.): 3x3 conv stack, one linear head."""

from __future__ import annotations

from torch import nn

from .registry import BadArchitecture, Size, register

# "M" is 2x2 max pooling. The last stage has no pooling: adaptive average pooling feeds the head.
_LAYOUTS: dict[int, list] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class CifarVGG(nn.Module):
    def __init__(self, layout: list, num_classes: int, in_channels: int, repeat: int = 1, batchnorm: bool = True,
                 hidden: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in layout:
            if item == "M":
                # ceil_mode keeps a 1x1 map at 1x1, so 8x8 inputs survive four poolings.
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            for _ in range(repeat):
                # without BatchNorm the convolutions carry their own biases, as in the original VGG
                conv = nn.Conv2d(channels, item, 3, padding=1, bias=not batchnorm)
                layers += [conv, nn.BatchNorm2d(item), nn.ReLU()] if batchnorm else [conv, nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # hidden > 0: a second fully connected layer (with BatchNorm, as SNIP's VGG-D) before the head
        self.hidden = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU()) if hidden \
            else nn.Identity()
        self.fc = nn.Linear(hidden or channels, num_classes)

    def forward(self, x):
        return self.fc(self.hidden(self.pool(self.features(x)).flatten(1)))


def _size(depth: int, repeat: int, num_classes: int, input_shape, batchnorm: bool = True, hidden: int = 0) -> Size:
    """CifarVGG's parameters and weight layers, counted as its constructor creates them, without building it."""
    _check(depth, repeat)
    parameters, channels = 0, input_shape[0]
    for item in (i for i in _LAYOUTS[depth] if i != "M"):
        # `repeat` 3x3 convs of `item` channels, the first taking `channels` in; each with BatchNorm or a bias
        parameters += 9 * channels * item + (repeat - 1) * 9 * item * item + repeat * (2 if batchnorm else 1) * item
        channels = item
    if hidden:
        parameters += channels * hidden + 3 * hidden   # the linear layer's weights and bias, its BatchNorm
    parameters += (hidden or channels) * num_classes + num_classes
    return Size(parameters, repeat * sum(i != "M" for i in _LAYOUTS[depth]) + 1 + bool(hidden))


@register(r"cifar_vgg_(\d+)(?:x(\d+))?", (*(f"cifar_vgg_{d}" for d in _LAYOUTS), "cifar_vgg_16x3"),
          "depth 11, 13, 16 or 19; cifar_vgg_DxK repeats every conv layer K times (Hayou et al.'s 3xVGG16 is "
          "cifar_vgg_16x3: our reading, as their tables do not spell the architecture out)",
          lambda depth, repeat=1, *, num_classes, input_shape: _size(depth, repeat, num_classes, input_shape))
def cifar_vgg(depth: int, repeat: int = 1, *, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    _check(depth, repeat)
    return CifarVGG(_LAYOUTS[depth], num_classes, input_shape[0], repeat)


def _check(depth: int, repeat: int) -> None:
    if depth not in _LAYOUTS:
        raise BadArchitecture(f"cifar_vgg depth {depth} is not one of {sorted(_LAYOUTS)}")
    if repeat < 1:
        raise BadArchitecture(f"cifar_vgg repeat {repeat} must be at least 1")


@register(r"cifar_vgg_(\d+)(?:x(\d+))?_nobn", ("cifar_vgg_16_nobn", "cifar_vgg_16x3_nobn"),
          "cifar_vgg_D or cifar_vgg_DxK without BatchNorm (biased convolutions): Hayou et al.'s Table 5, where "
          "their per-channel rescaling would otherwise be undone by BatchNorm",
          lambda depth, repeat=1, *, num_classes, input_shape: _size(depth, repeat, num_classes, input_shape,
                                                                     batchnorm=False))
def cifar_vgg_nobn(depth: int, repeat: int = 1, *, num_classes: int, input_shape) -> nn.Module:
    _check(depth, repeat)
    return CifarVGG(_LAYOUTS[depth], num_classes, input_shape[0], repeat, batchnorm=False)


@register(r"cifar_vgg2_(\d+)", ("cifar_vgg2_16",),
          "cifar_vgg_D with two fully connected layers (512 hidden units): Frankle et al.'s VGG2-16, SNIP's VGG-D",
          lambda depth, *, num_classes, input_shape: _size(depth, 1, num_classes, input_shape, hidden=512))
def cifar_vgg2(depth: int, *, num_classes: int, input_shape) -> nn.Module:
    _check(depth, 1)
    return CifarVGG(_LAYOUTS[depth], num_classes, input_shape[0], hidden=512)
