"""One proposal of a search, in whichever process Tune runs it: random-prune under the proposed quota with each
seed, retrain on the training split minus the hold-out, report the seeds' mean validation accuracy every epoch."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import torch

from .. import data, models, pruning, training
from ..training.checkpoints import atomic_save, load
from .spec import quota_string


class Lockstep:
    """Runs one job per seed in threads that take turns epoch by epoch, so that after every epoch the mean over
    seeds is known and can be reported while only one seed computes at a time (one CPU per proposal)."""

    def __init__(self, count: int, on_round):
        self.count, self.on_round = count, on_round
        self.cond = threading.Condition()
        self.turn, self.done, self.error = 0, set(), None
        self.latest: dict[int, dict] = {}

    def _wait_turn(self, k: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == k or self.error is not None)
            if self.error is not None:
                raise _Aborted()

    def _pass(self, k: int, epoch: bool) -> None:
        """Hand the turn to the next unfinished seed; after the round's last epoch, report the round first."""
        with self.cond:
            wrapped = epoch and not [j for j in range(k + 1, self.count) if j not in self.done]
        if wrapped:
            self.on_round(dict(self.latest))   # may block (Tune) or raise (the trial is stopped)
        with self.cond:
            pending = [j for j in range(self.count) if j not in self.done]
            later = [j for j in pending if j > k]
            self.turn = (later or pending or [-1])[0]
            self.cond.notify_all()

    def epoch_done(self, k: int, metrics: dict) -> None:
        with self.cond:
            self.latest[k] = metrics
        self._pass(k, epoch=True)
        self._wait_turn(k)

    def run(self, job) -> list:
        results = [None] * self.count

        def body(k):
            try:
                self._wait_turn(k)
                results[k] = job(k, lambda metrics: self.epoch_done(k, metrics))
                with self.cond:
                    self.done.add(k)
                self._pass(k, epoch=False)
            except _Aborted:
                pass
            except BaseException as e:   # includes the SystemExit Tune raises in a stopped trial's reporter
                with self.cond:
                    if self.error is None:
                        self.error = e
                    self.cond.notify_all()

        threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(self.count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.error is not None:
            raise self.error
        return results


class _Aborted(Exception):
    """Another seed failed: this one stops too."""


def evaluate_proposal(config: dict, job: dict, report) -> dict:
    """Train job['seeds'] random prunings under the proposal's quota; report(metrics) after every epoch.

    config: the proposal (the searched parameters, plus 'optuna_trial'); job: the search's fixed settings."""
    params = {k: v for k, v in config.items() if k != "optuna_trial"}
    quota = quota_string(job["family"], {**job["fixed"], **params})
    ds = data.get(job["data"], job["data_root"], seed=job["split_seed"], validation=job["validation"])
    hp = training.TrainHparams(**job["hparams"])
    seeds = job["seeds"]
    layer_sparsities = {}

    def one_seed(k, epoch_done):
        model = models.create(job["model"], num_classes=ds.num_classes, input_shape=ds.input_shape, seed=seeds[k],
                              init=job["init"], bn_init=job["bn_init"])
        if job.get("prune_at", "init") == "end":
            trained = copy.deepcopy(model)
            trained.load_state_dict(dense_weights(job, ds, hp, seeds[k]))
            masks = pruning.prune(trained, job["sparsity"], "magnitude", quota=quota, seed=seeds[k])
        else:
            masks = pruning.prune(model, job["sparsity"], "random", quota=quota, seed=seeds[k])
        masks.apply(model)
        layer_sparsities.update(masks.layer_sparsities())
        result = training.train(model, ds, hp, masks, seed=seeds[k], eval_split="val",
                                on_eval=lambda step, m: epoch_done(m))
        return result

    def on_round(latest):
        accs = [latest[k]["accuracy"] for k in sorted(latest)]
        losses = [latest[k]["loss"] for k in sorted(latest)]
        epoch = max(m["epoch"] for m in latest.values())
        report({"val_accuracy": float(np.mean(accs)), "val_accuracy_std": float(np.std(accs)),
                "val_loss": float(np.mean(losses)), "seed_accuracies": accs, "epoch": epoch, "quota": quota,
                "layer_sparsities": dict(layer_sparsities)})

    results = Lockstep(len(seeds), on_round).run(one_seed)
    return {"quota": quota, "statuses": [r.status for r in results]}


def dense_weights(job: dict, ds, hp: training.TrainHparams, seed: int) -> dict:
    """The dense network of `seed` trained on the search's training split, shared by all of the search's proposals
    through job['dense_dir'] (two proposals racing to train it write the same weights; the write is atomic)."""
    key = {k: job[k] for k in ("model", "data", "split_seed", "validation", "hparams", "init", "bn_init")}
    digest = hashlib.sha256(json.dumps({**key, "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(job["dense_dir"]) / f"{digest}.pt"
    owner = {"dense": digest, "model": job["model"], "data": job["data"], "init": job["init"], "seed": seed}
    if not path.exists():
        model = models.create(job["model"], num_classes=ds.num_classes, input_shape=ds.input_shape, seed=seed,
                              init=job["init"], bn_init=job["bn_init"])
        training.train(model, ds, hp, None, seed=seed, eval_split="val")
        atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path, owner)
    return load(path, owner)   # torch.load(weights_only=True), checksum and owner verified


def tune_trainable(config: dict, job: dict) -> None:
    """The Tune function trainable: one proposal with the search's fixed settings bound by tune.with_parameters."""
    from ray import tune
    torch.set_num_threads(max(1, int(job["cpus"])))
    evaluate_proposal(config, job, tune.report)
