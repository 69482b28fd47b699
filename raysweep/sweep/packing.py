"""Packs: trials that share model, data and hyperparameters, trained together by training.train_packed.

The driver groups the trials a run still needs (packs()) and picks the size (pack_size(); 'auto' from the model,
the batch and the memory a trial's slot has); each Tune trial then runs one pack (run_pack()). A pack is an
execution choice: a member's trial id and outcome are its own, and equal to its single run's to float tolerance.
"""

from __future__ import annotations

import json
import logging
import math

import torch

from .. import data, models, training
from .grid import Trial
from .trial import Context, Prepared, prepare, record, run_masked, train_alone, trained

log = logging.getLogger("raysweep")

MAX_PACK = 64                   # the largest pack bench_packing.py measures
CUDA_BYTES = 16 * 1024 ** 3     # GPU memory assumed when the driver cannot see the cluster's GPUs
CPU_BUSY_MACS = 10_000_000     # multiply-adds of a training batch's forward pass that keep a CPU core busy (packable)
MEMORY_SHARE = 0.5              # of a slot's memory, what a pack may plan to use (the rest: data, evaluation, slack)


def key(trial: Trial) -> tuple:
    """What members of one pack share: one architecture, one data set, one schedule."""
    return trial.model, trial.data, json.dumps(trial.hparams, sort_keys=True, default=list)


def packs(trials: list[Trial], size: int) -> list[list[Trial]]:
    """The trials in packs of at most `size` members that share key(); a group is cut into packs of equal size
    (within one), so no pack is left with a few members."""
    groups: dict[tuple, list[Trial]] = {}
    for t in trials:
        groups.setdefault(key(t), []).append(t)
    out = []
    for group in groups.values():
        n = math.ceil(len(group) / max(1, size))
        out += [group[i::n] for i in range(n)]
    return out


def member_bytes(model: torch.nn.Module, input_shape, batch_size: int) -> int:
    """Memory one member of a pack needs while it trains, in float32: weights, gradient, momentum, mask and the
    copy taken before each step (6 per parameter), and each layer's output three times over per example (kept for
    backward, its gradient, and the batch-norm or activation that follows)."""
    outputs = [0]

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor):
            outputs[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return 4 * (6 * params + 3 * batch_size * outputs[0])


def packable(model: torch.nn.Module, input_shape, batch_size: int, gpu: bool) -> bool:
    """Whether packing the model pays. Never with dropout (it draws random numbers inside the forward pass, which a
    pack cannot reproduce per member). On GPUs always: one small network leaves the device mostly idle. On CPUs
    only for small steps of networks without convolutions, where a step's fixed cost dominates its arithmetic.
    bench_packing.py and a step-time probe on this project's 2-core machine, one thread per trial:
    - LeNet-300-100 on digits (3.2M multiply-adds a step): packs of 16 train 1.8x the trials per hour of train()
      one after another;
    - LeNet-300-100 on Fashion-MNIST (34M a step): 6.8 ms a step alone (30 GFLOP/s, the core is busy) against
      6.3 ms per member-step in a pack of 8; fig4's default took 460 s packed against 434 s alone;
    - ResNet-20: 1.15 s per member-step in a pack of 4 against 0.69 s alone (vmapped convolutions lose the CPU
      kernels' blocking)."""
    from ..metrics.flops import macs
    if any(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in model.modules()):
        return False
    if gpu:
        return True
    if any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules()):
        return False
    return batch_size * macs(model, None, input_shape)["dense"] < CPU_BUSY_MACS


