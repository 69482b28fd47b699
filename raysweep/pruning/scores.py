"""Scoring functions (higher score = keep), one small function per method, in a registry by name.

Every function receives a private working copy of the model (see `score`), the masks to score under
(pruned weights are zero in that copy), the scoring data and its own keyword options, and returns
{parameter name: score tensor}. A new method only supplies its score and registers it here.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .layers import fork_rng, max_to_avg_pool, prunable, replace_modules, working_copy
from .masks import Masks
from .wholebatch import given_stats, has_train_batch_norm, whole_batch_grads, whole_batch_hessian_product


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    iterations: int  # default number of pruning rounds (exponential schedule)
    needs_data: bool


_METHODS: dict[str, Method] = {}


def register_method(name: str, *, iterations: int = 1, needs_data: bool = False):
    def decorate(fn):
        if name in _METHODS:
            raise ValueError(f"pruning method {name!r} is already registered")
        _METHODS[name] = Method(name, fn, iterations, needs_data)
        return fn
    return decorate


def methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise KeyError(f"unknown pruning method {name!r}; known: {methods()}")
    return _METHODS[name]


def method_options(name: str) -> set[str]:
    params = inspect.signature(get_method(name).fn).parameters
    return {p for p, v in params.items() if v.kind == v.KEYWORD_ONLY}


def score(model: nn.Module, method: str, data=None, masks: Mapping | None = None, *,
          exclude=(), **options) -> dict[str, torch.Tensor]:
    """Scores of every prunable weight of `model` under `masks` (higher = keep).

    The model's weights, BN statistics, grads, training flag and the caller's RNG state are left as
    they were: scoring runs on a deep copy inside a forked RNG. `data` is an (x, y) batch; the
    methods that need it (snip, grasp, ...) take at most per_class=10 examples of each class from
    it (Frankle et al. App. D/E, following Wang et al.); per_class=None keeps the batch as given.
    """
    return scorer(model, method, data, exclude=exclude, **options)(masks)


def scorer(model: nn.Module, method: str, data=None, *, exclude=(), **options):
    """Checks the arguments once and returns run(masks=None, **more_options) -> scores, which scores
    under each new mask set on one private copy, refreshed from `model` before every call (so an
    iterative prune pays for one deep copy, not one per round)."""
    spec = get_method(method)
    unknown = set(options) - method_options(method)
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {sorted(unknown)}; "
                         f"its options: {sorted(method_options(method))}")
    names = list(prunable(model, exclude))
    if spec.needs_data:
        data = check_batch(model, data, method)
    work = working_copy(model)

    def run(masks: Mapping | None = None, **more_options) -> dict[str, torch.Tensor]:
        masks = Masks(masks) if masks is not None else Masks()
        if masks:
            masks.validate(model)
            stray = set(masks) - set(names)
            if stray:
                raise KeyError(f"masks {sorted(stray)} are not prunable weights of this model")
        with fork_rng(list(model.parameters())):
            with torch.no_grad():
                # a method may have cast, |.|-ed or (BN in train mode) updated the copy last time
                for mine, theirs in zip(work.parameters(), model.parameters()):
                    mine.copy_(theirs)
                for mine, theirs in zip(work.buffers(), model.buffers()):
                    mine.copy_(theirs)
                params = dict(work.named_parameters())
                for name, mask in masks.items():
                    params[name].masked_fill_(~mask.to(params[name].device), 0.0)
            result = spec.fn(work, [params[n] for n in names], data, **{**options, **more_options})
        return {name: s.detach() for name, s in zip(names, result)}

    return run


def check_batch(model: nn.Module, data, method: str):
    if data is None:
        raise ValueError(f"method {method!r} needs scoring data=(x, y)")
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"data for {method!r} must be a pair (x, y), got {type(data).__name__}")
    x, y = data
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"data x must be a float tensor (batch, ...), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32) or y.shape != x.shape[:1]:
        raise ValueError(f"data y must be integer labels of shape ({x.shape[0]},), got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    return x, y.long()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        return model(x)
    except RuntimeError as err:
        raise ValueError(f"scoring batch of shape {tuple(x.shape)} does not fit "
                         f"{type(model).__name__}: {err}") from err


def _set_mode(model: nn.Module, bn_mode: str) -> None:
    if bn_mode not in ("train", "eval"):
        raise ValueError(f"bn_mode must be 'train' or 'eval', got {bn_mode!r}")
    model.train(bn_mode == "train")


def _chunks(data, chunk_size):
    x, y = data
    if chunk_size is None:
        return [(x, y)]
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
    return list(zip(x.split(chunk_size), y.split(chunk_size)))


def _per_class(data, per_class):
    """The first `per_class` examples of every class in `data` (None: the batch as given)."""
    if per_class is None:
        return data
    if int(per_class) < 1:
        raise ValueError(f"per_class must be a positive int or None, got {per_class}")
    x, y = data
    onehot = F.one_hot(y)
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1
    keep = rank < int(per_class)
    return x[keep], y[keep]


def _chunk_loss(n: int, temperature: float):
    """Chunk (x, y)'s share of the mean cross-entropy over a batch of n examples."""
    return lambda model, x, y: F.cross_entropy(_logits(model, x) / temperature, y, reduction="sum") / n


