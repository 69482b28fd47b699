"""Layerwise sparsity quotas: functions of the weight shapes and the target sparsity, by name.

Each returns per-layer sparsities meeting Definition 1 of Vysogorets & Kempe (exact total
sum_l s_l n_l = s N and no layer fully pruned for s < 1) or raises InfeasibleQuota.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Callable

import numpy as np

_QUOTAS: dict[str, Callable] = {}


class InfeasibleQuota(ValueError):
    """The quota cannot reach the target sparsity on these layers without breaking Definition 1."""


def register_quota(name: str):
    """Decorator: fn(shapes: list[tuple[int,...]], sparsity: float, **params) -> list[float]."""
    def decorate(fn):
        if name in _QUOTAS or name.startswith("ratio:"):
            raise ValueError(f"quota name {name!r} is taken or reserved")
        _QUOTAS[name] = fn
        return fn
    return decorate


def quotas() -> list[str]:
    return sorted(_QUOTAS)


def check_sparsity(sparsity) -> float:
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return s


def check_shapes(shapes) -> list[tuple[int, ...]]:
    out = []
    for shape in shapes:
        shape = tuple(int(d) for d in shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"layer shape {shape} must be non-empty with positive dimensions")
        out.append(shape)
    if not out:
        raise ValueError("no layer shapes given")
    return out


def parse_quota(text: str) -> tuple[str, dict]:
    """'igq' -> ('igq', {}); 'name(a=1.5, b=2)' -> ('name', {'a': 1.5, 'b': 2.0}): a parameterised quota as one string,
    so that a study's trials can name it."""
    text = text.strip()
    if not text.endswith(")") or "(" not in text:
        return text, {}
    name, _, args = text[:-1].partition("(")
    params = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not key.strip():
            raise ValueError(f"quota {text!r}: parameters must read name(key=number, ...)")
    return name.strip(), params


def quota(name: str, shapes: Sequence[Sequence[int]], sparsity: float, **params) -> list[float]:
    """Per-layer sparsities of quota `name` (or 'name(key=value, ...)') for weight `shapes` at total `sparsity`."""
    name, given = parse_quota(name)
    params = {**given, **params}
    if name not in _QUOTAS:
        raise KeyError(f"unknown quota {name!r}; known: {quotas()} (or 'ratio:<method>' in prune)")
    shapes = check_shapes(shapes)
    s = check_sparsity(sparsity)
    fn = _QUOTAS[name]
    try:
        inspect.signature(fn).bind(shapes, s, **params)
    except TypeError:
        accepted = list(inspect.signature(fn).parameters)[2:]
        raise ValueError(f"quota {name!r} takes parameters {accepted}, got {sorted(params)}") from None
    result = [float(v) for v in fn(shapes, s, **params)]
    sizes = [math.prod(sh) for sh in shapes]
    if len(result) != len(shapes) or any(not 0.0 <= v < 1.0 for v in result):
        raise InfeasibleQuota(f"quota {name!r} gave invalid layer sparsities {result} at {s}")
    total = sum(v * n for v, n in zip(result, sizes))
    if abs(total - s * sum(sizes)) > 1e-6 * max(1.0, s * sum(sizes)):
        raise InfeasibleQuota(f"quota {name!r} misses the total: {total} pruned vs {s * sum(sizes)}")
    return result


def _sizes(shapes):
    return np.array([math.prod(sh) for sh in shapes], dtype=np.float64)


@register_quota("uniform")
def uniform(shapes, sparsity):
    """Every layer at the target sparsity."""
    return [sparsity] * len(shapes)


@register_quota("uniform_plus")
def uniform_plus(shapes, sparsity, last_max: float = 0.8):
    """Uniform+ (Gale et al. 2019, as Vysogorets describes): first layer dense, last layer at most
    `last_max` sparse, the remaining pruned weights spread at one uniform sparsity."""
    n = _sizes(shapes)
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    if len(shapes) < 2:
        raise InfeasibleQuota("uniform_plus keeps the first layer dense; one layer cannot be pruned")
    target = sparsity * n.sum()
    rest = n[1:].sum()
    even = target / rest
    if even <= last_max or len(shapes) == 2:
        if even >= 1.0 or (len(shapes) == 2 and even > last_max):
            raise InfeasibleQuota(f"uniform_plus cannot reach sparsity {sparsity}: first layer dense and "
                                  f"last layer at most {last_max} sparse")
        return [0.0] + [even] * (len(shapes) - 1)
    middle = (target - last_max * n[-1]) / n[1:-1].sum()
    if middle >= 1.0:
        raise InfeasibleQuota(f"uniform_plus cannot reach sparsity {sparsity}: middle layers would be "
                              f"fully pruned ({middle:.4f})")
    return [0.0] + [middle] * (len(shapes) - 2) + [last_max]


