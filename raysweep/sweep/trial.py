"""What one trial does, in whichever process runs it: build, (fetch dense weights,) prune, retrain, measure."""

from __future__ import annotations

import copy
import json
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import data, metrics, models, pruning, results, training
from ..storage import Storage
from .cache import DENSE, RESULT
from .grid import Trial


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

    @property
    def distributed(self) -> bool:
        """Whether trials run through Ray Train rather than directly in their Tune trial."""
        return self.workers > 1 or self.ray_train or self.backend == "xla"


def _build(trial: Trial, ctx: Context):
    ds = data.get(trial.data, ctx.data_root)
    model = models.create(trial.model, num_classes=ds.num_classes, input_shape=ds.input_shape, seed=trial.seed,
                          init=trial.init, bn_init=trial.bn_init)
    return ds, model


def steps_per_epoch(ds, hp: training.TrainHparams) -> int:
    return len(ds.loader("train", hp.batch_size, shuffle=True, augment=False, seed=0, device="cpu"))


def _step(when: str, ds, hp: training.TrainHparams) -> int:
    spe = steps_per_epoch(ds, hp)
    if when == "init":
        return 0
    if when == "end":
        return training.schedule.parse_steps(hp.training_steps, spe)
    return training.schedule.parse_steps(when, spe)


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _scratch(ctx: Context, *parts: str) -> Path:
    """A local directory for a run's resumable training state."""
    storage = Storage(ctx.storage)
    if storage.local:
        return storage.local_path(*parts)
    return Path(tempfile.gettempdir()) / "raysweep" / Storage(ctx.storage).uri.replace("/", "_") / "/".join(parts)


def run_dense(trial: Trial, ctx: Context, device=None, report=None) -> None:
    """Train the dense network of trial.dense_id, saving every step in ctx.dense_steps, then write result.json."""
    ds, model = _build(trial, ctx)
    hp = trial.train_hparams()
    steps = {when: _step(when, ds, hp) for when in ctx.dense_steps}
    storage = Storage(ctx.storage)
    workdir = _scratch(ctx, DENSE, trial.dense_id)
    if storage.exists(DENSE, trial.dense_id, RESULT):
        # The run exists but lacks a step this study needs: train it again from the start (same seed) to save it.
        (workdir / training.checkpoints.STATE_FILE).unlink(missing_ok=True)
    result = training.train(model, ds, hp, None, seed=trial.seed, save_steps=sorted(set(steps.values())),
                            checkpoint_dir=workdir, device=device,
                            on_eval=(lambda step, m: report({"dense_step": step, **m})) if report else None)
    if _rank() != 0:
        return
    if not storage.local:
        storage.upload_dir(workdir, DENSE, trial.dense_id)
    summary = {"dense_id": trial.dense_id, "status": result.status, "accuracy": result.accuracy,
               "loss": result.loss, "steps": result.steps, "wall_time": result.wall_time, "history": result.history,
               "checkpoints": {when: f"step_{t}.pt" for when, t in steps.items()},
               "trial": {k: v for k, v in trial.to_dict().items() if k in ("model", "data", "hparams", "init",
                                                                            "bn_init", "seed")}}
    storage.write_bytes(json.dumps(summary, default=str).encode(), DENSE, trial.dense_id, RESULT)


def _dense_weights(ctx: Context, dense: dict, when: str) -> dict:
    storage = Storage(ctx.storage)
    name = dense["checkpoints"][when]
    if storage.local:
        path = storage.local_path(DENSE, dense["dense_id"], name)
    else:
        path = storage.download(_scratch(ctx, DENSE, dense["dense_id"]) / name, DENSE, dense["dense_id"], name)
    return training.load_weights(path)


