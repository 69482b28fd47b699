"""Metrics by name, so that a trial computes a configured list of them into one flat dict of columns."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .calibration import ece, nll
from .flops import macs
from .gradient import active_grad_norm
from .inference import device_of, predict
from .ood import ood_auroc
from .robustness import fgsm_accuracy


class UnknownMetric(KeyError):
    """A metric name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class MetricConfig:
    split: str = field(default="test", metadata={"help": "data-set split the metrics are computed on"})
    bins: int = field(default=15, metadata={"help": "number of equal-width confidence bins of the ECE"})
    eps: float = field(default=8 / 255, metadata={"help": "FGSM perturbation size in [0, 1] pixel space"})
    batch_size: int = field(default=256, metadata={"help": "batch size for evaluation passes"})
    grad_batch_size: int = field(
        default=128, metadata={"help": "size of the training batch the active gradient norm is taken on"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the shuffled training batch for the gradient norm"})


@dataclass
class Context:
    """What one evaluation call knows; the split's logits are collected once and shared."""

    model: nn.Module
    ds: object
    config: MetricConfig
    device: torch.device
    masks: Mapping[str, torch.Tensor] | None
    ood: Mapping[str, object]
    _predictions: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False)

    def predictions(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._predictions is None:
            self._predictions = predict(self.model, self.ds, self.config.split, self.config.batch_size, self.device)
        return self._predictions


_METRICS: dict[str, Callable[[Context], dict[str, float]]] = {}


def register(name: str):
    """Decorator: register fn(context) -> {column: value} under `name`."""

    def decorate(fn: Callable[[Context], dict[str, float]]):
        if name in _METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        _METRICS[name] = fn
        return fn

    return decorate


def names() -> list[str]:
    return sorted(_METRICS)


@register("ece")
def _ece(ctx: Context) -> dict[str, float]:
    logits, labels = ctx.predictions()
    return {"ece": ece(torch.softmax(logits.double(), dim=1), labels, bins=ctx.config.bins)}


@register("nll")
def _nll(ctx: Context) -> dict[str, float]:
    return {"nll": nll(*ctx.predictions())}


@register("ood_auroc")
def _ood_auroc(ctx: Context) -> dict[str, float]:
    if not ctx.ood:
        raise ValueError("metric 'ood_auroc' needs OoD data sets: pass ood={name: DataSet}")
    return {
        f"ood_auroc_{name}": ood_auroc(
            ctx.model, ctx.ds, ds_out, ctx.device, split=ctx.config.split, batch_size=ctx.config.batch_size
        )
        for name, ds_out in ctx.ood.items()
    }


@register("fgsm_accuracy")
def _fgsm_accuracy(ctx: Context) -> dict[str, float]:
    return {
        "fgsm_accuracy": fgsm_accuracy(
            ctx.model, ctx.ds, ctx.config.eps, ctx.device, split=ctx.config.split, batch_size=ctx.config.batch_size
        )
    }


@register("flops")
def _flops(ctx: Context) -> dict[str, float]:
    # the unit is in the column name: multiply-adds, which torch's counter counts as 2 FLOPs and fvcore as 1
    counts = macs(ctx.model, ctx.masks, tuple(ctx.ds.input_shape))
    return {"macs_dense": counts["dense"], "macs_sparse": counts["sparse"]}


@register("active_grad_norm")
def _active_grad_norm(ctx: Context) -> dict[str, float]:
    loader = ctx.ds.loader(
        "train", ctx.config.grad_batch_size, shuffle=True, augment=False, seed=ctx.config.seed, device=ctx.device
    )
    batch = next(iter(loader), None)
    if batch is None:
        raise ValueError(f"split 'train' of data set {getattr(ctx.ds, 'name', ctx.ds)!r} yielded no batches")
    return {"active_grad_norm": active_grad_norm(ctx.model, ctx.masks, batch)}


def evaluate_all(
    model: nn.Module,
    ds,
    names: Sequence[str],
    config: MetricConfig = MetricConfig(),
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    ood: Mapping[str, object] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Compute the named metrics into one flat dict of columns.

    Columns: ece, nll, ood_auroc_<name> per OoD set in `ood`, fgsm_accuracy, macs_dense and
    macs_sparse (metric 'flops': multiply-adds per example, i.e. half of torch's FLOPs; sparse accounts
    for `masks`), active_grad_norm (on one shuffled training batch, restricted to `masks`).
    """
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in _METRICS]
    if unknown:
        raise UnknownMetric(f"unknown metric(s) {unknown}; known metrics: {', '.join(sorted(_METRICS))}")
    ctx = Context(
        model=model,
        ds=ds,
        config=config,
        device=torch.device(device) if device is not None else device_of(model),
        masks=masks,
        ood=dict(ood or {}),
    )
    results: dict[str, float] = {}
    for name in dict.fromkeys(names):
        results.update(_METRICS[name](ctx))
    return results
