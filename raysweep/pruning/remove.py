"""Scores + target sparsity -> masks: global or layerwise ranking, exact (or SynFlow-rounded) counts, seeded ties."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .masks import Masks


def count(sparsity: float, n: int) -> int:
    """Number of weights to prune: round(s * n), halves rounded up (not to even)."""
    return min(n, int(math.floor(sparsity * n + 0.5)))


def kth_smallest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest entry (1-based) of 1-D `x`, equal to torch.kthvalue(x, k).values.

    Large tensors are narrowed first: a fixed sample brackets the rank, one counting pass checks the
    bracket, and only the values inside it are selected exactly (several times faster than kthvalue
    on ResNet-50's 25M weights); a missed bracket falls back to kthvalue.
    """
    n = x.numel()
    if n <= 1 << 20:
        return torch.kthvalue(x.cpu(), k).values.to(x.device)
    gen = torch.Generator().manual_seed(0)
    sample = x[torch.randint(n, (1 << 16,), generator=gen).to(x.device)].sort().values
    q = k / n * sample.numel()
    margin = 4.0 * (sample.numel() ** 0.5) + 2
    lo = sample[max(0, int(q - margin))]
    hi = sample[min(sample.numel() - 1, int(q + margin))]
    below = int((x < lo).sum())
    band = x[(x >= lo) & (x <= hi)]
    if below < k <= below + band.numel():
        return torch.kthvalue(band.cpu(), k - below).values.to(x.device)
    return torch.kthvalue(x.cpu(), k).values.to(x.device)


def _ranked(flat: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
    """The scores with dead entries as -inf, so that they are exactly the lowest."""
    if torch.isnan(flat).any():
        raise ValueError("scores contain NaN")
    return flat if alive is None else flat.masked_fill(~alive, float("-inf"))


def _prune_lowest(flat: torch.Tensor, alive: torch.Tensor | None, k: int,
                  ties: torch.Generator | None = None) -> torch.Tensor:
    """Keep-mask pruning the k lowest scores among `alive` entries (already dead ones stay dead and
    count towards k; None = all alive). Ties at the cut: those pruned are drawn from `ties` (a CPU
    generator), or with ties=None the lower index is pruned first."""
    ranked = _ranked(flat, alive)
    dead = 0 if alive is None else int(flat.numel() - alive.sum())
    k_new = k - dead
    if k_new <= 0:
        return torch.ones_like(flat, dtype=torch.bool) if alive is None else alive.clone()
    if k_new >= flat.numel() - dead:
        return torch.zeros_like(flat, dtype=torch.bool)
    threshold = kth_smallest(ranked, k)
    keep = ranked > threshold
    at_cut, below = ranked == threshold, ranked < threshold
    if alive is not None:
        at_cut &= alive
        below &= alive
    tied = at_cut.nonzero().squeeze(1)
    if ties is not None:
        tied = tied[torch.randperm(tied.numel(), generator=ties).to(tied.device)]
    keep[tied[k_new - int(below.sum()):]] = True
    return keep


def _prune_at_or_below(flat: torch.Tensor, alive: torch.Tensor | None, k: int) -> torch.Tensor:
    """Keep-mask pruning every entry scored at or below the k-th lowest score (dead entries rank
    lowest and stay dead): all ties at the cut go, so more than k may be pruned."""
    ranked = _ranked(flat, alive)
    if k < 1:
        return torch.ones_like(flat, dtype=torch.bool) if alive is None else alive.clone()
    return ranked > kth_smallest(ranked, min(k, flat.numel()))


ROUNDINGS = ("nearest", "synflow")


def global_masks(scores: Mapping[str, torch.Tensor], sparsity: float,
                 current: Mapping[str, torch.Tensor] | None = None, *,
                 ties: torch.Generator | None = None, rounding: str = "nearest") -> Masks:
    """One ranking over all layers, pruning the lowest scores in total.

    rounding 'nearest' (default): exactly round(s*N) weights are pruned, ties at the cut broken by
      `ties` (see _prune_lowest). Every method then reaches the same count at every sparsity, so
      methods are compared at exactly the sparsity the figure shows; Frankle et al. describe each
      SynFlow round as "pruning from sparsity s^((n-1)/N) to sparsity s^(n/N)" (App. F.1).
    rounding 'synflow': Synaptic-Flow's rule (Tanaka et al.): k = int(s*N), truncated, and every
      weight scored at or below the k-th lowest score is pruned, ties included, so a round prunes at
      least k (which may be one fewer than round(s*N)) and possibly more.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    names = list(scores)
    dtype = torch.float64 if any(s.dtype == torch.float64 for s in scores.values()) else torch.float32
    flat = torch.cat([scores[n].detach().reshape(-1).to(dtype) for n in names])
    alive = None if current is None else torch.cat([current[n].reshape(-1).to(flat.device) for n in names])
    if rounding == "nearest":
        keep = _prune_lowest(flat, alive, count(sparsity, flat.numel()), ties)
    else:
        keep = _prune_at_or_below(flat, alive, int(sparsity * flat.numel()))
    out, start = Masks(), 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start:start + size].view(scores[n].shape)
        start += size
    return out


def layer_count(sparsity: float, n: int) -> int:
    """round(s_l * n_l), but never the whole layer while s_l < 1 (Definition 1, layer integrity)."""
    k = count(sparsity, n)
    return min(k, n - 1) if sparsity < 1.0 else k


def layerwise_masks(scores: Mapping[str, torch.Tensor], sparsities: Sequence[float],
                    current: Mapping[str, torch.Tensor] | None = None, *,
                    ties: torch.Generator | None = None) -> Masks:
    """Each layer ranked on its own, pruning round(s_l * n_l) of its weights; ties as in global_masks
    (one generator drawn from layer after layer)."""
    if len(sparsities) != len(scores):
        raise ValueError(f"{len(sparsities)} layer sparsities for {len(scores)} prunable layers")
    out = Masks()
    for (name, s), sl in zip(scores.items(), sparsities):
        flat = s.detach().reshape(-1)
        alive = None if current is None else current[name].reshape(-1).to(flat.device)
        out[name] = _prune_lowest(flat, alive, layer_count(sl, flat.numel()), ties).view(s.shape)
    return out


def schedule(sparsity: float, iterations: int) -> list[float]:
    """Exponential schedule: after round n of N the density is (1 - s)^(n/N); last round exact."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    steps = [1.0 - (1.0 - sparsity) ** (n / iterations) for n in range(1, iterations)]
    return steps + [sparsity]