def pack_size(setting, trials: list[Trial], ctx: Context, slots: int, slot_bytes: int) -> int:
    """The pack size of a run: 1 for data-parallel trials; an int setting as given; 'auto': 1 where packing does
    not pay (packable()), else as many members as MEMORY_SHARE of a slot's `slot_bytes` holds, at most MAX_PACK,
    and no more than it takes to give each of the cluster's `slots` a pack of every group (a larger pack would
    leave slots idle)."""
    if ctx.distributed or not trials:
        return 1
    if setting != "auto":
        return int(setting)
    t = trials[0]
    ds = data.get(t.data, ctx.data_root, download=False)
    model = models.create(t.model, num_classes=ds.num_classes, input_shape=ds.input_shape, seed=0, init=t.init,
                          bn_init=t.bn_init)
    batch = t.train_hparams().batch_size
    if not packable(model, ds.input_shape, batch, gpu=ctx.gpus_per_worker > 0):
        return 1
    fits = int(MEMORY_SHARE * slot_bytes // member_bytes(model, ds.input_shape, batch))
    largest = max(len(g) for g in packs(trials, 1 << 30))
    return max(1, min(fits, MAX_PACK, math.ceil(largest / max(1, slots))))


def slots(spec) -> tuple[int, int]:
    """(trials the attached cluster runs at once, bytes of memory each of them has): GPU memory for GPU trials (the
    driver's GPU, else CUDA_BYTES), the cluster's Ray memory otherwise."""
    import ray
    have = ray.cluster_resources()
    if spec.gpus_per_worker:
        n = int(have.get("GPU", 0) // spec.gpus_per_worker)
        device = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else CUDA_BYTES
        per = int(device * min(1.0, spec.gpus_per_worker))
    else:
        n = int(have.get("CPU", 1) // spec.cpus_per_worker)
        per = int(have.get("memory", 0) // max(1, n))
    n = max(1, min(n, spec.max_concurrent) if spec.max_concurrent else n)
    return n, per


def run_pack(trials: list[Trial], ctx: Context, pack: str, device=None, report=None) -> dict:
    """Prune every trial (one by one, as alone), train the prepared ones as one pack, record each.

    Returns {trial_id: its row, or the exception that stopped it (no row written)}. A trial that fails to prepare
    or record fails alone; if the pack itself cannot train, its members train one by one (resuming from the state
    the pack saved), so one member's fault never costs another its row."""
    device = torch.device(device) if device is not None else training.loop.default_device()
    out: dict = {}
    ready: list[Prepared] = []
    ds = None
    for t in trials:
        try:
            p = prepare(t, ctx, ds)
        except Exception as e:
            out[t.trial_id] = e
            continue
        ds = p.ds
        if p.outcome is None:
            ready.append(p)
        else:
            _record(p, ctx, device, None, out)
    if len(ready) <= 1:   # nothing to pack: the single run, exactly
        for p in ready:
            _train_alone(p, ctx, device, report, out)
        return out
    def on_eval(k, step, metrics):
        if report is not None:
            report({"trial_id": ready[k].trial.trial_id, **metrics})

    members = [training.Member(p.model, p.masks, seed=p.trial.seed, start_step=p.start,
                               checkpoint_dir=p.workdir.path, owner=p.owner, guard=p.workdir.guard) for p in ready]
    try:   # each member's state is written and uploaded every upload_every seconds, as a single run's (saving())
        done = training.train_packed(members, ds, ready[0].trial.train_hparams(), on_eval=on_eval, device=device,
                                     save_every=ctx.upload_every, on_save=lambda k, step: ready[k].workdir.sync())
    except Exception as e:
        log.warning("pack %s could not train (%s: %s); its %d members train one by one", pack, type(e).__name__, e,
                    len(ready))
        for p in ready:
            try:
                out[p.trial.trial_id] = run_masked(p.trial, ctx, device=device, report=report)
            except Exception as e:
                out[p.trial.trial_id] = e
        return out
    for p, result in zip(ready, done):
        trained(p, result, share=len(ready))
        _record(p, ctx, device, pack if len(ready) > 1 else None, out)
    return out


def _train_alone(p: Prepared, ctx: Context, device, report, out: dict) -> None:
    try:
        train_alone(p, device, report)
    except Exception as e:
        out[p.trial.trial_id] = e
        return
    _record(p, ctx, device, None, out)


def _record(p: Prepared, ctx: Context, device, pack, out: dict) -> None:
    try:
        out[p.trial.trial_id] = record(p, ctx, device, pack)
    except Exception as e:
        out[p.trial.trial_id] = e
