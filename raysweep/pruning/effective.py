"""Effective sparsity (Vysogorets & Kempe sec. 3, 5): weights on no input-output path are inactive."""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .layers import PRUNABLE_TYPES, max_to_avg_pool, prunable, replace_modules
from .masks import Masks
from .prune import prune
from .quotas import check_sparsity, quota
from .remove import layer_count
from .scores import method_options

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _linearise(module: nn.Module):
    if isinstance(module, _NORMS):
        return nn.Identity()
    return max_to_avg_pool(module)


class _Support(torch.autograd.Function):
    """Per-layer rescaling to the support: forward x -> [x > 0], backward g -> [g > 0].

    In the positive linearised network only the zero pattern of activations and gradients carries
    the path information, and each layer's pattern is preserved exactly; keeping values in {0, 1}
    after every layer means deep ResNets can neither overflow nor drift into slow, lossy denormals.
    """

    @staticmethod
    def forward(ctx, x):
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (grad > 0).to(grad.dtype)


def _to_support(module, inputs, output):
    return _Support.apply(output)


def effective_masks(model: nn.Module, masks: Mapping[str, torch.Tensor], input_shape: Sequence[int]) -> Masks:
    """Masks keeping only weights on some input-to-output path of the masked network.

    Path counting: in a copy of the network with every kept weight set to a positive value, biases
    zero, normalisation layers as identities, max-pools as average-pools and an all-ones float64
    input, a weight lies on an input-output path iff d(sum of outputs)/dw != 0. Unpruned weights are
    treated as non-zero (the result depends on masks and architecture only). Each prunable layer's
    output and its gradient are rescaled to their supports (see _Support). Works for residual connections, pooling and linear heads
    built from modules (functional max-pooling inside forward() is outside its reach).
    """
    masks = Masks(masks).validate(model)
    weight_ids = {id(m.weight) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)}
    # the copy is born in float64 with its path-counting values: no float32 copy to convert first
    memo = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in masks:
                value = masks[name].to(p.device, torch.float64)
            elif id(p) in weight_ids:
                value = torch.ones_like(p, dtype=torch.float64)
            elif name.endswith("bias"):
                value = torch.zeros_like(p, dtype=torch.float64)
            else:
                value = p.detach().abs().double()
            memo[id(p)] = nn.Parameter(value, requires_grad=name in masks)
        for b in model.buffers():
            memo[id(b)] = b.detach().double() if b.is_floating_point() else b.detach().clone()
    work = copy.deepcopy(model, memo).eval()
    replace_modules(work, _linearise)
    params = dict(work.named_parameters())
    hooks = []
    for m in work.modules():
        if isinstance(m, PRUNABLE_TYPES):
            hooks.append(m.register_forward_hook(_to_support))
    weights = [params[name] for name in masks]
    device = weights[0].device
    ones = torch.ones((1, *tuple(input_shape)), dtype=torch.float64, device=device)
    try:
        out = work(ones)
    except RuntimeError as err:
        raise ValueError(f"input_shape {tuple(input_shape)} does not fit {type(model).__name__}: {err}") from err
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    for h in hooks:
        h.remove()
    result = Masks()
    for (name, mask), g in zip(masks.items(), grads):
        active = torch.zeros_like(mask) if g is None else (g != 0).to(mask.device)
        result[name] = mask & active
    return result


def effective_sparsity(model: nn.Module, masks: Mapping[str, torch.Tensor], input_shape: Sequence[int]) -> float:
    """Fraction of weights pruned or disconnected from the input or the output."""
    return effective_masks(model, masks, input_shape).sparsity()


