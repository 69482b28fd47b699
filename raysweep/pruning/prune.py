"""prune(): scores + sparsity (+ quota, schedule, ablation) -> Masks."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .ablations import check_ablation, init_normal, reinit, shuffle
from .layers import derived_seed, prunable
from .masks import Masks
from .quotas import check_sparsity, quota as quota_fn
from .remove import ROUNDINGS, global_masks, layerwise_masks, schedule
from .scores import get_method, method_options, scorer


def _options_for(method: str, options: dict, seed: int) -> dict:
    accepted = method_options(method)
    chosen = {k: v for k, v in options.items() if k in accepted}
    if "seed" in accepted:
        chosen["seed"] = seed
    return chosen


TIE_BREAKS = ("random", "index")


def _layer_sparsities(model, sparsity, quota, names, data, seed, exclude, options, tie_break):
    """Per-layer sparsities for `quota` (name, 'ratio:<method>', list or dict), or None for global."""
    if quota is None:
        return None
    if isinstance(quota, str) and quota.startswith("ratio:"):
        ratio_method = quota[len("ratio:"):]
        ratio_masks = prune(model, sparsity, ratio_method, data, seed=seed, exclude=exclude, tie_break=tie_break,
                            **_options_for(ratio_method, options, seed))
        return [ratio_masks.layer_sparsities()[n] for n in names]
    params = dict(model.named_parameters())
    if isinstance(quota, str):
        return quota_fn(quota, [tuple(params[n].shape) for n in names], sparsity)
    if isinstance(quota, Mapping):
        missing = set(names) - set(quota)
        extra = set(quota) - set(names)
        if missing or extra:
            raise KeyError(f"quota dict must name every prunable layer: missing {sorted(missing)}, "
                           f"unknown {sorted(extra)}")
        quota = [quota[n] for n in names]
    if isinstance(quota, Sequence):
        if len(quota) != len(names):
            raise ValueError(f"quota lists {len(quota)} sparsities for {len(names)} prunable layers")
        out = []
        for n, s in zip(names, quota):
            s = float(s)
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"layer sparsity {s} for {n!r} is outside [0, 1]")
            out.append(s)
        return out
    raise ValueError(f"quota must be a name, 'ratio:<method>', a list or a dict, got {type(quota).__name__}")


def prune(model: nn.Module, sparsity: float, method: str, data=None, *, quota=None, iterations=None,
          seed: int = 0, ablation: str | None = None, exclude=(), tie_break: str = "random",
          rounding: str = "nearest", **options) -> Masks:
    """Masks pruning `sparsity` of the prunable weights of `model` by `method` (higher score = keep).

    quota: None ranks all layers together (global, exact round(s*N) pruned); a quota name
      (pruning.quotas()), 'ratio:<method>' (the layer sparsities that method's global pruning gives:
      Liu et al.'s ratios, Frankle's shuffle) or a list/dict of per-layer sparsities ranks each layer
      on its own, pruning round(s_l*n_l) (never a whole layer while s_l < 1).
    iterations: rounds of the exponential schedule, density (1-s)^(n/N) after round n, rescoring the
      surviving weights; None takes the method's default (synflow 100, snip_iterative 300, else 1).
    ablation: see pruning.ablations(). 'reinit' and 'init_normal' change the model's weights in
      place (that is the ablation); otherwise the model is left untouched.
    tie_break: which of the weights tied at the cut are pruned. 'random' (default): drawn at random,
      seeded by derived_seed(seed, 'ties/round<n>') so the draw is reproducible per trial and
      independent of the random method's scores. Tied scores say nothing about which weight matters,
      so the cut should not depend on parameter order: on LeNet-5/digits a third of SNIP's scores are
      exactly zero (dead ReLUs), and pruning them by position takes them all from the first layers.
      'index': the lower index in parameter order is pruned first (the earlier behaviour).
    rounding: each round's count (global ranking only): 'nearest' (default) prunes exactly
      round(s_t*N), so every method is compared at the same sparsity, following Frankle et al.'s
      description of SynFlow "pruning from sparsity s^((n-1)/N) to sparsity s^(n/N)" (App. F.1);
      'synflow' is Synaptic-Flow's rule (Tanaka et al.): prune every weight at or below the k-th
      lowest score, k = int(s_t*N); k is truncated, so a round may prune one weight fewer than
      round(s_t*N), and every tie at the cut goes, so it may prune more.
    options: method options (see each score function), e.g. temperature=200 for grasp.
    """
    s = check_sparsity(sparsity)
    spec = get_method(method)
    check_ablation(ablation)
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if rounding != "nearest" and quota is not None:
        raise ValueError(f"rounding {rounding!r} is a rule of global pruning; quota {quota!r} ranks each layer "
                         f"on its own with exact counts")
    accepted = method_options(method)
    ratio = quota[len("ratio:"):] if isinstance(quota, str) and quota.startswith("ratio:") else None
    ratio_accepted = method_options(ratio) if ratio else set()
    unknown = set(options) - accepted - ratio_accepted
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {sorted(unknown)}; its options: {sorted(accepted)}")
    names = list(prunable(model, exclude))
    rounds = spec.iterations if iterations is None else int(iterations)
    if ablation == "init_normal":
        init_normal(model, seed, exclude)
    layer_s = _layer_sparsities(model, s, quota, names, data, seed, exclude, options, tie_break)
    masks = None
    run = scorer(model, method, data, exclude=exclude, **_options_for(method, options, seed))
    for n, step in enumerate(schedule(s, rounds)):
        round_seed = seed if rounds == 1 else derived_seed(seed, f"round{n}")
        ties = (torch.Generator().manual_seed(derived_seed(seed, f"ties/round{n}"))
                if tie_break == "random" else None)
        scores = run(masks, **_options_for(method, {}, round_seed))
        if ablation == "invert":
            scores = {k: -v for k, v in scores.items()}
        if layer_s is None:
            masks = global_masks(scores, step, masks, ties=ties, rounding=rounding)
        else:
            frac = (n + 1) / rounds
            masks = layerwise_masks(scores, [1.0 - (1.0 - sl) ** frac if n + 1 < rounds else sl
                                             for sl in layer_s], masks, ties=ties)
    if ablation == "shuffle":
        masks = shuffle(masks, seed)
    if ablation == "reinit":
        reinit(model, seed, exclude)
    return masks
