"""What one trial does, in whichever process runs it: build, (fetch dense weights,) prune, retrain, measure, record.

A run's resumable state lives in its work directory: on local storage that is the storage itself; on remote storage a
local directory whose files are uploaded to the same place on the storage, and downloaded again by whichever node
resumes the run. The state is written (and on remote storage uploaded) every `upload_every` seconds, at the first
training step after that long, so a preempted node loses at most that much training and one step.

Every file of a run names what it belongs to (a dense run's or a trial's id and what it depends on); one found where
another run's belongs is set aside as damaged, never used.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import data, metrics, models, pruning, results, training
from ..integrity import Corrupt
from ..storage import Storage
from ..training import checkpoints, distributed, run_state
from . import dense as dense_store
from .dense import DENSE
from .errors import describe
from .grid import Trial
from .lease import STUDY as STUDY_LEASE, fence


@dataclass
class Context:
    """Study-level settings a trial needs that are not part of its identity."""

    storage: str
    study: str
    data_root: str | None = None
    metrics: list = field(default_factory=list)
    ood: list = field(default_factory=list)
    plugins: list = field(default_factory=list)
    dense_steps: list = field(default_factory=lambda: ["init", "end"])   # every step any trial of the study needs
    workers: int = 1
    ray_train: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: str = "torch"
    upload_every: float = 60.0   # seconds between writes of a run's state (and uploads, on remote storage)
    # the generation (fencing token, sweep.lease) of the lease this process writes under: the study's for rows, a
    # dense run's for its result; its writes are refused once that lease holds another. None: not under a lease
    generation: int | None = None

    @property
    def distributed(self) -> bool:
        """Whether trials run through Ray Train rather than directly in their Tune trial."""
        return self.workers > 1 or self.ray_train or self.backend == "xla"


class Workdir:
    """Where a run keeps its resumable state (checkpoints.STATE_FILE and step files), mirrored to the storage.

    On remote storage each process works in a directory of its own, so a run resumed by another process (or node)
    always starts from what reached the storage."""

    SETUP = "setup.json"   # seconds spent before training (pruning, measuring) over every attempt

    def __init__(self, ctx: Context, lease: tuple, *parts: str):
        self.storage, self.parts = Storage(ctx.storage), parts
        self.every, self.uploaded = ctx.upload_every, set()   # every: seconds between writes of the run's state
        self.lease, self.generation = lease, ctx.generation
        self.guard()
        if self.storage.local:
            self.path = self.storage.local_path(*parts)
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            self.path = Path(tempfile.mkdtemp(prefix="raysweep-"))
            for name in (checkpoints.STATE_FILE, self.SETUP):
                if self.storage.exists(*self.parts, name):
                    self.storage.download(self.path / name, *self.parts, name)

    def guard(self) -> None:
        """Raise LeaseLost if the lease this run writes under (`lease`, at ctx.generation) is no longer held at that
        generation: called before every file of the run is written, so a trial of a driver whose lease was taken
        over (the driver paused past its TTL) stops and writes nothing more. Without a generation (a run outside a
        study's driver) nothing is checked."""
        if self.generation is not None:
            fence(self.storage, self.lease, self.generation, "/".join(self.lease))

    def sync(self) -> None:
        """Upload the run's files now (train() calls it through saving() every `every` seconds); a no-op on local
        storage.

        Step files are written once and uploaded once; the state goes last, so a state on the storage never counts on
        a checkpoint that is not there yet."""
        if self.storage.local:
            return
        names = sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
        for name in sorted(set(names) - self.uploaded, key=lambda n: n == checkpoints.STATE_FILE):
            self.storage.write_bytes((self.path / name).read_bytes(), *self.parts, name)
            if name.startswith("step_"):
                self.uploaded.add(name)

    def setup_seconds(self, spent: float) -> float:
        """Add this attempt's setup time to the earlier attempts' and return the total."""
        path = self.path / self.SETUP
        total = spent + (json.loads(path.read_text())["seconds"] if path.exists() else 0.0)
        self.guard()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"seconds": total}))
        os.replace(tmp, path)
        self.sync()
        return total

    def close(self) -> None:
        """Drop this process's copy (remote storage keeps the run's files)."""
        if not self.storage.local:
            shutil.rmtree(self.path, ignore_errors=True)

    def remove(self) -> None:
        """Delete the run's state everywhere: its trial is recorded."""
        shutil.rmtree(self.path, ignore_errors=True)
        if not self.storage.local:
            self.storage.remove_dir(*self.parts)


