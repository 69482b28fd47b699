"""run_search(): one Optuna search through Ray Tune per (family, sparsity), persisted in an RDB study so that an
interrupted run resumes; then the best parameters, plots and the final test-set evaluation against the baselines."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .. import data, results, training
from ..storage import Storage, check as check_storage
from ..sweep import Grid, StudySpec, connect, run_study
from ..sweep.runner import probe
from . import plots
from .checks import SearchError, check_ranges, layer_shapes, open_optuna_storage, optuna_url
from .spec import SAMPLERS, Family, SearchSpec, parse_range, quota_string, validate
from .trainable import tune_trainable

METRIC = "val_accuracy"
FINAL = "final"          # the final evaluation's study directory, inside the search's


@dataclass
class SearchRun:
    path: str                    # the study directory (or URI)
    trials: pd.DataFrame         # one row per finished proposal, this run's and earlier runs'
    best: dict                   # the content of best.json
    final: pd.DataFrame | None   # the final evaluation's rows (test accuracy per quota, sparsity and fresh seed)
    ran: int                     # proposals started by this run


def study_name(spec: SearchSpec, family: str, sparsity: float) -> str:
    """The Optuna study of one search; all of a search's studies share one storage."""
    return f"{spec.name}:{family}:s={sparsity:g}"


def _hparams(spec: SearchSpec) -> training.TrainHparams:
    return training.preset(spec.training).replace(**(spec.hparams or {}))


def epochs(spec: SearchSpec) -> int:
    """Evaluations (one per epoch) of each seed's training: the reports ASHA's rungs count."""
    hp = _hparams(spec)
    ds = data.get(spec.data, spec.data_root, seed=spec.split_seed, validation=spec.validation)
    spe = len(ds.loader("train", hp.batch_size, shuffle=True, augment=False, seed=0, device="cpu"))
    return math.ceil(training.schedule.parse_steps(hp.training_steps, spe) / spe)


def _job(spec: SearchSpec, family: Family, sparsity: float) -> dict:
    return {"family": family.name, "fixed": dict(family.fixed or {}), "sparsity": float(sparsity),
            "model": spec.model, "data": spec.data, "data_root": spec.data_root, "split_seed": spec.split_seed,
            "validation": spec.validation, "hparams": dataclasses.asdict(_hparams(spec)), "seeds": list(spec.seeds),
            "init": spec.init, "bn_init": spec.bn_init, "cpus": spec.cpus_per_trial, "prune_at": spec.prune_at,
            "dense_dir": str(Storage(spec.storage).local_path(spec.name, "dense"))
            if spec.prune_at == "end" else None}