def _erk_densities(shapes, density_budget, dense):
    """ERK densities eps*(sum dims)/(prod dims); layers in `dense`, or that would exceed 1, are dense
    and eps is re-solved for the rest (as RigL does)."""
    n = _sizes(shapes)
    raw = np.array([sum(sh) / math.prod(sh) for sh in shapes])
    dense = set(dense)
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        budget = density_budget - sum(n[i] for i in dense)
        if not free:
            return None
        if budget <= 0:
            return None
        eps = budget / sum(raw[i] * n[i] for i in free)
        over = [i for i in free if eps * raw[i] > 1.0 + 1e-12]  # rounding alone never caps a layer
        if not over:
            dens = np.ones(len(shapes))
            for i in free:
                dens[i] = eps * raw[i]
            return dens
        dense.update(over)


def _erk(shapes, sparsity, dense):
    n = _sizes(shapes)
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    dens = _erk_densities(shapes, (1.0 - sparsity) * n.sum(), dense)
    if dens is None or np.any(dens <= 0):
        raise InfeasibleQuota(f"ERK cannot reach sparsity {sparsity} with layers {sorted(dense)} dense")
    return [float(min(1.0, max(0.0, 1.0 - d))) for d in dens]


@register_quota("erk")
def erk(shapes, sparsity):
    """Erdos-Renyi-Kernel (Evci et al. 2020): density proportional to sum(shape)/prod(shape);
    a layer that would exceed density 1 is made dense and the rest re-solved."""
    return _erk(shapes, sparsity, ())


@register_quota("erk_plain")
def erk_plain(shapes, sparsity):
    """ERK by its formula alone, as Vysogorets & Kempe (sec. 4) use it: every layer at density
    eps*(sum dims)/(prod dims), nothing redistributed, so the quota does not exist where a layer would need a
    density above 1. They note that "the density of certain layers of VGG-16 set by ERK exceeds 1 when cutting
    less than 99% of parameters, unless excessive density is redistributed", and that ERK "yields invalid layerwise
    sparsity quotas when removing less than 98% and 99% of parameters from ResNet-18 and VGG-19"."""
    n = _sizes(shapes)
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    raw = np.array([sum(sh) / math.prod(sh) for sh in shapes])
    dens = (1.0 - sparsity) * n.sum() / float(np.sum(raw * n)) * raw
    if np.any(dens > 1.0 + 1e-12):
        worst = int(np.argmax(dens))
        raise InfeasibleQuota(f"ERK without redistribution does not exist at sparsity {sparsity}: layer {worst} "
                              f"(shape {shapes[worst]}) would need density {dens[worst]:.4f} > 1")
    return [float(max(0.0, 1.0 - d)) for d in dens]


@register_quota("erk_plus")
def erk_plus(shapes, sparsity):
    """ERK+ (Liu et al. 2022): ERK with the last layer forced dense, total kept the same."""
    return _erk(shapes, sparsity, (len(shapes) - 1,))


@register_quota("igq")
def igq(shapes, sparsity):
    """Ideal Gas Quotas (Vysogorets & Kempe sec. 4): layer density 1/(1 + F n_l), F found by
    bisection so that the total lands on the target."""
    n = _sizes(shapes)
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    target = sparsity * n.sum()

    def pruned(log_f):
        fn = np.exp(log_f) * n
        return float(np.sum(n * fn / (1.0 + fn)))

    fn = np.exp(bisect_log(pruned, target, "igq", sparsity)) * n
    return [float(v) for v in fn / (1.0 + fn)]


def bisect_log(pruned: Callable[[float], float], target: float, label: str, sparsity: float) -> float:
    """log F with pruned(log F) = target, for pruned increasing in log F: bracket, then bisect to the last bit."""
    lo, hi = -60.0, 60.0
    for _ in range(60):   # each widening moves the bracket by e^60; beyond 60 of them no float solves it
        if pruned(hi) >= target:
            break
        hi += 60.0
    for _ in range(60):
        if pruned(lo) <= target:
            break
        lo -= 60.0
    if not pruned(lo) <= target <= pruned(hi):
        raise InfeasibleQuota(f"{label} cannot reach sparsity {sparsity} in floating point on these layers")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if pruned(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)
