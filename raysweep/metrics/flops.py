"""Inference cost of a masked network, dense and sparse, in multiply-adds (MACs) (Liu et al. Figure 5:
"we report the trade-off between test FLOPs and each measurement metric").

The unit is in every name so that nobody is off by 2x: one multiply-add (MAC) is 2 FLOPs in torch's
FlopCounterMode, while fvcore and ptflops report MACs under the name "flops". Columns: macs_dense and
macs_sparse; FLOPs in torch's convention are 2 x MACs. Rows written before the columns were renamed hold
flops_dense/flops_sparse, counted 2 per multiply-add: with_macs() reads them.

Both counts are per example (batch of one) and come from torch's FlopCounterMode (halved), which counts
convolutions and matrix products (not activations, norms or bias additions).

Sparse count: a forward pre-hook and hook on each masked Conv2d/Linear read the counter's running
total, so each layer's MACs are measured inside the same single counted forward pass. Under the
counter's model every weight of a Conv2d takes part in exactly N * H_out * W_out multiply-adds
(padding positions included) and every weight of a Linear in exactly N of them, so the layer's
MACs scale exactly with its mask density: sparse = dense - sum over masked layers of
layer_macs * (1 - kept / numel). MACs outside masked layers are counted in full.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .inference import device_of, eval_mode
from .masks import checked_masks


def _masked_layers(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    modules = dict(model.named_modules())
    layers = {}
    for name, mask in masks.items():
        module_name, _, attribute = name.rpartition(".")
        module = modules.get(module_name)
        if attribute != "weight" or not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise ValueError(f"flops can only account for masks on Conv2d/Linear weights, not on {name!r}")
        layers[module_name] = (module, mask)
    return layers


def macs(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> dict[str, int]:
    """{"dense": multiply-adds of one forward pass on one example, "sparse": the same with masked weights skipped}.
    FLOPs as torch counts them are twice these."""
    input_shape = tuple(input_shape)
    if not input_shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive ints such as (3, 32, 32), got {input_shape!r}")
    layers = _masked_layers(model, checked_masks(model, masks))
    counter = FlopCounterMode(display=False)
    layer_macs = dict.fromkeys(layers, 0)
    started = dict.fromkeys(layers, 0)

    def before(name: str):
        return lambda *_: started.__setitem__(name, counter.get_total_flops())

    def after(name: str):
        def record(*_):
            layer_macs[name] += (counter.get_total_flops() - started[name]) // 2

        return record

    handles = []
    for name, (module, _) in layers.items():
        handles.append(module.register_forward_pre_hook(before(name)))
        handles.append(module.register_forward_hook(after(name)))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    try:
        with eval_mode(model), torch.no_grad(), counter:
            model(torch.zeros((1, *input_shape), dtype=dtype, device=device_of(model)))
    finally:
        for handle in handles:
            handle.remove()
    # the counter counts every multiply-add (matrix products, convolutions) as exactly 2 FLOPs
    dense = int(counter.get_total_flops()) // 2
    skipped = 0
    for name, (_, mask) in layers.items():
        pruned = int(mask.numel() - mask.sum())
        skipped += (layer_macs[name] * pruned + mask.numel() // 2) // mask.numel()
    return {"dense": dense, "sparse": dense - skipped}


# rows written before the columns named their unit: torch's FLOPs, 2 per multiply-add
LEGACY_COLUMNS = {"flops_dense": "macs_dense", "flops_sparse": "macs_sparse"}


def with_macs(frame):
    """A frame of trial rows (pandas) with macs_dense/macs_sparse filled in from the legacy flops_* columns (halved)
    wherever a row has only those, and the legacy columns dropped."""
    frame = frame.copy()
    for old, new in LEGACY_COLUMNS.items():
        if old in frame:
            halved = frame[old] / 2
            frame[new] = frame[new].fillna(halved) if new in frame else halved
            frame = frame.drop(columns=old)
    return frame
