"""train(): one network, masked SGD with the papers' schedules, checkpoints, resume, evaluation and divergence.

No training step waits for the host: finiteness and the training-loss sums stay on the device
(run_state.Progress), and the host reads them at evaluations, save steps and timed state writes only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F

from . import distributed as dist
from .checkpoints import cpu_state_dict
from .evaluation import evaluate
from .hparams import TrainHparams
from .masking import MaskedSGD, float_masks
from .precision import LossScaler, Precision, loss_logits
from .run_state import Every, Progress, RunLog, TrainResult, rng_state, run_id, set_rng_state
from .schedule import Schedule


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def train(model: torch.nn.Module, ds, hparams: TrainHparams, masks: Mapping | None = None, *, seed: int = 0,
          start_step: int = 0, save_steps: Iterable = (), checkpoint_dir=None, on_eval=None,
          eval_split: str = "test", device=None, owner: dict | None = None, save_every: float | None = None,
          on_save=None, guard=None) -> TrainResult:
    """Train `model` in place on `ds` with `hparams`, keeping masked-out weights at exactly zero.

    start_step begins at that step of the schedule (learning rate and data order) with a fresh optimizer.
    save_steps ('Nep'/'Nit'/int) write the weights to checkpoint_dir/step_<t>.pt; checkpoint_dir/state.pt holds
    the full training state, written at every epoch end and save step, and is resumed from when present.
    on_eval(step, metrics) is called after every epoch's evaluation on every rank.
    owner names what the run is (e.g. a trial's id and what it depends on): every file it writes names it, and a
    state.pt of another owner or another run (hyperparameters, seed, masks...) is set aside, never resumed from.
    save_every (seconds) also writes state.pt between evaluations, at the first step after that long on the host's
    clock since the last such write; on_save(step) is then called on the writing rank (to upload it, say).
    guard() is called before every file the run writes, and may raise to stop it (the run then writes nothing).
    """
    rank, world = dist.rank_and_world()
    device = torch.device(device) if device is not None else default_device()
    if hparams.batch_size % world:
        raise ValueError(f"batch_size {hparams.batch_size} is not divisible by the {world} data-parallel ranks")
    loader = ds.loader("train", hparams.batch_size // world, shuffle=True, augment=hparams.augment, seed=seed,
                       device=device, rank=rank, world_size=world)
    schedule = Schedule(hparams, len(loader), save_steps)
    schedule.check_run(start_step, checkpoint_dir)

    precision = Precision.of(hparams, device)
    model.to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    named = list(model.named_parameters())
    sgd = MaskedSGD([p for _, p in named], float_masks(named, masks), hparams)
    scaler = LossScaler(device=device) if precision.loss_scaling else None
    run = RunLog(owner, run_id(hparams, seed, start_step, world, masks), checkpoint_dir, start_step,
                 writer=rank == 0, guard=guard)
    state = dist.broadcast_object(run.load() if rank == 0 else None)
    if state is not None:
        run.resume(state)
        model.load_state_dict(state["model"])
        sgd.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"], device)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    else:
        torch.manual_seed(seed)
    sgd.apply_masks()
    net = dist.wrap(model, device)
    progress = Progress((), device, run.epoch_loss)
    step_t = torch.tensor(run.step, device=device)
    buffers = list(model.buffers())
    timer = Every(save_every if run.writes_state else None)

    def save_state():
        if not run.writes_state:
            return
        run.epoch_loss = progress.epoch_loss()
        run.save_state(cpu_state_dict(model), sgd.state_dict(), rng_state(device),
                       scaler.state_dict() if scaler is not None else None)

    def alive(step: int) -> bool:
        """Host read of the device-side flags: settles the step reached and the status."""
        if progress.alive.item():
            run.step = step
            return True
        run.step, run.status = int(progress.diverged_at.item()), "diverged"
        return False

    def evaluate_and_report(lr_step: int):
        sums = dist.all_reduce_sum(torch.tensor(progress.epoch_loss(), dtype=torch.float64, device=device))
        record = run.record(schedule.lr(lr_step), schedule.steps_per_epoch,
                            evaluate(model, ds, eval_split, device, hparams.eval_batch_size),
                            (sums[0].item(), sums[1].item()))
        progress.reset_epoch_loss()
        save_state()
        if on_eval is not None:
            on_eval(run.step, dict(record))

    if run.step in schedule.saves and run.step not in run.checkpoints:
        run.save_weights(run.step, lambda: cpu_state_dict(model))
    model.train()
    lr_step = run.step  # the step whose learning rate the next evaluation reports
    while not run.finished(schedule.total):
        step = run.step
        epoch, offset = divmod(step, schedule.steps_per_epoch)
        loader.set_epoch(epoch, offset)
        for x, y in loader:
            lr_step = step
            before = [b.clone() for b in buffers]
            with precision.autocast():
                out = net(precision.input(x))
            loss = F.cross_entropy(loss_logits(out), y)
            finite = dist.backward(net, loss, torch.isfinite(loss), scaler.scale if scaler is not None else None)
            with torch.no_grad():
                for b, old in zip(buffers, before):  # a diverged run's forward passes leave no trace
                    b.copy_(torch.where(progress.alive, b, old))
            ok = progress.update(loss, finite, step_t)
            grads = [p.grad for p in sgd.params]
            if scaler is not None:  # as GradScaler: overflow is checked after the masks zero pruned gradients
                sgd.mask_(grads)
                found_inf = scaler.unscale_(grads)
                scaler.update(found_inf, ok)
                ok = ok & ~found_inf
            sgd.step(grads, schedule.lr(step), ok)
            for p in sgd.params:
                p.grad = None
            step += 1
            step_t += 1
            if step in schedule.saves:
                if not alive(step):
                    break
                run.save_weights(step, lambda: cpu_state_dict(model))
                save_state()
            elif timer.due() and progress.alive.item():
                # a diverged run writes nothing here: its divergence is settled at the next evaluation, as ever
                run.step = step
                save_state()
                if on_save is not None:
                    on_save(step)
            if step >= schedule.total:
                break
        if alive(step):
            evaluate_and_report(lr_step)
        else:
            evaluate_and_report(run.step)
    if run.needs_final_record():
        evaluate_and_report(lr_step)
    save_state()
    return run.result()
