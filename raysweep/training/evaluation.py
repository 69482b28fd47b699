"""Accuracy and mean cross-entropy on a split, for one network or K stacked ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import distributed as dist
from .precision import loss_logits


def logit_sums(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy, correct predictions and count of a batch, float64 of shape (..., 3) for logits of shape
    (..., B, classes): one row per stacked network."""
    lead, classes = logits.shape[:-2], logits.shape[-1]
    logits = loss_logits(logits)
    targets = y.expand(*lead, len(y))
    nll = F.cross_entropy(logits.reshape(-1, classes), targets.reshape(-1), reduction="none").view(targets.shape)
    correct = (logits.argmax(-1) == targets).sum(-1)
    return torch.stack([nll.sum(-1).double(), correct.double(), torch.full_like(correct, len(y)).double()], -1)


def metrics(sums: torch.Tensor) -> dict:
    """{"accuracy", "loss"} from one row of logit_sums totals."""
    n = max(sums[2].item(), 1.0)
    return {"accuracy": sums[1].item() / n, "loss": sums[0].item() / n}


def eval_batches(ds, split: str, batch_size: int, device):
    """The unaugmented batches of `split`, this rank's shard when distributed."""
    rank, world = dist.rank_and_world()
    return ds.loader(split, batch_size, shuffle=False, augment=False, seed=0, device=device, rank=rank,
                     world_size=world)


def _unwrap(model):
    while isinstance(getattr(model, "module", None), torch.nn.Module):
        model = model.module
    return model


@torch.no_grad()
def evaluate(model, ds, split: str = "test", device=None, batch_size: int = 1000) -> dict:
    """Accuracy and mean cross-entropy of `model` on `split`; sharded and summed across ranks when distributed."""
    model = _unwrap(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    try:
        for x, y in eval_batches(ds, split, batch_size, device):
            sums += logit_sums(model(x), y)
    finally:
        model.train(was_training)
    return metrics(dist.all_reduce_sum(sums))
