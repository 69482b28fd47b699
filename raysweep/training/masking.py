"""Masked SGD: pruned weights, their gradients and their momentum stay exactly zero, and an update applies only
where the trainer says the step was finite, decided on the device without a host sync."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def float_masks(named_params: Sequence[tuple[str, torch.Tensor]], masks: Mapping[str, torch.Tensor] | None,
                member_dim: bool = False) -> list[torch.Tensor | None]:
    """One float mask per parameter (None where unmasked), on the parameter's device and dtype, after checking that
    every mask names a parameter of the same shape. With member_dim the parameters carry a leading member axis that
    the masks lack."""
    params = dict(named_params)
    masks = masks or {}
    for name, mask in masks.items():
        if name not in params:
            raise KeyError(f"mask {name!r} names no parameter of the model; parameters: {list(params)[:8]}...")
        shape = tuple(params[name].shape[1:] if member_dim else params[name].shape)
        if tuple(mask.shape) != shape:
            raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)}, parameter has {shape}")
    return [masks[n].detach().to(device=p.device, dtype=p.dtype) if n in masks else None for n, p in named_params]


def per_member(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`flag` of shape () or (K,) viewed to broadcast over `like` of shape (...) or (K, ...)."""
    return flag.reshape(flag.shape + (1,) * (like.dim() - flag.dim()))


class MaskedSGD:
    """SGD with momentum, Nesterov momentum and weight decay, computed as torch.optim.SGD computes it (dampening 0,
    the momentum buffer starting at the first gradient), on plain tensors: a module's parameters, or parameters of
    K networks stacked along a leading member axis.

    Zeroing the gradients of pruned weights keeps their momentum at zero, and SGD's weight decay adds wd * 0 = 0;
    multiplying the updated weights by the masks again keeps the zeros exact under mixed precision as well.
    `step(grads, lr, ok)` applies the update only where `ok` (shape () or (K,)) holds and leaves weights and
    momentum untouched elsewhere: this is how a step whose loss was not finite is skipped without reading the loss
    on the host.
    """

    def __init__(self, params: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | None], hparams, bufs=None):
        self.params, self.masks = list(params), list(masks)
        self.momentum, self.nesterov, self.weight_decay = hparams.momentum, hparams.nesterov, hparams.weight_decay
        if not self.momentum:
            self.bufs = []
        else:
            self.bufs = list(bufs) if bufs is not None else [torch.zeros_like(p) for p in self.params]
        self._masked = [i for i, m in enumerate(self.masks) if m is not None]

    @torch.no_grad()
    def apply_masks(self) -> None:
        if self._masked:
            torch._foreach_mul_([self.params[i] for i in self._masked], [self.masks[i] for i in self._masked])

    @torch.no_grad()
    def mask_(self, grads: Sequence[torch.Tensor]) -> None:
        """Zero the gradients of pruned weights in place (step() does it too; repeating it changes nothing)."""
        if self._masked:
            torch._foreach_mul_([grads[i] for i in self._masked], [self.masks[i] for i in self._masked])

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr, ok: torch.Tensor) -> None:
        """One update from `grads` (consumed: modified in place) at learning rate `lr`, a float, or a 0-d tensor
        so that a compiled step does not specialise on it, where `ok` holds."""
        grads = list(grads)
        self.mask_(grads)
        if self.weight_decay:
            torch._foreach_add_(grads, torch._foreach_mul(self.params, self.weight_decay))
        bufs = []
        if self.momentum:
            bufs = torch._foreach_mul(self.bufs, self.momentum)
            torch._foreach_add_(bufs, grads)
            if self.nesterov:
                torch._foreach_add_(grads, torch._foreach_mul(bufs, self.momentum))
            else:
                grads = bufs
        # Products and sums as separate rounded operations, never an add with alpha: that may be fused (one
        # rounding) in a kernel's vectorised body and not in its tail, so a member's update would depend on where
        # its elements fall in its pack's layout
        new = torch._foreach_sub(self.params, torch._foreach_mul(grads, lr))
        if self._masked:
            torch._foreach_mul_([new[i] for i in self._masked], [self.masks[i] for i in self._masked])
        # No fused "where" over tensor lists exists: one kernel per tensor, written in place.
        for old, updated in zip(self.params + self.bufs, list(new) + list(bufs)):
            torch.where(per_member(ok, old), updated, old, out=old)

    def state_dict(self, member: int | None = None) -> dict:
        """The momentum in torch.optim.SGD's state_dict layout (of one member when stacked), on the CPU."""
        state = {i: {"momentum_buffer": (b if member is None else b[member]).detach().to("cpu", copy=True)}
                 for i, b in enumerate(self.bufs)}
        group = {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay,
                 "params": list(range(len(self.params)))}
        return {"state": state, "param_groups": [group]}

    @torch.no_grad()
    def load_state_dict(self, state: dict, member: int | None = None) -> None:
        """Accepts what state_dict() and torch.optim.SGD.state_dict() write; a missing buffer (before the first
        step) is zero."""
        for i, b in enumerate(self.bufs):
            target = b if member is None else b[member]
            entry = state["state"].get(i, {}).get("momentum_buffer")
            target.copy_(entry if entry is not None else torch.zeros_like(target))
