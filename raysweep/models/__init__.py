"""Model registry by name (depth and width in the name) and seeded initialisation.

    create(name, num_classes=10, input_shape=(3, 32, 32), seed=0, init="kaiming_normal", bn_init="ones")
    names()        canonical names; create() also accepts any name matching patterns()
    size(name, num_classes, input_shape)   parameters and weight layers, without building (registry.MAX_PARAMETERS)
    initialize(model, seed, init=..., bn_init=...)
    eoc_rescale(model, masks)
"""

from __future__ import annotations

import torch
from torch import nn

from . import (cifar_resnet, lenet, stable_imagenet_resnet, torchvision_nets, vanilla_cnn,  # noqa: F401
               vgg)  # (register the families)
from .init import BN_INITS, EOC_SIGMA_W, WEIGHT_INITS, check_scheme, eoc_rescale, initialize
from .registry import BadArchitecture, Size, UnknownModel, names, patterns, size
from .registry import build as _build

__all__ = [
    "BN_INITS", "EOC_SIGMA_W", "WEIGHT_INITS", "BadArchitecture", "Size", "UnknownModel",
    "create", "eoc_rescale", "initialize", "names", "patterns", "size",
]


def create(
    name: str,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    seed: int = 0,
    init: str = "kaiming_normal",
    bn_init: str = "ones",
) -> nn.Module:
    """Build model `name` for inputs of shape (C, H, W) and `num_classes` outputs, initialised by
    initialize(model, seed, init, bn_init). The caller's global torch RNG state is not changed."""
    check_scheme(init, bn_init)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    # Module constructors draw their default init from the global RNG; that draw is overwritten below,
    # so it runs on a forked RNG to leave the caller's stream untouched.
    with torch.random.fork_rng(devices=[]):
        model = _build(name, num_classes, input_shape)
    return initialize(model, seed, init, bn_init)
