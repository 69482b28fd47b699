"""Chunked scoring with BatchNorm statistics over the whole batch (Frankle App. E: 10,000 ImageNet images).

A batch too large for one pass is run chunk by chunk. In train mode every BatchNorm layer must still normalise
each example by the statistics of the whole batch, and the gradient must still flow through those statistics,
as in one pass over the whole batch. Both are whole-batch sums, reached here in passes over the chunks:

  statistics: s = S(s), where S_l sums layer l's inputs over all chunks while normalising by s at the layers
    before it. S_l depends only on the statistics of earlier layers, so the iteration is exact once it has run
    as many passes as BatchNorm layers follow one another (it stops at the first pass that changes nothing).
  gradient: with the statistics held at s, each chunk's loss is a plain sum over its examples; the gradient
    through the statistics is lambda . dS/dtheta, where lambda = dL/ds + lambda . dS/ds (the adjoint of the same
    triangular system), reached the same way, backwards from the last layer. Each pass adds lambda . S_c to
    chunk c's loss, whose gradient is then the exact whole-batch gradient once lambda has converged.

  Hessian-gradient product (GraSP): H v is the derivative of that gradient along v, taken here by forward-mode
    differentiation (dual numbers) of the whole computation above, passes and fixed points included.

Memory is that of one chunk (twice that for H v); time is about one forward pass per BatchNorm layer in sequence
for the statistics and as many forward-backward passes for the gradient (again as many, in forward mode, for H v).
"""
from __future__ import annotations

import contextlib

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn


class GivenStats(nn.Module):
    """Stand-in for a BatchNorm layer in train mode: normalises by given statistics (mean, biased var) and
    records the per-channel sums of its input (sum of x, sum of (x - mean)^2). The second is taken about the
    given mean itself, not a constant: at the fixed point its derivatives through the mean sum to zero over the
    batch, to every order, as they do for the variance of one pass."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.bn = bn
        self.mean = self.var = None
        self.count = 0       # elements per channel in the whole batch
        self.sums = []

    def forward(self, x):
        dims = (0, *range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean, var = self.mean.to(x.dtype), self.var.to(x.dtype)
        self.sums.append((x.sum(dims), ((x - mean.view(shape)) ** 2).sum(dims), x.numel() // x.shape[1]))
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.bn.eps).view(shape)
        if self.bn.affine:
            y = y * self.bn.weight.view(shape) + self.bn.bias.view(shape)
        return y


@contextlib.contextmanager
def given_stats(model: nn.Module):
    """Swap every BatchNorm layer of `model` in train mode for a GivenStats (restored on exit); yields them."""
    swapped = []

    def swap(parent):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.training:
                stand_in = GivenStats(child)
                setattr(parent, name, stand_in)
                swapped.append((parent, name, stand_in))
            else:
                swap(child)

    swap(model)
    try:
        yield [s for _, _, s in swapped]
    finally:
        for parent, name, stand_in in swapped:
            setattr(parent, name, stand_in.bn)


def has_train_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


def _passes(layers) -> range:
    # exact after len(layers) passes in the worst case (a chain); one more sees nothing change
    return range(len(layers) + 1)


def whole_batch_stats(model: nn.Module, layers: list[GivenStats], chunks) -> None:
    """Set every layer's mean and var to the statistics of the whole batch `chunks` (fixed point of S)."""
    for layer in layers:
        channels = layer.bn.num_features
        param = next(model.parameters())
        layer.mean = torch.zeros(channels, dtype=param.dtype, device=param.device)
        layer.var = torch.ones(channels, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        for _ in _passes(layers):
            for layer in layers:
                layer.sums = []
            for x, _ in chunks:
                model(x)
            changed = False
            for layer in layers:
                s1, s2 = sum(s[0] for s in layer.sums), sum(s[1] for s in layer.sums)
                layer.count = count = sum(s[2] for s in layer.sums)
                mean = s1 / count
                var = s2 / count - (mean - layer.mean) ** 2   # the spread about the previous mean, recentred
                changed |= not (torch.equal(mean, layer.mean) and torch.equal(var, layer.var))
                layer.mean, layer.var = mean, var
            if not changed:
                break
    for layer in layers:
        layer.sums = []


def whole_batch_grads(model: nn.Module, weights: list, layers: list[GivenStats], chunks, chunk_loss) -> list:
    """d/d(weights) of sum over chunks of chunk_loss(model, x, y), every train-mode BatchNorm layer (`layers`,
    from given_stats) normalising by the whole batch's statistics and differentiated through them."""
    whole_batch_stats(model, layers, chunks)
    for layer in layers:
        layer.mean.requires_grad_(True)
        layer.var.requires_grad_(True)
    stats = [t for layer in layers for t in (layer.mean, layer.var)]
    adjoint = [torch.zeros_like(t) for t in stats]
    for _ in _passes(layers):
        grads = [torch.zeros_like(w) for w in weights]
        new_adjoint = [torch.zeros_like(t) for t in stats]
        for x, y in chunks:
            for layer in layers:
                layer.sums = []
            loss = chunk_loss(model, x, y)
            for layer, lam_mean, lam_var in zip(layers, adjoint[0::2], adjoint[1::2]):
                for s1, s2, _ in layer.sums:
                    loss = loss + ((lam_mean * s1).sum() + (lam_var * s2).sum()) / layer.count
            out = torch.autograd.grad(loss, weights + stats, allow_unused=True)
            for acc, g in zip(grads + new_adjoint, out):
                if g is not None:
                    acc += g
        converged = all(torch.equal(a, b) for a, b in zip(adjoint, new_adjoint))
        adjoint = new_adjoint
        if converged:
            break
    for layer in layers:
        layer.sums = []
    return grads


@contextlib.contextmanager
def _dual_weights(model: nn.Module, weights: list, tangents: list):
    """Within a forward-AD dual level, the given parameters of `model` replaced by dual tensors (primal the
    weight, tangent the direction); yields them, and puts the parameters back on exit."""
    where = {id(p): (module, name) for module in model.modules() for name, p in module._parameters.items()
             if p is not None}
    duals, placed = [], []
    try:
        for w, t in zip(weights, tangents):
            module, name = where[id(w)]
            del module._parameters[name]
            placed.append((module, name, w))
            dual = fwAD.make_dual(w, t)
            setattr(module, name, dual)
            duals.append(dual)
        yield duals
    finally:
        for module, name, w in placed:
            delattr(module, name)
            module.register_parameter(name, w)


def whole_batch_hessian_product(model: nn.Module, weights: list, layers: list[GivenStats], chunks, chunk_loss,
                                vector: list) -> list:
    """H @ vector, H the Hessian (w.r.t. `weights`) of the loss whose gradient whole_batch_grads computes: the
    derivative of that gradient along `vector`, by forward-mode AD through the whole chunked computation."""
    with fwAD.dual_level(), _dual_weights(model, weights, vector) as duals:
        grads = whole_batch_grads(model, duals, layers, chunks, chunk_loss)
        return [fwAD.unpack_dual(g).tangent for g in grads]