def _loss_grads(model, weights, data, chunk_size, temperature=1.0):
    """Gradient of the mean cross-entropy over the whole batch, accumulated over chunks. With BatchNorm in
    train mode the chunks are normalised by, and differentiated through, the whole batch's statistics
    (wholebatch), so the result is that of one pass over the whole batch."""
    chunks = _chunks(data, chunk_size)
    loss = _chunk_loss(data[0].shape[0], temperature)
    for w in weights:
        w.requires_grad_(True)
    if len(chunks) > 1 and has_train_batch_norm(model):
        with given_stats(model) as layers:
            return whole_batch_grads(model, weights, layers, chunks, loss)
    grads = [torch.zeros_like(w) for w in weights]
    for x, y in chunks:
        for acc, g in zip(grads, torch.autograd.grad(loss(model, x, y), weights)):
            acc += g
    return grads


@register_method("random")
def random_scores(model, weights, data, *, seed: int = 0):
    """Uniform random scores, seeded: random pruning."""
    gen = torch.Generator().manual_seed(int(seed))
    return [torch.rand(w.shape, generator=gen).to(w.device) for w in weights]


@register_method("magnitude")
def magnitude_scores(model, weights, data):
    """|w|."""
    return [w.abs() for w in weights]


@register_method("lamp")
def lamp_scores(model, weights, data):
    """LAMP (Lee et al. 2021, Vysogorets sec. 2): w_u^2 / sum of w_v^2 over |w_v| >= |w_u| in its layer."""
    out = []
    for w in weights:
        sq = w.detach().double().flatten() ** 2
        ordered, order = sq.sort()
        suffix = ordered.flip(0).cumsum(0).flip(0)
        # tied magnitudes share the sum taken from the first of their group
        _, counts = torch.unique_consecutive(ordered, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        suffix = torch.repeat_interleave(suffix[starts], counts)
        ratio = torch.where(suffix > 0, ordered / suffix.clamp_min(1e-300), torch.zeros_like(ordered))
        flat = torch.empty_like(ratio)
        flat[order] = ratio
        out.append(flat.view_as(w).to(w.dtype))
    return out


@register_method("snip", needs_data=True)
def snip_scores(model, weights, data, *, bn_mode: str = "train", per_class: int | None = 10,
                chunk_size: int | None = None):
    """SNIP (Lee et al. 2019): |dL/dw * w| on the scoring batch.

    per_class: use at most the first `per_class` examples of each class of `data` (default 10, the
    class-balanced batch of Frankle et al. App. D after Wang et al.); None uses the batch as given,
    as Lee et al.'s single mini-batch.
    bn_mode: 'train' (default; BatchNorm uses batch statistics, as the network is at its first
    training step, which is what Frankle et al.'s replication runs) or 'eval' (running statistics).
    chunk_size: run a large batch (10 per class on ImageNet: 10,000 images, Frankle App. E) in chunks of this
    many examples, in the memory of one chunk. The scores are those of one pass over the whole batch, BatchNorm
    in train mode included: its statistics are the whole batch's and the gradient flows through them
    (pruning.wholebatch), at the cost of about two passes over the batch per BatchNorm layer in sequence.
    """
    _set_mode(model, bn_mode)
    grads = _loss_grads(model, weights, _per_class(data, per_class), chunk_size)
    return [(g * w).abs() for g, w in zip(grads, weights)]


@register_method("snip_iterative", iterations=300, needs_data=True)
def snip_iterative_scores(model, weights, data, *, bn_mode: str = "train", per_class: int | None = 10,
                          chunk_size: int | None = None):
    """SNIP rescored on the surviving network each round (de Jorge et al.; 300 rounds as in
    Vysogorets sec. 3). Pruned weights are zero, so they score zero."""
    return snip_scores(model, weights, data, bn_mode=bn_mode, per_class=per_class, chunk_size=chunk_size)


def _hessian_gradient(model, weights, data, temperature, chunk_size):
    """Hg for GraSP: H and g of the mean cross-entropy over the whole batch, accumulated over chunks (with
    BatchNorm in train mode, as one pass over the whole batch: see wholebatch)."""
    g = [t.detach() for t in _loss_grads(model, weights, data, chunk_size, temperature)]
    chunks = _chunks(data, chunk_size)
    loss = _chunk_loss(data[0].shape[0], temperature)
    if len(chunks) > 1 and has_train_batch_norm(model):
        with given_stats(model) as layers:
            return whole_batch_hessian_product(model, weights, layers, chunks, loss, g)
    hg = [torch.zeros_like(w) for w in weights]
    for x, y in chunks:
        grads = torch.autograd.grad(loss(model, x, y), weights, create_graph=True)
        z = sum((gi * gc).sum() for gi, gc in zip(grads, g))
        for acc, h in zip(hg, torch.autograd.grad(z, weights)):
            acc += h
    return hg


@register_method("grasp", needs_data=True)
def grasp_scores(model, weights, data, *, temperature: float = 200.0, bn_mode: str = "train",
                 per_class: int | None = 10, chunk_size: int | None = None):
    """GraSP (Wang et al. 2020; Frankle App. E) with the sign flipped to keep 'higher = keep'.

    GraSP's score is -w*(Hg) and it prunes the *highest*; we return w*(Hg), so keeping the highest of
    ours prunes exactly the weights GraSP prunes. Logits are divided by `temperature` (200).
    bn_mode and per_class as for SNIP (defaults 'train' and 10 per class, Frankle App. E).
    chunk_size: as for SNIP; with BatchNorm in train mode, Hg is the derivative of the whole-batch gradient along
    g in forward mode (pruning.wholebatch), about three times SNIP's cost.
    """
    _set_mode(model, bn_mode)
    hg = _hessian_gradient(model, weights, _per_class(data, per_class), temperature, chunk_size)
    return [w * h for w, h in zip(weights, hg)]


@register_method("grasp_magnitude", needs_data=True)
def grasp_magnitude_scores(model, weights, data, *, temperature: float = 200.0, bn_mode: str = "train",
                           per_class: int | None = 10, chunk_size: int | None = None):
    """|GraSP score|, keep the highest: Frankle et al.'s improved variant (sec. 5, App. C)."""
    return [s.abs() for s in grasp_scores(model, weights, data, temperature=temperature,
                                          bn_mode=bn_mode, per_class=per_class, chunk_size=chunk_size)]


@register_method("synflow", iterations=100)
def synflow_scores(model, weights, data, *, input_shape=None, abs_buffers: bool = False,
                   pool: str = "max", dtype: torch.dtype = torch.float64):
    """SynFlow (Tanaka et al. 2020; Frankle App. F): |dR/dw * w| with every parameter replaced by its
    absolute value, R the sum of the outputs for an all-ones input of the data's shape (or
    `input_shape`), BatchNorm in eval mode, in float64 (float32 overflows past ResNet-44).

    abs_buffers: also take |.| of BN running statistics, as the SynFlow code does (default False:
    Frankle et al. describe replacing the parameters only; at initialisation both agree).
    pool: 'max' runs max-pools as they are (default, as both codes do); 'avg' turns them into
    average-pools for a fully linear pass.
    """
    if input_shape is None:
        if data is None:
            raise ValueError("synflow needs data=(x, y) or input_shape=(C, H, W) for its all-ones input")
        input_shape = tuple(data[0].shape[1:])
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    if pool == "avg":
        replace_modules(model, max_to_avg_pool)
    model.to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
        if abs_buffers:
            for b in model.buffers():
                if b.is_floating_point():
                    b.abs_()
    for w in weights:
        w.requires_grad_(True)
    ones = torch.ones((1, *input_shape), dtype=dtype, device=weights[0].device)
    total = _logits(model, ones).sum()
    grads = torch.autograd.grad(total, weights)
    return [(g * w).abs() for g, w in zip(grads, weights)]