def _build(trial: Trial, ctx: Context, ds=None):
    ds = ds if ds is not None else data.get(trial.data, ctx.data_root, download=False)
    model = models.create(trial.model, num_classes=ds.num_classes, input_shape=ds.input_shape, seed=trial.seed,
                          init=trial.init, bn_init=trial.bn_init)
    return ds, model


def steps_per_epoch(ds, hp: training.TrainHparams) -> int:
    return len(ds.loader("train", hp.batch_size, shuffle=True, augment=False, seed=0, device="cpu"))


def step_of(when: str, ds, hp: training.TrainHparams) -> int:
    spe = steps_per_epoch(ds, hp)
    if when == "init":
        return 0
    if when == "end":
        return training.schedule.parse_steps(hp.training_steps, spe)
    return training.schedule.parse_steps(when, spe)


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def saving(workdir: Workdir, report) -> dict:
    """train()'s arguments for a run kept in `workdir`: its state written and uploaded every `upload_every` seconds
    (train() calls on_save on the writing rank only), and its evaluations reported."""
    return dict(save_every=workdir.every, on_save=lambda step: workdir.sync(), guard=workdir.guard,
                on_eval=None if report is None else lambda step, m: report(m))


def run_dense(trial: Trial, ctx: Context, device=None, report=None) -> dict | None:
    """Train the dense network of trial.dense_id, saving every step in ctx.dense_steps it reaches, then write its
    result.json (rank 0); returns that summary."""
    ds, model = _build(trial, ctx)
    hp = trial.train_hparams()
    steps = {when: step_of(when, ds, hp) for when in ctx.dense_steps}
    storage = Storage(ctx.storage)
    workdir = Workdir(ctx, (DENSE, trial.dense_id, dense_store.LEASE), DENSE, trial.dense_id)
    owner = dense_store.owner(trial)
    if _rank() == 0:   # the rank that resumes: a state of another run is set aside here, once
        run = run_state.run_id(hp, trial.seed, 0, distributed.rank_and_world()[1])
        state = checkpoints.load_state(workdir.path, run_state.state_owner(owner, run))
        if dense_store.read_result(storage, trial.dense_id) is not None or (state is not None and not all(
                storage.exists(DENSE, trial.dense_id, Path(p).name) for p in state["checkpoints"].values())):
            # The run exists but lacks a step this study needs, or a checkpoint its state counts on was set aside
            # (damaged) or never reached the storage: train it again from the start (same seed).
            (workdir.path / checkpoints.STATE_FILE).unlink(missing_ok=True)
    result = training.train(model, ds, hp, None, seed=trial.seed, save_steps=sorted(set(steps.values())),
                            checkpoint_dir=workdir.path, device=device, owner=owner, **saving(workdir, report))
    if _rank() != 0:
        return None
    workdir.sync()
    workdir.close()
    saved = set(result.checkpoints)   # a diverged run saved only the steps it reached
    summary = {"dense_id": trial.dense_id, "status": result.status, "accuracy": result.accuracy,
               "loss": result.loss, "steps": result.steps, "wall_time": result.wall_time, "history": result.history,
               "checkpoints": {when: f"step_{t}.pt" for when, t in steps.items() if t in saved},
               "trial": {k: v for k, v in trial.to_dict().items() if k in ("model", "data", "hparams", "init",
                                                                            "bn_init", "seed")}}
    dense_store.write_result(storage, trial.dense_id, summary, ctx.generation)
    return summary


def _dense_weights(trial: Trial, ctx: Context, dense: dict, when: str, ds) -> dict:
    """The weights trial's dense run saved at `when`; DenseCorrupt if they cannot be used: damaged, of another run or
    step, or missing (several trials read one checkpoint at once: the first to find it damaged sets it aside)."""
    storage, dense_id = Storage(ctx.storage), trial.dense_id
    name = dense["checkpoints"][when]
    owner = run_state.weights_owner(dense_store.owner(trial), step_of(when, ds, trial.train_hparams()))
    with tempfile.TemporaryDirectory(prefix="raysweep-") as scratch:
        try:
            path = (storage.local_path(DENSE, dense_id, name) if storage.local
                    else storage.download(Path(scratch) / name, DENSE, dense_id, name))
            return checkpoints.load_weights(path, owner)
        except FileNotFoundError:
            raise dense_store.invalidate(storage, dense_id, name, f"{storage.path(DENSE, dense_id, name)}, which "
                                                                  f"result.json lists, is missing") from None
        except Corrupt as e:
            raise dense_store.invalidate(storage, dense_id, name, e) from None


