"""train_packed(): K trials of one architecture, data set and hyperparameters trained together as one batched
computation, each member exactly as train() trains it alone.

The members' parameters, momentum and buffers are stacked along a leading member axis
(torch.func.stack_module_state's layout); the members' losses are one vmap over functional_call, and autograd
differentiates their sum: each member's parameters reach only its own loss, so each gets its own gradient (on the
CPU this is faster for convolutional nets than vmapping torch.func.grad). Every member keeps its own mask, initial
weights, data order and augmentation (its seed, through its own loader), momentum, loss scale and BatchNorm
statistics: vmap's batch-norm rule updates the stacked running statistics in place, member by member. A member
whose loss is not finite is frozen by MaskedSGD's per-member guard and recorded `diverged` at the step it reached;
the others are untouched and go on as a smaller pack. Each member writes its own checkpoint_dir exactly as train()
does, so a state.pt resumes in any pack, or alone, and members that resume at different steps train as smaller
packs until they reach the same step.
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from . import distributed as dist
from .checkpoints import cpu_state_dict
from .evaluation import eval_batches, logit_sums, metrics
from .hparams import TrainHparams
from .loop import default_device
from .masking import MaskedSGD, float_masks, per_member
from .precision import LossScaler, Precision, loss_logits
from .run_state import Every, Progress, RunLog, TrainResult, run_id, seeded_rng_state
from .schedule import Schedule


@dataclass
class Member:
    """One trial of a pack: its network with its initial weights (already pruned or ablated by the caller), its
    masks (None for a dense run), its seed (data order and augmentation), the schedule step it starts at, the
    directory of its checkpoints (None: no checkpoints, no resume), what its files belong to (train()'s owner) and
    what is called before each of them is written (train()'s guard)."""
    model: torch.nn.Module
    masks: Mapping | None = None
    seed: int = 0
    start_step: int = 0
    checkpoint_dir: str | Path | None = None
    owner: dict | None = None
    guard: Callable | None = None


@dataclass
class _Slot:
    """A member while it trains: its record, its loader and its tensors between packs (device tensors)."""
    index: int
    member: Member
    run: RunLog
    loader: object
    rng: dict
    params: dict
    buffers: dict
    momentum: dict | None = None                  # MaskedSGD state_dict of the member
    scaler: dict | None = None                    # LossScaler state_dict of the member
    masks: list = field(default_factory=list)     # aligned with the parameters, None where unmasked


class _Context:
    """What every pack of one train_packed() call shares."""

    def __init__(self, skeleton, ds, hparams, schedule, precision, device, eval_split, on_eval, compile,
                 save_every=None, on_save=None):
        self.skeleton, self.ds, self.hparams, self.schedule = skeleton, ds, hparams, schedule
        self.precision, self.device, self.eval_split, self.on_eval = precision, device, eval_split, on_eval
        self.timer, self.on_save = Every(save_every), on_save   # one timer for every pack of the call
        self.param_names = [n for n, _ in skeleton.named_parameters()]
        self.buffer_names = [n for n, _ in skeleton.named_buffers()]
        lrs = schedule.lr_table(device, next(skeleton.parameters()).dtype) if compile else None
        self.losses = _compiled(_losses) if compile else _losses
        self.update = _compiled(_update) if compile else _update
        # A compiled update takes the learning rate as a tensor, or it would compile once per value.
        self.lr = (lambda step, step_t: lrs[step_t]) if compile else (lambda step, step_t: schedule.lr(step))


def _member_loss(skeleton, precision: Precision, params, buffers, x, y):
    with precision.autocast():
        out = functional_call(skeleton, (params, buffers), (x,))
    return F.cross_entropy(loss_logits(out), y)


def _float32_norm_forward(module, x):
    # vmap's batch-norm rule cannot mix a low-precision input with float32 statistics, as the unbatched kernel
    # does under autocast; that kernel computes in float32 and rounds its output, and so does this.
    return type(module).forward(module, x.float()).to(x.dtype)


_LOWERED = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _autocast_forward(module, x):
    # vmap's rules for convolutions, and for linear layers with a low-precision input, run below autocast: vmapped,
    # they compute in float32 whatever autocast's dtype. Their operands cast as autocast casts an unbatched layer's,
    # they compute and round in that dtype.
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):  # evaluation
        return type(module).forward(module, x)
    dtype = torch.get_autocast_dtype(kind)
    weight, bias = (None if t is None else t.to(dtype) for t in (module.weight, module.bias))
    if isinstance(module, torch.nn.Linear):
        return F.linear(x.to(dtype), weight, bias)
    return module._conv_forward(x.to(dtype), weight, bias)


def _skeleton(model: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """A tensor-free copy of the members' architecture for functional_call."""
    skeleton = copy.deepcopy(model).to("meta").train()
    if precision.dtype is not None:
        for module in skeleton.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.forward = types.MethodType(_float32_norm_forward, module)
            elif type(module) in _LOWERED:  # not subclasses, whose forward may differ
                module.forward = types.MethodType(_autocast_forward, module)
    return skeleton


def _losses(skeleton, precision, params, buffers, x, y):
    """Every member's training loss, shape (K,); updates the members' BatchNorm statistics in place."""
    return vmap(functools.partial(_member_loss, skeleton, precision))(params, buffers, x, y)


def _update(params, grads, buffers, before, sgd, progress, scaler, losses, lr, step):
    """What train() does after backward, for every member, with per-member guards."""
    with torch.no_grad():
        for n, b in buffers.items():  # a diverged member's forward passes leave no trace
            b.copy_(torch.where(per_member(progress.alive, b), b, before[n]))
    ok = progress.update(losses, losses.isfinite(), step)
    if scaler is not None:
        sgd.mask_(grads)
        found_inf = scaler.unscale_(grads)
        scaler.update(found_inf, ok)
        ok = ok & ~found_inf
    sgd.step(grads, lr, ok)


@functools.cache
def _compiled(fn):
    # The forward is compiled with its backward (AOTAutograd); backward itself runs between the two compiled
    # functions, as torch.compile training loops do.
    return torch.compile(fn, dynamic=False)


class _Pack:
    """Members at one step, their tensors stacked along a leading member axis."""

    def __init__(self, ctx: _Context, slots: Sequence[_Slot]):
        self.ctx, self.slots = ctx, list(slots)
        hp, device, prec = ctx.hparams, ctx.device, ctx.precision
        self.params = {n: prec.stacked(torch.stack([s.params[n] for s in slots])).detach().requires_grad_()
                       for n in ctx.param_names}
        self.buffers = {n: torch.stack([s.buffers[n] for s in slots]) for n in ctx.buffer_names}
        masks = [None if all(s.masks[i] is None for s in slots) else
                 torch.stack([torch.ones_like(s.params[n]) if s.masks[i] is None else s.masks[i] for s in slots])
                 for i, n in enumerate(ctx.param_names)]
        self.sgd = MaskedSGD(list(self.params.values()), masks, hp)
        self.progress = Progress((len(slots),), device, [s.run.epoch_loss for s in slots])
        self.scaler = LossScaler((len(slots),), device) if prec.loss_scaling else None
        for k, s in enumerate(slots):
            if s.momentum is not None:
                self.sgd.load_state_dict(s.momentum, k)
            if self.scaler is not None and s.scaler:
                self.scaler.load_state_dict(s.scaler, k)
        self.sgd.apply_masks()
        self.step = slots[0].run.step

    def _step(self, x, y, lr, step) -> None:
        """One training step of every member: the same operations as train()'s, vmapped over the members."""
        ctx = self.ctx
        before = {n: b.clone() for n, b in self.buffers.items()}
        losses = ctx.losses(ctx.skeleton, ctx.precision, self.params, self.buffers, x, y)
        # Each member's parameters reach only its own loss, so the gradient of the sum is every member's own.
        scaled = losses if self.scaler is None else losses * self.scaler.scale
        grads = list(torch.autograd.grad(scaled.sum(), list(self.params.values())))
        ctx.update(self.params, grads, self.buffers, before, self.sgd, self.progress, self.scaler, losses.detach(),
                   lr, step)

    def unstack(self, keep: Sequence[int]) -> list[_Slot]:
        """The slots at positions `keep`, carrying their current tensors, to be stacked into another pack."""
        out = []
        for k in keep:
            s = self.slots[k]
            s.params = {n: t[k].detach() for n, t in self.params.items()}
            s.buffers = {n: t[k] for n, t in self.buffers.items()}
            s.momentum = self.sgd.state_dict(k)
            s.scaler = self.scaler.state_dict(k) if self.scaler is not None else None
            s.run.epoch_loss = self.progress.epoch_loss(k)
            out.append(s)
        return out

    # ---------- one member's files ----------

    def _weights(self, k: int) -> dict:
        """Member k's weights as its own module's CPU state_dict (the module holds them from now on)."""
        model = self.slots[k].member.model
        with torch.no_grad():
            for n, t in model.named_parameters():
                t.copy_(self.params[n][k])
            for n, t in model.named_buffers():
                t.copy_(self.buffers[n][k])
        return cpu_state_dict(model)

    def _save_state(self, k: int) -> None:
        s = self.slots[k]
        if not s.run.writes_state:
            return
        s.run.epoch_loss = self.progress.epoch_loss(k)
        s.run.save_state(self._weights(k), self.sgd.state_dict(k), s.rng,
                         self.scaler.state_dict(k) if self.scaler is not None else None)

    def _save_between(self, step: int) -> None:
        """A timed write of every member's state between evaluations. One that diverged since the last host read
        writes nothing: its divergence is settled at the next read, as ever, and the pack is not split here, so
        the packs a run trains as do not depend on the clock."""
        alive = self.progress.alive.tolist()
        for k in self._live():
            s = self.slots[k]
            if alive[k] and s.run.writes_state:
                s.run.step = step
                self._save_state(k)
                if self.ctx.on_save is not None:
                    self.ctx.on_save(s.index, step)

    # ---------- evaluation ----------

    @torch.no_grad()
    def _evaluate(self, rows: Sequence[int]) -> list[dict]:
        ctx = self.ctx
        hp = ctx.hparams
        params, buffers = self.params, self.buffers
        if list(rows) != list(range(len(self.slots))):
            idx = torch.tensor(rows, device=ctx.device)
            params = {n: t.index_select(0, idx) for n, t in params.items()}
            buffers = {n: t.index_select(0, idx) for n, t in buffers.items()}
        # Members in chunks so that an evaluation batch never holds more examples than a training step.
        chunk = max(1, len(rows) * hp.batch_size // hp.eval_batch_size)
        sums = torch.zeros(len(rows), 3, dtype=torch.float64, device=ctx.device)
        ctx.skeleton.eval()
        try:
            for x, y in eval_batches(ctx.ds, ctx.eval_split, hp.eval_batch_size, ctx.device):
                out = vmap(lambda p, b: functional_call(ctx.skeleton, (p, b), (x,)), chunk_size=chunk)(params, buffers)
                sums += logit_sums(out, y)
        finally:
            ctx.skeleton.train()
        return [metrics(row) for row in sums]

    def _report(self, rows: Sequence[int], lr_steps: Sequence[int]) -> None:
        """Evaluate members `rows` at their current step and record it, as train() does after an epoch."""
        ctx = self.ctx
        for k, lr_step, measured in zip(rows, lr_steps, self._evaluate(rows)):
            s = self.slots[k]
            record = s.run.record(ctx.schedule.lr(lr_step), ctx.schedule.steps_per_epoch, measured,
                                  self.progress.epoch_loss(k))
            self.progress.reset_epoch_loss(k)
            self._save_state(k)
            if ctx.on_eval is not None:
                ctx.on_eval(s.index, s.run.step, dict(record))

    def _sync(self, step: int) -> list[int]:
        """Host read of the device-side flags: settle each member's step and status; returns the newly diverged
        members, already evaluated and recorded at the step they reached, as train() records a divergence."""
        alive, diverged_at = self.progress.alive.tolist(), self.progress.diverged_at.tolist()
        diverged = [k for k, a in enumerate(alive) if not a and self.slots[k].run.status == "completed"]
        for k, a in enumerate(alive):
            if a:
                self.slots[k].run.step = step
        for k in diverged:
            self.slots[k].run.step, self.slots[k].run.status = diverged_at[k], "diverged"
        if diverged:
            self._report(diverged, [diverged_at[k] for k in diverged])
        return diverged

    # ---------- training ----------

    def train(self, stop: int) -> tuple[list[_Slot], list[_Slot]]:
        """Train every member until step `stop` (the step of the next pack to merge with, or the end), or until a
        host read finds members that diverged, so that the others go on as a smaller pack instead of carrying the
        frozen ones. Returns (finished slots, slots that go on), their tensors unstacked."""
        ctx = self.ctx
        schedule = ctx.schedule
        step_t = torch.tensor(self.step, device=ctx.device)
        step, lr_step, diverged = self.step, self.step, []
        while step < stop and not diverged:
            epoch, offset = divmod(step, schedule.steps_per_epoch)
            for s in self.slots:
                s.loader.set_epoch(epoch, offset)
            for batches in zip(*(s.loader for s in self.slots)):
                lr_step = step
                x = ctx.precision.stacked_input(torch.stack([b[0] for b in batches]))
                y = torch.stack([b[1] for b in batches])
                self._step(x, y, ctx.lr(step, step_t), step_t)
                step += 1
                step_t += 1
                if step in schedule.saves:
                    diverged = self._sync(step)
                    for k in self._live():
                        s = self.slots[k]
                        s.run.save_weights(step, functools.partial(self._weights, k))
                        self._save_state(k)
                elif ctx.timer.due():
                    self._save_between(step)
                if step >= stop or diverged:
                    break
            if schedule.is_epoch_end(step):
                diverged += self._sync(step)
                live = self._live()
                self._report(live, [lr_step] * len(live))
            elif not diverged:  # stopped mid-epoch to merge with the pack waiting at `stop`
                diverged = self._sync(step)
        finished = [k for k, s in enumerate(self.slots) if s.run.finished(schedule.total)]
        for k in finished:
            self._save_state(k)
        return self.unstack(finished), self.unstack([k for k in range(len(self.slots)) if k not in finished])

    def _live(self) -> list[int]:
        return [k for k, s in enumerate(self.slots) if s.run.status == "completed"]


def _check_members(members: Sequence[Member], hparams: TrainHparams, schedule: Schedule) -> None:
    """Reject a pack that could not reproduce its members' single runs, before any work starts."""
    if not members:
        raise ValueError("train_packed needs at least one member")
    if dist.rank_and_world()[1] > 1:
        raise ValueError("train_packed trains in one process on one device; use train() for data parallel runs")
    ref = members[0].model
    for i, m in enumerate(members):
        if _architecture(m.model) != _architecture(ref):
            raise ValueError(f"member {i}'s model differs from member 0's: a pack holds one architecture")
        schedule.check_run(m.start_step, m.checkpoint_dir, who=f"member {i}: ")
        float_masks(list(m.model.named_parameters()), m.masks)
    for mod in ref.modules():
        if isinstance(mod, torch.nn.modules.dropout._DropoutNd):
            raise ValueError(f"{type(mod).__name__} draws random numbers in the forward pass, which a pack cannot "
                             f"reproduce per member; train such models with train()")
    dirs = [Path(m.checkpoint_dir).resolve() for m in members if m.checkpoint_dir is not None]
    if len(set(dirs)) < len(dirs):
        raise ValueError("two members share a checkpoint_dir; each member needs its own")


def _architecture(model: torch.nn.Module) -> list:
    """Module types, their non-tensor attributes (e.g. padding, a residual branch scale) and tensor shapes; not the
    `raysweep_*` bookkeeping such as models.initialize's record of the init scheme, which a pack may mix."""
    def attrs(mod):
        return {k: v for k, v in vars(mod).items() if not k.startswith(("_", "raysweep_")) and k != "training"
                and not isinstance(v, torch.Tensor)}
    return ([(n, type(mod), attrs(mod)) for n, mod in model.named_modules()]
            + [(n, tuple(t.shape), t.dtype) for n, t in [*model.named_parameters(), *model.named_buffers()]])


def _slot(index: int, member: Member, ctx: _Context, device) -> _Slot:
    hp = ctx.hparams
    loader = ctx.ds.loader("train", hp.batch_size, shuffle=True, augment=hp.augment, seed=member.seed,
                           device=device)
    run = RunLog(member.owner, run_id(hp, member.seed, member.start_step, 1, member.masks), member.checkpoint_dir,
                 member.start_step, guard=member.guard)
    state = run.load()
    model = member.model
    if state is not None:
        run.resume(state)
        model.load_state_dict(state["model"])
    named = list(model.named_parameters())
    with torch.no_grad():  # as train(): the member's module holds masked weights from the start (and step_0.pt)
        for (_, p), m in zip(named, float_masks(named, member.masks)):
            if m is not None:
                p.mul_(m)
    params = {n: p.detach().to(device) for n, p in named}
    buffers = {n: b.detach().to(device) for n, b in model.named_buffers()}
    masks = float_masks(list(params.items()), member.masks)
    rng = state["rng"] if state is not None else seeded_rng_state(member.seed, device)
    return _Slot(index, member, run, loader, rng, params, buffers,
                 momentum=state["optimizer"] if state is not None else None,
                 scaler=state.get("scaler") if state is not None else None, masks=masks)


def train_packed(members: Sequence[Member], ds, hparams: TrainHparams, *, save_steps: Iterable = (), on_eval=None,
                 eval_split: str = "test", device=None, compile: bool = False, save_every: float | None = None,
                 on_save=None) -> list[TrainResult]:
    """Train every member as train(member.model, ds, hparams, member.masks, seed=member.seed,
    start_step=member.start_step, save_steps=save_steps, checkpoint_dir=member.checkpoint_dir, owner=member.owner)
    would, together in one batched computation on one device; returns their TrainResults in order, and leaves each
    member's model holding its trained weights, as train() does.

    on_eval(member_index, step, metrics) is called after each member's evaluations; save_every as train()'s, with
    on_save(member_index, step) called after each member's timed write. compile=True runs the packed
    step through torch.compile (an execution choice: same results to float tolerance). A member's wall_time counts
    the time the pack spent while it trained.
    """
    device = torch.device(device) if device is not None else default_device()
    members = list(members)
    probe = ds.loader("train", hparams.batch_size, shuffle=True, augment=hparams.augment, seed=0, device=device)
    schedule = Schedule(hparams, len(probe), save_steps)
    _check_members(members, hparams, schedule)
    precision = Precision.of(hparams, device)
    ctx = _Context(_skeleton(members[0].model, precision), ds, hparams, schedule, precision, device, eval_split,
                   on_eval, compile, save_every, on_save)
    slots = [_slot(i, m, ctx, device) for i, m in enumerate(members)]
    for s in slots:
        if s.run.step in schedule.saves and s.run.step not in s.run.checkpoints:
            s.run.save_weights(s.run.step, functools.partial(cpu_state_dict, s.member.model))

    finished = [s for s in slots if s.run.finished(schedule.total)]
    pending = [s for s in slots if not s.run.finished(schedule.total)]
    if finished:  # nothing to train; a final evaluation only where train() would make one
        pack = _Pack(ctx, finished)
        rows = [k for k, s in enumerate(finished) if s.run.needs_final_record()]
        if rows:
            pack._report(rows, [finished[k].run.step for k in rows])
        for k in range(len(finished)):
            pack._save_state(k)
        finished = pack.unstack(range(len(finished)))
    while pending:
        step = min(s.run.step for s in pending)
        group = [s for s in pending if s.run.step == step]
        rest = [s for s in pending if s.run.step != step]
        done, going = _Pack(ctx, group).train(min([s.run.step for s in rest], default=schedule.total))
        finished += done
        pending = going + rest

    results = [None] * len(members)
    for s in finished:
        model = s.member.model
        with torch.no_grad():
            for n, t in model.named_parameters():
                t.copy_(s.params[n])
            for n, t in model.named_buffers():
                t.copy_(s.buffers[n])
        model.to(device)
        if ctx.precision.channels_last:
            model.to(memory_format=torch.channels_last)
        results[s.index] = s.run.result()
    return results
