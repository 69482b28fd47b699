"""Numerics of a training step chosen by TrainHparams.precision and .channels_last, and fp16 loss scaling.

'fp32' computes in float32; 'amp' autocasts to float16 with dynamic loss scaling on CUDA and computes in float32
elsewhere (the behaviour of the former `amp=True`); 'bf16' autocasts to bfloat16 on any device (no loss scaling:
bfloat16 has float32's range). channels_last stores 4-d inputs and convolution weights as NHWC. Under 'fp32' a
float64 model fed float64 batches (TensorDataSet(dtype=torch.float64)) computes in float64 throughout: the tests
compare a pack with its single runs that way, where rounding cannot hide a difference in the algebra.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .masking import per_member

PRECISIONS = ("fp32", "amp", "bf16")


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None   # autocast dtype; None computes in float32
    loss_scaling: bool
    channels_last: bool

    @classmethod
    def of(cls, hparams, device) -> "Precision":
        kind = torch.device(device).type
        dtype = {"fp32": None, "amp": torch.float16 if kind == "cuda" else None, "bf16": torch.bfloat16}
        return cls(kind, dtype[hparams.precision], hparams.precision == "amp" and kind == "cuda",
                   hparams.channels_last)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) in the chosen layout."""
        return x.contiguous(memory_format=torch.channels_last) if self._nhwc(x, 1) else x

    def stacked(self, t: torch.Tensor) -> torch.Tensor:
        """Stacked convolution weights (K, O, I, kh, kw), NHWC per member when channels_last: vmap's grouped
        convolution then sees a (K*O, I, kh, kw) channels_last weight without copying."""
        return t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3) if self._nhwc(t, 2) else t

    def stacked_input(self, x: torch.Tensor) -> torch.Tensor:
        """Stacked batches (K, B, C, H, W), stored as (B, H, W, K, C) when channels_last: vmap's grouped
        convolution then sees a (B, K*C, H, W) channels_last input without copying (and keeps that layout)."""
        return x.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2) if self._nhwc(x, 2) else x

    def _nhwc(self, t: torch.Tensor, channel_dim: int) -> bool:
        # One-channel tensors are left alone: NHWC and NCHW are the same memory there, and those ambiguous
        # strides made torch's CPU convolution backward corrupt the heap (see tensor_pipeline.random_shift).
        return self.channels_last and t.dim() == channel_dim + 3 and t.shape[channel_dim] > 1


def loss_logits(out: torch.Tensor) -> torch.Tensor:
    """Logits as the loss reads them: autocast's float16 or bfloat16 ones in float32, float32 and float64 ones as
    they are (a float64 model, fed float64 data, trains and evaluates in float64 throughout)."""
    return out.to(torch.promote_types(out.dtype, torch.float32))


class LossScaler:
    """Dynamic loss scaling as torch.amp.GradScaler does it (same defaults, same state_dict layout), for one run
    (scale of shape ()) or K stacked runs (shape (K,)), entirely on the device: GradScaler itself needs a
    torch.optim optimizer and reads found_inf on the host when stepping."""

    def __init__(self, shape=(), device="cpu", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000):
        self.scale = torch.full(shape, init_scale, dtype=torch.float32, device=device)
        self.tracker = torch.zeros(shape, dtype=torch.int32, device=device)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval

    @torch.no_grad()
    def unscale_(self, grads) -> torch.Tensor:
        """Divide the gradients by the scale in place; True (per member) where any of them is not finite."""
        inv = self.scale.double().reciprocal().float()
        torch._foreach_mul_(grads, [per_member(inv, g) for g in grads])
        dims = self.scale.dim()
        finite = torch.stack([g.isfinite().reshape(*g.shape[:dims], -1).all(-1) for g in grads]).all(0)
        return ~finite

    @torch.no_grad()
    def update(self, found_inf: torch.Tensor, active: torch.Tensor) -> None:
        """GradScaler.update for the runs where `active` holds: back off after an overflow, grow after
        growth_interval clean steps."""
        grown = self.tracker + 1
        grow = grown == self.growth_interval
        bigger = self.scale * self.growth_factor
        scale = torch.where(found_inf, self.scale * self.backoff_factor,
                            torch.where(grow & bigger.isfinite(), bigger, self.scale))
        tracker = torch.where(found_inf | grow, torch.zeros_like(grown), grown)
        self.scale.copy_(torch.where(active, scale, self.scale))
        self.tracker.copy_(torch.where(active, tracker, self.tracker))

    def state_dict(self, member: int | None = None) -> dict:
        pick = (lambda t: t) if member is None else (lambda t: t[member])
        return {"scale": pick(self.scale).item(), "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "_growth_tracker": int(pick(self.tracker).item())}

    @torch.no_grad()
    def load_state_dict(self, state: dict, member: int | None = None) -> None:
        self.growth_factor, self.backoff_factor = state["growth_factor"], state["backoff_factor"]
        self.growth_interval = state["growth_interval"]
        scale, tracker = (self.scale, self.tracker) if member is None else (self.scale[member], self.tracker[member])
        scale.fill_(state["scale"])
        tracker.fill_(state["_growth_tracker"])