def _masks(trial: Trial, ctx: Context, model, ds, dense: dict | None) -> pruning.Masks:
    """The trial's masks; may change `model`'s weights as its ablation or rewinding prescribes."""
    quota = None if trial.quota == "global" else trial.quota
    ablation = None if trial.ablation == "none" else trial.ablation
    batch = data.balanced_batch(ds, trial.per_class, seed=trial.seed)
    if trial.target == "effective":
        return _effective_masks(trial, model, ds, quota, ablation, batch)
    if trial.method == "ltr":
        trained = copy.deepcopy(model)
        trained.load_state_dict(_dense_weights(trial, ctx, dense, "end", ds))
        masks = pruning.prune(trained, trial.sparsity, "magnitude", quota=quota, seed=trial.seed, ablation=ablation,
                              tie_break=trial.tie_break, rounding=trial.rounding)
        if ablation in ("reinit", "init_normal"):
            model.load_state_dict(trained.state_dict())
        return masks
    return pruning.prune(model, trial.sparsity, trial.method, data=batch, quota=quota, seed=trial.seed,
                         ablation=ablation, iterations=trial.iterations, tie_break=trial.tie_break,
                         rounding=trial.rounding)


def _effective_masks(trial: Trial, model, ds, quota, ablation, batch) -> pruning.Masks:
    """Masks whose effective sparsity is the trial's: Algorithm 1 for random pruning under a quota, otherwise a
    bisection over the direct sparsity, pruning at each candidate exactly as a direct trial does (Vysogorets
    section 5; iterative methods run all their rounds)."""
    if ablation is not None:
        raise ValueError("ablations do not combine with target 'effective'")
    if trial.method == "random" and quota is not None:
        return pruning.effective_random_prune(model, trial.sparsity, quota, ds.input_shape, seed=trial.seed)
    return pruning.effective_prune(model, trial.sparsity, trial.method, ds.input_shape, data=batch, quota=quota,
                                   seed=trial.seed, iterations=trial.iterations, tie_break=trial.tie_break,
                                   rounding=trial.rounding)


def _measure(model, masks: pruning.Masks, ds) -> dict:
    effective = pruning.effective_masks(model, masks, ds.input_shape)
    return {"sparsity_direct": masks.sparsity(), "sparsity_effective": effective.sparsity(),
            "compression_direct": masks.compression(), "compression_effective": effective.compression(),
            "layer_sparsities": masks.layer_sparsities(), "neuron_collapse": pruning.neuron_collapse(masks)}


def base_row(trial: Trial, ctx: Context) -> dict:
    return {"study": ctx.study, **trial.columns(), "workers": ctx.workers, "host": platform.node(),
            "error": None, "finished_at": time.time(), "generation": ctx.generation}


def failed_row(trial: Trial, ctx: Context, error: BaseException | str) -> dict:
    return {**base_row(trial, ctx), "status": "failed",
            "error": error if isinstance(error, str) else describe(error)}


def _dense_outcome(trial: Trial, dense: dict) -> dict | None:
    """A diverged dense run that never reached a checkpoint this trial reads decides the trial: diverged."""
    missing = sorted(trial.dense_needs - set(dense["checkpoints"]))
    if dense["status"] != "diverged" or not missing:
        return None
    return dict(status="diverged", accuracy=dense["accuracy"], loss=dense["loss"], steps=dense["steps"],
                wall_time=0.0, history=dense["history"],
                error=f"the dense run {dense['dense_id']} diverged at step {dense['steps']}, before its "
                      f"checkpoint(s) {missing} this trial starts from")


