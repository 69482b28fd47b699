"""Model registry: names are parsed by regular expressions so that depth and width live in the name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

# Bounds of a network a trial may build. The largest the papers train (Wide ResNet-50-2, 69M parameters; ResNet-1202,
# 1202 layers) fit well within them; a name beyond them (cifar_resnet_200000, wide_resnet_32_20000) is a typo, and
# building it would take minutes and all the memory there is before failing.
MAX_PARAMETERS = 10**9
MAX_LAYERS = 10_000


class UnknownModel(KeyError):
    """A model name that no registered pattern matches."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class BadArchitecture(ValueError):
    """A name that matches a pattern but asks for an impossible depth or width."""


class Size(NamedTuple):
    parameters: int
    layers: int   # weight layers (convolutions and linear layers)


@dataclass(frozen=True)
class Family:
    pattern: str  # regular expression over the whole name; groups are passed to build as ints
    example_names: tuple[str, ...]  # canonical members listed by names()
    build: Callable[..., nn.Module]  # build(*groups, num_classes=, input_shape=) -> nn.Module
    help: str
    # size(*groups, num_classes=, input_shape=) -> Size, computed from the name's numbers without building the network
    # (raising BadArchitecture as build does); a family whose names have no size in them may leave it out
    size: Callable[..., Size] | None = None


_FAMILIES: list[Family] = []


def register(pattern: str, example_names: tuple[str, ...], help: str, size: Callable[..., Size] | None = None):
    def decorator(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES.append(Family(pattern, example_names, build, help, size))
        return build

    return decorator


def names() -> list[str]:
    return [n for family in _FAMILIES for n in family.example_names]


def patterns() -> list[str]:
    return [f"{family.pattern}  ({family.help})" for family in _FAMILIES]


def _family(name: str) -> tuple[Family, list[int]]:
    for family in _FAMILIES:
        match = re.fullmatch(family.pattern, name)
        if match:
            return family, [int(g) for g in match.groups() if g is not None]
    raise UnknownModel(
        f"unknown model name {name!r}. Available names: {', '.join(names())}. "
        f"Name patterns: {'; '.join(patterns())}"
    )


def build(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    family, groups = _family(name)
    if family.size is not None:   # refuses a network too large to build before trying
        size(name, num_classes, input_shape)
    return family.build(*groups, num_classes=num_classes, input_shape=input_shape)


def size(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> Size:
    """The parameters and weight layers of model `name`; BadArchitecture when it is impossible or larger than
    MAX_PARAMETERS or MAX_LAYERS. Computed from the name where its family can; a family that cannot (its names fix
    its size, or a plugin's) is built on the meta device: shapes only, no memory, no initialisation."""
    family, groups = _family(name)
    if family.size is not None:
        parameters, layers = family.size(*groups, num_classes=num_classes, input_shape=input_shape)
    else:
        with torch.device("meta"):
            model = family.build(*groups, num_classes=num_classes, input_shape=input_shape)
        parameters = sum(p.numel() for p in model.parameters())
        layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    if parameters > MAX_PARAMETERS or layers > MAX_LAYERS:
        raise BadArchitecture(f"{name} has {parameters:,} parameters in {layers:,} layers, more than a trial may build "
                              f"({MAX_PARAMETERS:,} parameters, {MAX_LAYERS:,} layers: "
                              f"raysweep.models.registry.MAX_PARAMETERS, MAX_LAYERS)")
    return Size(parameters, layers)
