"""torch.distributed helpers; every function is a no-op in a single process."""

from __future__ import annotations

import torch


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world() -> tuple[int, int]:
    if active():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if active():
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values


def broadcast_object(obj):
    """Rank 0's object on every rank."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class _Agreement(torch.nn.Module):
    """The model plus one scalar parameter that is used only by the loss: its gradient carries each rank's "my loss
    is not finite" flag through DDP's own gradient all-reduce, so that all ranks agree whether a step diverged
    without a collective of their own and without reading the loss on the host."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.flag = torch.nn.Parameter(torch.zeros((), device=next(module.parameters()).device))

    def forward(self, x):
        return self.module(x)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` when a process group is up; DDP broadcasts rank 0's weights so all
    ranks start identical and all-reduces (averages) gradients in backward."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_Agreement(model), device_ids=ids)


def backward(net: torch.nn.Module, loss: torch.Tensor, finite: torch.Tensor, scale=None) -> torch.Tensor:
    """Backpropagate `loss` (times `scale`); returns whether the loss was finite on every rank (a device tensor).

    Under DDP the flag parameter adds 0 * flag to a finite loss, which leaves the loss and every other gradient
    bit-identical, and receives the mean over ranks of (loss not finite): zero exactly when all ranks were finite.
    """
    agreement = getattr(net, "module", None)
    if not isinstance(agreement, _Agreement):
        (loss if scale is None else loss * scale).backward()
        return finite
    loss = loss + agreement.flag * (~finite).to(loss.dtype)
    (loss if scale is None else loss * scale).backward()
    agreed = agreement.flag.grad == 0
    agreement.flag.grad = None
    return agreed