@dataclass
class Prepared:
    """A trial made ready to train: built, pruned and measured; `outcome` is set once it needs no (more) training."""
    trial: Trial
    ds: object
    model: torch.nn.Module
    masks: pruning.Masks
    measured: dict
    outcome: dict | None = None
    workdir: Workdir | None = None
    setup: float = 0.0    # seconds before training, over every attempt
    start: int = 0        # the schedule step its retraining starts at

    @property
    def owner(self) -> dict:
        """What the trial's state belongs to: its id and what it depends on (training adds its masks' digest)."""
        t = self.trial
        return {"trial_id": t.trial_id, "data": t.data, "init": t.init, "seed": t.seed}


def prepare(trial: Trial, ctx: Context, ds=None) -> Prepared:
    """Everything a trial does before training (ds: the trial's data set, when the caller has it loaded)."""
    started = time.time()
    storage = Storage(ctx.storage)
    dense = None
    if trial.needs_dense:
        dense = dense_store.read_result(storage, trial.dense_id)
        if dense is None:
            raise dense_store.DenseCorrupt(f"the dense run {trial.dense_id} this trial needs is missing from "
                                           f"{storage.path(DENSE, trial.dense_id)}")
    outcome = _dense_outcome(trial, dense) if dense is not None else None
    ds, model = _build(trial, ctx, ds)
    masks = pruning.Masks.ones(model)
    if outcome is not None:
        return Prepared(trial, ds, model, masks, {}, outcome)
    if trial.method == "dense":
        model.load_state_dict(_dense_weights(trial, ctx, dense, "end", ds))
        return Prepared(trial, ds, model, masks, _measure(model, masks, ds),
                        dict(status=dense["status"], accuracy=dense["accuracy"], loss=dense["loss"],
                             steps=dense["steps"], wall_time=dense["wall_time"], history=dense["history"]))
    workdir = Workdir(ctx, (ctx.study, STUDY_LEASE), ctx.study, "scratch", trial.trial_id)
    if trial.prune_at != "init":
        model.load_state_dict(_dense_weights(trial, ctx, dense, trial.prune_at, ds))
    masks = _masks(trial, ctx, model, ds, dense)
    masks.apply(model)
    if trial.rescale:
        models.eoc_rescale(model, masks)
    measured = _measure(model, masks, ds)
    start = 0 if trial.retrain == "full" else step_of(trial.prune_at, ds, trial.train_hparams())
    return Prepared(trial, ds, model, masks, measured, workdir=workdir,
                    setup=workdir.setup_seconds(time.time() - started), start=start)


def trained(p: Prepared, result: training.TrainResult, share: int = 1) -> None:
    """Set the outcome of a prepared trial from its training; a pack of `share` members charges each its share."""
    p.outcome = dict(status=result.status, accuracy=result.accuracy, loss=result.loss, steps=result.steps,
                     wall_time=p.setup + result.wall_time / share, history=result.history)


def record(p: Prepared, ctx: Context, device, pack: str | None = None) -> dict | None:
    """Measure the trained network and write the trial's row (rank 0, which returns it)."""
    measured = dict(p.measured)
    if ctx.metrics and p.outcome["status"] == "completed":
        ood = {name: data.get(name, ctx.data_root, download=False) for name in ctx.ood}
        measured.update(metrics.evaluate_all(p.model.to(device), p.ds, ctx.metrics, masks=p.masks, ood=ood or None,
                                             device=device))
    if _rank() != 0:
        return None
    row = {**base_row(p.trial, ctx), "device": str(device), "pack": pack, **p.outcome, **measured}
    results.write_row(Storage(ctx.storage), ctx.study, row)
    if p.workdir is not None:
        p.workdir.remove()
    return row


def train_alone(p: Prepared, device, report=None) -> None:
    """Retrain a prepared trial by itself (train(); data parallel under Ray Train) and set its outcome."""
    trained(p, training.train(p.model, p.ds, p.trial.train_hparams(), p.masks, seed=p.trial.seed, start_step=p.start,
                              checkpoint_dir=p.workdir.path, device=device, owner=p.owner,
                              **saving(p.workdir, report)))


def run_masked(trial: Trial, ctx: Context, device=None, report=None) -> dict | None:
    """Prune and retrain; rank 0 writes the trial's row and returns it."""
    device = torch.device(device) if device is not None else training.loop.default_device()
    p = prepare(trial, ctx)
    if p.outcome is None:
        train_alone(p, device, report)
    return record(p, ctx, device)