def _row_writer(spec: SearchSpec, storage: Storage, family: Family, sparsity: float, total_epochs: int,
                proposals, show: bool):
    from ray import tune

    class RowWriter(tune.Callback):
        """Writes every finished proposal's row (completed, stopped early by ASHA, or failed) to the study."""

        def __init__(self):
            self.history: dict[str, list] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.history.setdefault(trial.trial_id, []).append(
                {k: result.get(k) for k in ("epoch", METRIC, "val_accuracy_std", "val_loss", "seed_accuracies")})

        def _write(self, trial, status, error=None):
            last = trial.last_result or {}
            number = trial.config["optuna_trial"]
            params = {k: v for k, v in trial.config.items() if k != "optuna_trial"}
            history = self.history.get(trial.trial_id, [])
            if status == "completed" and len(history) < total_epochs:
                status = "stopped"
            row = {"study": spec.name, "trial_id": f"{family.name}-s{sparsity:g}-{number:04d}",
                   "search": study_name(spec, family.name, sparsity), "family": family.name,
                   "sparsity": float(sparsity), "optuna_trial": int(number),
                   "quota": quota_string(family.name, {**(family.fixed or {}), **params}),
                   **{f"param_{k}": float(v) for k, v in params.items()}, "status": status,
                   METRIC: last.get(METRIC), "val_accuracy_std": last.get("val_accuracy_std"),
                   "epochs": len(history), "seed_accuracies": last.get("seed_accuracies"), "history": history,
                   "layer_sparsities": last.get("layer_sparsities"), "model": spec.model, "data": spec.data,
                   "seeds": list(spec.seeds), "error": error, "finished_at": time.time()}
            results.write_row(storage, spec.name, row)
            proposals.settle(trial.trial_id)
            if show:   # the concise display: one line per finished proposal
                accuracy = row[METRIC]
                print(f"[{study_name(spec, family.name, sparsity)} #{number}] {row['quota']}: "
                      f"{'%s %.1f%%' % (METRIC, 100 * accuracy) if accuracy is not None else status} "
                      f"({status}, {len(history)} epoch(s))", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._write(trial, "completed")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._write(trial, "failed", error=f"trial {trial.trial_id} raised; see {trial.local_path}")

    return RowWriter()


INTERRUPTED = "interrupted_trials"   # study user attribute: numbers of the trials a killed driver left running


def _settle_interrupted(ot_study, rows: pd.DataFrame) -> int:
    """Settle the trials a killed driver left running: one whose row was written is told the row's outcome; the
    others are failed and listed in the study's INTERRUPTED attribute. Returns how many trials finished for real
    (completed, pruned, or failed by their proposal), which the budget counts."""
    from optuna.trial import TrialState

    from .searcher import tell
    interrupted = set(ot_study.user_attrs.get(INTERRUPTED, []))
    written = {int(r["optuna_trial"]): r for r in rows.to_dict("records")} if len(rows) else {}
    lost = []
    for trial in ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = written.get(trial.number)
        if row is None:
            ot_study.tell(trial.number, state=TrialState.FAIL)
            lost.append(trial.number)
            continue
        value = row[METRIC] if row["status"] != "failed" and pd.notna(row[METRIC]) else None
        tell(ot_study, trial.number, None if value is None else float(value), row["status"] == "failed")
    if lost:
        interrupted.update(lost)
        ot_study.set_user_attr(INTERRUPTED, sorted(interrupted))
    finished = ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return sum(t.number not in interrupted for t in finished)


def _search(spec: SearchSpec, family: Family, sparsity: float, rdb, storage: Storage, total_epochs: int,
            verbose: int) -> int:
    """Run the proposals still missing from the (family, sparsity) search; returns how many were started."""
    import optuna
    from optuna.distributions import FloatDistribution
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from .searcher import OptunaProposals

    name = study_name(spec, family.name, sparsity)
    ot_study = optuna.create_study(storage=rdb, study_name=name, direction="maximize", load_if_exists=True)
    rows = results.scan(storage, spec.name).rows
    here = rows[rows["search"] == name] if "search" in rows else rows.iloc[0:0]
    remaining = spec.trials - _settle_interrupted(ot_study, here)
    if remaining <= 0:
        return 0
    space = {k: FloatDistribution(r.low, r.high, log=r.log) for k, r in
             ((k, parse_range(v)) for k, v in family.space.items())}
    # a resumed search draws on from a new seed, or a random sampler would repeat its first proposals
    ot_study.sampler = SAMPLERS[spec.sampler](spec.sampler_seed + len(ot_study.trials))
    proposals = OptunaProposals(ot_study, space, METRIC)
    searcher = ConcurrencyLimiter(proposals, max_concurrent=spec.max_concurrent)
    if spec.scheduler == "asha":
        scheduler = ASHAScheduler(metric=METRIC, mode="max", max_t=total_epochs,
                                  grace_period=min(spec.grace_period, total_epochs),
                                  reduction_factor=spec.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    trainable = tune.with_resources(tune.with_parameters(tune_trainable, job=_job(spec, family, sparsity)),
                                    {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    reuse_actors=True),   # a reused process skips torch's import
        run_config=tune.RunConfig(name=f"{family.name}-s{sparsity:g}-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=storage.target(spec.name, "tune"), storage_filesystem=storage.fs,
                                  verbose=2 if verbose >= 2 else 0,
                                  callbacks=[_row_writer(spec, storage, family, sparsity, total_epochs, proposals,
                                                         show=verbose == 1)]),
    )
    tuner.fit()
    return remaining


def best_parameters(spec: SearchSpec, rdb, total_epochs: int) -> dict:
    """Per search, its best proposal among those that trained every epoch (else among all completed); per
    sparsity, the best over families."""
    import optuna
    from optuna.trial import TrialState
    searches = []
    for family in spec.families:
        for sparsity in spec.sparsities:
            name = study_name(spec, family.name, sparsity)
            trials = optuna.load_study(study_name=name, storage=rdb).get_trials(states=(TrialState.COMPLETE,))
            full = [t for t in trials if t.user_attrs.get("epochs", 0) >= total_epochs] or trials
            if not full:
                continue
            best = max(full, key=lambda t: t.value)
            params = {**(family.fixed or {}), **best.params}
            searches.append({"family": family.name, "sparsity": float(sparsity), "params": params,
                             "quota": quota_string(family.name, params), METRIC: best.value,
                             "optuna_trial": best.number, "optuna_study": name, "trials": len(trials)})
    per_sparsity = {}
    for entry in searches:
        key = f"{entry['sparsity']:g}"
        if key not in per_sparsity or entry[METRIC] > per_sparsity[key][METRIC]:
            per_sparsity[key] = entry
    return {"study": spec.name, "metric": f"mean {METRIC} over seeds {list(spec.seeds)}", "best": per_sparsity,
            "searches": searches}


def _write_best(storage: Storage, spec: SearchSpec, best: dict) -> None:
    storage.write_bytes(json.dumps(best, indent=2).encode(), spec.name, "best.json")
    rows = [{**{k: v for k, v in e.items() if k != "params"}, "params": json.dumps(e["params"]),
             "best_at_sparsity": best["best"][f"{e['sparsity']:g}"] is e} for e in best["searches"]]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    storage.write_bytes(buffer.getvalue(), spec.name, "best.parquet")


def final_spec(spec: SearchSpec, best: dict, storage: Storage) -> StudySpec:
    """The final evaluation as one sweep study: random pruning under every search's best quota and the baselines,
    trained on the whole training set and tested on the test set, over fresh seeds."""
    grids = []
    for sparsity in spec.sparsities:
        proposals = [e["quota"] for e in best["searches"] if e["sparsity"] == float(sparsity)]
        quotas = list(dict.fromkeys([*proposals, *spec.baselines]))
        # after training: the sweep's 'ltr' (magnitude mask of the trained network, weights rewound to init)
        grids.append(Grid(methods=["random" if spec.prune_at == "init" else "ltr"], quotas=quotas,
                          sparsities=[sparsity]))
    where = storage.uri_of(spec.name)
    return StudySpec(name=FINAL, storage=where, model=spec.model, data=spec.data, data_root=spec.data_root,
                     training=spec.training, hparams=dict(spec.hparams or {}), init=spec.init, bn_init=spec.bn_init,
                     seeds=list(spec.final_seeds), sparsities=list(spec.sparsities), grids=grids, dense=False,
                     cpus_per_worker=spec.cpus_per_trial, gpus_per_worker=spec.gpus_per_trial,
                     max_concurrent=spec.max_concurrent)


def summarize_final(frame: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy mean, std and count per sparsity and quota."""
    done = frame[frame["status"] == "completed"]
    return (done.groupby(["sparsity", "quota"])["accuracy"].agg(["mean", "std", "count"]).reset_index()
            .sort_values(["sparsity", "mean"], ascending=[True, False]))


def run_search(spec: SearchSpec, address: str | None = None, verbose: int = 1) -> SearchRun:
    """Check everything, run (or resume) every search, write best parameters and plots, run the final evaluation."""
    validate(spec)
    problems = check_storage(spec.storage, spec.name)
    if problems:
        raise SearchError("\n".join(problems), problems)
    if spec.prune_at == "end" and not Storage(spec.storage).local:
        raise SearchError("prune_at: end shares the dense networks through the study directory, which must be "
                          f"local (or on a shared file system), not {spec.storage!r}")
    shapes = layer_shapes(spec)
    check_ranges(spec, shapes)
    probe(address)   # before optuna.db is created: ray.init would hang where nothing answers
    rdb = open_optuna_storage(optuna_url(spec))
    total_epochs = epochs(spec)
    connect(address)
    storage = Storage(spec.storage)
    storage.write_bytes(yaml.safe_dump(spec.to_dict(), sort_keys=False).encode(), spec.name, "spec.yaml")
    ran = 0
    for family in spec.families:
        for sparsity in spec.sparsities:
            ran += _search(spec, family, sparsity, rdb, storage, total_epochs, verbose)
    trials = results.consolidate(storage, spec.name)
    best = best_parameters(spec, rdb, total_epochs)
    _write_best(storage, spec, best)
    plots.write_all(storage, spec, trials, best, shapes)
    final = None
    if spec.final and best["searches"]:
        final = run_study(final_spec(spec, best, storage), address=address, verbose=verbose).frame
        summary = summarize_final(final)
        storage.write_bytes(summary.to_csv(index=False).encode(), spec.name, "final_summary.csv")
        plots.write_final(storage, spec, summary)
    return SearchRun(path=storage.path(spec.name), trials=trials, best=best, final=final, ran=ran)