def _bisect(masks_at: Callable[[int], Masks], n: int, target: float, model, input_shape,
            closest: bool = True) -> Masks:
    """Bisection for the largest k with effective sparsity below `target`; returns it, or (closest) k+1 if that
    lands closer. masks_at(k) must be nested (k1 <= k2 -> masks_at(k2) within masks_at(k1)), so
    effective sparsity is monotone in k and bisection branches correctly."""
    lo, hi = 0, n
    lo_masks = masks_at(0)
    if effective_sparsity(model, lo_masks, input_shape) >= target:
        return lo_masks
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidate = masks_at(mid)
        if effective_sparsity(model, candidate, input_shape) < target:
            lo, lo_masks = mid, candidate
        else:
            hi = mid
    if closest and hi < n:
        hi_masks = masks_at(hi)
        e_lo = effective_sparsity(model, lo_masks, input_shape)
        e_hi = effective_sparsity(model, hi_masks, input_shape)
        if abs(e_hi - target) < abs(e_lo - target):
            return hi_masks
    return lo_masks


def effective_prune(model: nn.Module, sparsity: float, method: str, input_shape: Sequence[int], data=None,
                    **prune_options) -> Masks:
    """Effective pruning (Vysogorets & Kempe sec. 5) by `method` run exactly as direct pruning runs it: masks whose
    *effective* sparsity lands on `sparsity` (the closest achievable).

    "Algorithms like GraSP, SynFlow, and LAMP rank parameters by some notion of importance to guide pruning. When
    such a ranking R is available, we employ binary search for the appropriate cut-off threshold t". We bisect the
    number k of directly pruned weights, each candidate being prune(model, k / N, method, data, **prune_options)
    itself, so an iterative method (SynFlow's 100 rounds, SNIP-iterative's 300) prunes to every candidate with its
    own schedule, and the result is the direct-target mask at the direct sparsity the bisection lands on. For a
    one-shot ranking the candidates are the cuts of one ranking (nested: effective sparsity grows with k, as the
    paper's monotonicity argument needs); an iterative method's candidates need not be nested, and bisection then
    lands on some k whose effective sparsity is below the target while that of k + 1 is not.
    prune_options: those of prune() (quota, iterations, seed, exclude, method options); no ablation. A method with
    an input_shape option (SynFlow's all-ones input) gets `input_shape` unless data or the option is given.
    """
    target = check_sparsity(sparsity)
    if prune_options.get("ablation") is not None:
        raise ValueError("effective pruning takes no ablation: it would change the model at every candidate")
    if data is None and "input_shape" in method_options(method):
        prune_options.setdefault("input_shape", tuple(input_shape))
    dense = Masks.ones(model, prune_options.get("exclude", ()))
    total = dense.num_total()

    def masks_at(k):
        return dense if k == 0 else prune(model, k / total, method, data, **prune_options)

    return _bisect(masks_at, total, target, model, input_shape)


def effective_random_prune(model: nn.Module, sparsity: float, quota_name: str, input_shape: Sequence[int],
                           seed: int = 0, exclude=(), **quota_params) -> Masks:
    """Algorithm 1 (Vysogorets & Kempe): random pruning under a layerwise quota whose *effective*
    sparsity approaches `sparsity`.

    Bisection over the number m of directly pruned weights; at each m every layer prunes
    round(s_l n_l) weights with s_l = quota(m / N). Drawing each layer's removals at random from the
    weights alive in S1 and dead in S2 is, in distribution, a fixed random order per layer, which we
    draw once (seeded): the subnetworks are then nested as the algorithm requires (the quota must be
    layerwise monotone). Returns S1, the side with effective sparsity below the target.
    """
    target = check_sparsity(sparsity)
    params = prunable(model, exclude)
    names = list(params)
    shapes = [tuple(p.shape) for p in params.values()]
    sizes = [p.numel() for p in params.values()]
    total = sum(sizes)
    gen = torch.Generator().manual_seed(int(seed))
    orders = [torch.randperm(n, generator=gen) for n in sizes]

    def masks_at(m):
        sl = quota(quota_name, shapes, m / total, **quota_params)
        out = Masks()
        for name, order, n, s, p in zip(names, orders, sizes, sl, params.values()):
            keep = torch.ones(n, dtype=torch.bool)
            keep[order[:layer_count(s, n)]] = False
            out[name] = keep.view(p.shape).to(p.device)
        return out

    return _bisect(masks_at, total, target, model, input_shape, closest=False)