def _masks(trial: Trial, ctx: Context, model, ds, dense: dict | None) -> pruning.Masks:
    """The trial's masks; may change `model`'s weights as its ablation or rewinding prescribes."""
    quota = None if trial.quota == "global" else trial.quota
    ablation = None if trial.ablation == "none" else trial.ablation
    batch = data.balanced_batch(ds, trial.per_class, seed=trial.seed)
    if trial.target == "effective":
        return _effective_masks(trial, model, ds, quota, ablation, batch)
    if trial.method == "ltr":
        trained = copy.deepcopy(model)
        trained.load_state_dict(_dense_weights(ctx, dense, "end"))
        masks = pruning.prune(trained, trial.sparsity, "magnitude", quota=quota, seed=trial.seed, ablation=ablation)
        if ablation in ("reinit", "init_normal"):
            model.load_state_dict(trained.state_dict())
        return masks
    return pruning.prune(model, trial.sparsity, trial.method, data=batch, quota=quota, seed=trial.seed,
                         ablation=ablation, iterations=trial.iterations)


def _effective_masks(trial: Trial, model, ds, quota, ablation, batch) -> pruning.Masks:
    """Masks whose effective sparsity is the trial's: Algorithm 1 for random pruning under a quota, otherwise a
    bisection over the direct sparsity, pruning at each candidate exactly as a direct trial does (Vysogorets
    section 5; iterative methods run all their rounds)."""
    if ablation is not None:
        raise ValueError("ablations do not combine with target 'effective'")
    if trial.method == "random" and quota is not None:
        return pruning.effective_random_prune(model, trial.sparsity, quota, ds.input_shape, seed=trial.seed)
    return pruning.effective_prune(model, trial.sparsity, trial.method, ds.input_shape, data=batch, quota=quota,
                                   seed=trial.seed, iterations=trial.iterations)


def _measure(model, masks: pruning.Masks, ds) -> dict:
    effective = pruning.effective_masks(model, masks, ds.input_shape)
    return {"sparsity_direct": masks.sparsity(), "sparsity_effective": effective.sparsity(),
            "compression_direct": masks.compression(), "compression_effective": effective.compression(),
            "layer_sparsities": masks.layer_sparsities(), "neuron_collapse": pruning.neuron_collapse(masks)}


def _row(trial: Trial, ctx: Context, device, **measured) -> dict:
    return {"study": ctx.study, **trial.columns(), "workers": ctx.workers, "device": str(device),
            "host": platform.node(), "error": None, "finished_at": time.time(), **measured}


def run_masked(trial: Trial, ctx: Context, dense: dict | None, device=None, report=None) -> dict | None:
    """Prune and retrain; rank 0 writes the trial's row and returns it."""
    started = time.time()
    ds, model = _build(trial, ctx)
    hp = trial.train_hparams()
    device = torch.device(device) if device is not None else training.loop.default_device()
    if trial.method == "dense":
        model.load_state_dict(_dense_weights(ctx, dense, "end"))
        masks = pruning.Masks.ones(model)
        measured = _measure(model, masks, ds)
        outcome = dict(status=dense["status"], accuracy=dense["accuracy"], loss=dense["loss"], steps=dense["steps"],
                       wall_time=dense["wall_time"], history=dense["history"])
    else:
        if trial.prune_at != "init":
            model.load_state_dict(_dense_weights(ctx, dense, trial.prune_at))
        masks = _masks(trial, ctx, model, ds, dense)
        masks.apply(model)
        if trial.rescale:
            models.eoc_rescale(model, masks)
        measured = _measure(model, masks, ds)
        start = 0 if trial.retrain == "full" else _step(trial.prune_at, ds, hp)
        result = training.train(model, ds, hp, masks, seed=trial.seed, start_step=start,
                                checkpoint_dir=_scratch(ctx, ctx.study, "scratch", trial.trial_id), device=device,
                                on_eval=(lambda step, m: report(m)) if report else None)
        outcome = dict(status=result.status, accuracy=result.accuracy, loss=result.loss, steps=result.steps,
                       wall_time=time.time() - started, history=result.history)
    if ctx.metrics and outcome["status"] == "completed":
        ood = {name: data.get(name, ctx.data_root) for name in ctx.ood}
        measured.update(metrics.evaluate_all(model.to(device), ds, ctx.metrics, masks=masks, ood=ood or None,
                                             device=device))
    row = _row(trial, ctx, device, **outcome, **measured)
    if _rank() != 0:
        return None
    results.write_row(Storage(ctx.storage), ctx.study, row)
    if trial.method != "dense":
        shutil.rmtree(_scratch(ctx, ctx.study, "scratch", trial.trial_id), ignore_errors=True)
    return row
