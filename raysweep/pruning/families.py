"""Parameterised quota families: IGQ and ERK generalised by an exponent, with per-role density floors.

    pruning.quota("igq_power(a=1.3)", shapes, 0.9)
    pruning.quota("erk_power(p=0.5, first_density=1, last_density=0.2)", shapes, 0.9)

Every member meets Definition 1 of Vysogorets & Kempe (exact total, no layer fully pruned for s < 1)
or raises InfeasibleQuota. The published quotas are members:
    igq_power(a=1) = igq; erk_power(p=1) = erk; erk_power(p=1, last_density=1) = erk_plus;
    erk_power(p=0, first_density=1, last_density=0.2) = uniform_plus; erk_power(p=0) = igq_power(a=0) = uniform.
Role floors: first_density / last_density are the least density of the first / last prunable layer
(1 keeps it dense, as Uniform+ does for the first layer and ERK+ for the last; Uniform+ keeps >= 0.2 of the last).
erk_power's last_max_density caps the last layer's density: with last_density equal to it, the last layer sits at
exactly that density and ERK spreads the rest, as in Liu et al.'s Figure 14 (left), e.g.
    erk_power(p=1, last_density=0.2, last_max_density=0.2)   # ERK, last layer 80% sparse, total kept
"""
from __future__ import annotations

import math

import numpy as np

from .quotas import InfeasibleQuota, bisect_log, register_quota

def _floors(count: int, first_density: float, last_density: float) -> np.ndarray:
    for name, value in (("first_density", first_density), ("last_density", last_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} must lie in [0, 1]")
    floors = np.zeros(count)
    floors[0] = max(floors[0], first_density)
    floors[-1] = max(floors[-1], last_density)
    return floors


def _check_exponent(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"exponent {name}={value!r} must be finite")
    return value


def _describe(family: str, params: dict) -> str:
    return f"{family}({', '.join(f'{k}={v:g}' for k, v in params.items())})"


@register_quota("igq_power")
def igq_power(shapes, sparsity, a: float = 1.0, first_density: float = 0.0, last_density: float = 0.0):
    """Layer sparsity F m_l / (1 + F m_l) with m_l = n_l^a (a = 1: IGQ), capped at 1 - floor_l;
    F by bisection on log F so that the total lands on the target."""
    a = _check_exponent("a", a)
    n = np.array([math.prod(sh) for sh in shapes], dtype=np.float64)
    caps = 1.0 - _floors(len(shapes), first_density, last_density)
    label = _describe("igq_power", {"a": a, "first_density": first_density, "last_density": last_density})
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    target = sparsity * n.sum()
    reachable = float(np.sum(n * caps))   # a layer without a floor only approaches full pruning
    if target > reachable or (target == reachable and np.any(caps >= 1.0)):
        raise InfeasibleQuota(f"{label} cannot reach sparsity {sparsity}: the density floors keep "
                              f"{n.sum() - reachable:.0f} of {n.sum():.0f} weights")
    m = n ** a

    def pruned(log_f):
        fn = np.exp(log_f) * m
        return float(np.sum(np.minimum(n * caps, n * fn / (1.0 + fn))))

    fn = np.exp(bisect_log(pruned, target, label, sparsity)) * m
    result = [float(v) for v in np.minimum(caps, fn / (1.0 + fn))]
    if any(not 0.0 <= v < 1.0 for v in result):
        raise InfeasibleQuota(f"{label} prunes a whole layer at sparsity {sparsity} (layer sparsities {result})")
    return result


def clipped_allocation(n: np.ndarray, w: np.ndarray, lo: np.ndarray, hi: np.ndarray, budget: float, label: str):
    """Densities d_l = clip(eps w_l, lo_l, hi_l) with sum n_l d_l = budget, eps solved exactly.

    The total is piecewise linear and increasing in eps; the breakpoints lo/w and hi/w pick the piece,
    on which eps is a closed form (RigL's re-solve for ERK is the case lo = 0, hi = 1)."""
    if budget < float(np.sum(n * lo)) or budget > float(np.sum(n * hi)):
        raise InfeasibleQuota(f"{label}: the density floors keep {float(np.sum(n * lo)):.0f} weights and at "
                              f"most {float(np.sum(n * hi)):.0f} can be kept, the target keeps {budget:.0f}")

    def total(eps):
        return float(np.sum(n * np.clip(eps * w, lo, hi)))

    points = sorted({0.0, *(lo / w).tolist(), *(hi / w).tolist()})
    below = 0.0
    for b in points:
        if total(b) <= budget:
            below = b
    above = next((b for b in points if b > below), math.inf)
    at_hi = [i for i in range(len(n)) if hi[i] / w[i] <= below]
    at_lo = [i for i in range(len(n)) if i not in at_hi and lo[i] / w[i] >= above]
    fixed = set(at_hi) | set(at_lo)
    free = [i for i in range(len(n)) if i not in fixed]
    dens = np.clip(below * w, lo, hi)
    if free:
        rest = budget - sum(n[i] * (hi[i] if i in at_hi else lo[i]) for i in sorted(fixed))
        eps = rest / sum(w[i] * n[i] for i in free)
        for i in free:
            dens[i] = eps * w[i]
    return dens


@register_quota("erk_power")
def erk_power(shapes, sparsity, p: float = 1.0, first_density: float = 0.0, last_density: float = 0.0,
              last_max_density: float = 1.0):
    """Density proportional to ((sum of dims)/(product of dims))^p (p = 1: ERK, p = 0: uniform), at least the
    role floors, at most 1 (the last layer at most last_max_density); the proportionality constant is re-solved
    whenever a layer is clipped."""
    p = _check_exponent("p", p)
    floors = _floors(len(shapes), first_density, last_density)
    if not floors[-1] <= last_max_density <= 1.0 or last_max_density <= 0.0:
        raise ValueError(f"last_max_density={last_max_density!r} must lie in (0, 1] and be at least "
                         f"last_density={last_density!r}")
    params = {"p": p, "first_density": first_density, "last_density": last_density}
    label = _describe("erk_power", params if last_max_density == 1.0 else {**params,
                                                                           "last_max_density": last_max_density})
    if sparsity == 0.0:
        return [0.0] * len(shapes)
    n = np.array([math.prod(sh) for sh in shapes], dtype=np.float64)
    raw = np.array([sum(sh) / math.prod(sh) for sh in shapes])
    w = raw ** p
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise InfeasibleQuota(f"{label}: layer weights (sum/prod)^p over- or underflow on these layers")
    caps = np.ones(len(shapes))
    caps[-1] = last_max_density
    dens = clipped_allocation(n, w, floors, caps, (1.0 - sparsity) * n.sum(),
                              f"{label} cannot reach sparsity {sparsity}")
    result = [float(min(1.0, max(0.0, 1.0 - d))) for d in dens]
    if any(not v < 1.0 for v in result):
        raise InfeasibleQuota(f"{label} prunes a whole layer at sparsity {sparsity} (layer sparsities {result})")
    return result
