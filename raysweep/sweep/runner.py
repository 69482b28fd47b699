"""run_study(): check, lease the study, train the missing dense runs, then fan the missing trials out through Tune.

A run goes in phases, so no trial ever holds a slot while it waits for another:
  1. without Ray: the spec is checked, the grid expanded, the data set and every quota checked, the study's lease
     taken (a second driver waits or refuses), leftovers of killed writes removed, unreadable row files set aside;
     a study with nothing left to do ends here;
  2. the dense runs the missing trials need are trained, each under a lease on the storage so that no other driver
     or study trains it at the same time (one Tune trial per dense run);
  3. the missing trials run, one Tune trial each (or through Ray Train when a trial has several workers).
A trial whose dense checkpoint turns out damaged sets it aside; the driver then trains that dense run again and
reruns the trial (2 and 3 again, for those alone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import socket
import time
from dataclasses import dataclass
from functools import partial

import pandas as pd
import yaml

from .. import results
from ..storage import Storage, check as check_storage
from . import dense as dense_store
from .errors import describe, one_line
from .grid import Trial, expand
from .lease import STUDY as LEASE, Lease, LeaseLost
from .spec import StudySpec, SpecError, parse_when
from .trial import Context, failed_row

log = logging.getLogger("raysweep")

COORDINATOR_MEMORY = 512 * 1024 ** 2   # bytes a Ray Train coordinating trial holds: a Python process with torch
DENSE_CORRUPT = "DenseCorrupt"


class ResourceError(RuntimeError):
    """The cluster cannot ever run the study's trials as specified."""


class StudyInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C) before every trial finished; the rows written so far are kept."""

    def __init__(self, run: "StudyRun"):
        self.run = run
        super().__init__(f"interrupted: {run.ran} trial(s) finished in this run, {run.missing} still missing")


@dataclass
class StudyRun:
    path: str                 # the study directory (or URI)
    frame: pd.DataFrame       # one row per trial of the current spec
    ran: int                  # trials that finished (completed or diverged) in this run
    skipped: int              # trials already finished by an earlier run
    failed: int               # trials of this run whose row says failed
    dense_trainings: int      # dense runs this run trained to the end (the rest came from storage)
    missing: int = 0          # trials of the spec with no row after this run: ran + skipped + failed + missing
                              # is the study's size
    stale: int = 0            # rows of trials the spec no longer has (kept on disk, not in frame)


PROBE_TIMEOUT = 5.0   # seconds a cluster's address gets to accept a connection (ray.init retries for minutes)


class ClusterUnreachable(ResourceError):
    """No Ray cluster answers at the address the run was told to attach to."""


def cluster_address(address: str | None) -> str | None:
    """The cluster a run attaches to: `address`, else $RAY_ADDRESS; None (or 'local') means a local cluster started
    in-process, never one that merely runs on this machine (which a bare ray.init() would join)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


def probe(address: str | None) -> None:
    """Fail in seconds, before anything is written or Ray starts, if nothing answers at the cluster's address: a
    bare ray.init would retry for minutes while the run holds its study's lease. Costs no Ray: a run with nothing
    to do still checks its address."""
    target = cluster_address(address)
    if target is None:
        return
    where = f"--address {target}" if address else f"$RAY_ADDRESS={target}"
    from ray._private.services import canonicalize_bootstrap_address

    try:
        # ray://host:port (Ray Client) is dialled as given; anything else as ray.init resolves it ('auto' included)
        host_port = (target.split("://", 1)[1] if "://" in target
                     else canonicalize_bootstrap_address(target))
        host, _, port = host_port.rpartition(":")
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT).close()
    except (ValueError, ConnectionError, OSError) as e:
        raise ClusterUnreachable(f"{where}: no Ray cluster answers there ({one_line(str(e))})") from None


def connect(address: str | None = None, log_to_driver: bool = True) -> bool:
    """Attach to the cluster at `address` / $RAY_ADDRESS, or start a local one in-process. Returns whether this call
    connected (False: the caller had connected already)."""
    import ray

    if ray.is_initialized():
        return False
    target = cluster_address(address)
    if target:
        probe(address)
        ray.init(address=target)   # resources belong to the cluster: passing num_cpus here is an error
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=log_to_driver)
    return True


def _worker(spec: StudySpec) -> dict[str, float]:
    """What one worker of a trial holds, in Ray's resource names."""
    return {k: v for k, v in (("CPU", spec.cpus_per_worker), ("GPU", spec.gpus_per_worker)) if v}


def check_local_resources(spec: StudySpec, address: str | None) -> list[str]:
    """What can be known before Ray starts: a local cluster has this machine's GPUs and CPUs, and xla needs torch-xla
    wherever it runs."""
    problems = []
    if spec.backend == "xla" and importlib.util.find_spec("torch_xla") is None:
        problems.append("backend: 'xla' needs torch-xla: pip install 'raysweep[tpu]' on the TPU hosts")
    if cluster_address(address) or spec.wait_for_resources:
        return problems
    import torch
    need = {k: v * spec.workers for k, v in _worker(spec).items()}   # a local cluster is one node
    have_gpu = torch.cuda.device_count() if need.get("GPU") else 0
    if need.get("GPU", 0) > have_gpu:
        problems.append(f"gpus_per_worker: the study asks for {need['GPU']:g} GPU(s) per trial ({spec.workers} "
                        f"worker(s) x {spec.gpus_per_worker:g}) and this machine has {have_gpu}; set "
                        f"gpus_per_worker: 0, or attach to a cluster that has GPUs (--address)")
    if need.get("CPU", 0) > (os.cpu_count() or 1):
        problems.append(f"cpus_per_worker: a trial needs {need['CPU']:g} CPUs ({spec.workers} worker(s) x "
                        f"{spec.cpus_per_worker:g}) and this machine has {os.cpu_count()}")
    return problems


def _holds(node: dict, need: dict[str, float]) -> float:
    """How many workers fit on a node at once (Ray keeps resources to 4 decimals: the tolerance absorbs rounding)."""
    return min((int(node.get(k, 0) / v + 1e-6) for k, v in need.items()), default=float("inf"))


def check_resources(spec: StudySpec) -> None:
    """Fail now if the attached cluster could never hold a trial: Ray would leave it pending forever. A worker is
    placed on one node, so some node, or on an autoscaling cluster some node type, must hold a whole worker; a trial
    of several workers needs that many places in the cluster."""
    import ray
    from ray._private.state import state

    if spec.wait_for_resources:
        return
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    config = state.get_cluster_config()   # the node types an autoscaler reported; None without one
    types = [(dict(g.resources), float("inf") if g.max_count < 0 else g.max_count)
             for g in (config.node_group_configs if config else []) if g.max_count != 0]
    if spec.backend == "xla" and not any(n.get("TPU") for n in [*nodes, *(r for r, _ in types)]):
        raise ResourceError("backend 'xla' needs TPU hosts and the cluster has none")

    def places(need: dict[str, float]) -> float:
        # an upper bound on what the cluster could ever hold: its live nodes, and every node type at its maximum
        return sum(_holds(n, need) for n in nodes) + sum(h * most for r, most in types if (h := _holds(r, need)))

    worker = _worker(spec)
    if places(worker) >= spec.workers:
        return
    fields = {"CPU": "cpus_per_worker", "GPU": "gpus_per_worker"}
    short = [fields[k] for k, v in worker.items() if places({k: v}) < spec.workers] or [fields[k] for k in worker]
    largest = ", ".join(f"{max(n.get(k, 0) for n in [*nodes, *(r for r, _ in types)]):g} {k}" for k in worker)
    room = (f"no {'node or node type' if types else 'node'} of the cluster has that much" if not places(worker)
            else f"the cluster{' and its node types' if types else ''} can hold only {places(worker):g} at once")
    raise ResourceError(
        f"{'/'.join(short)}: {'a worker' if spec.workers == 1 else f'each of the {spec.workers} workers of a trial'} "
        f"needs {' and '.join(f'{v:g} {k}' for k, v in worker.items())} on one node, and {room} (the most any "
        f"has: {largest}); ask for less, or set wait_for_resources: true on an autoscaling cluster whose nodes are "
        f"not up yet")


def preflight(spec: StudySpec, trials: list[Trial], address: str | None = None) -> list[str]:
    """The checks that read files: the data sets are present (never downloaded here, no directory created), every
    quota is feasible on the model's layers at every sparsity it is asked for, and the local resources suffice."""
    from .. import data, models, pruning, training
    from .trial import step_of

    # a quarantine/ link only keeps damaged rows from being moved aside (results.scan warns): no reason to refuse
    problems = check_storage(spec.storage, spec.name, dense_store.DENSE,
                             tolerated=(f"{spec.name}/{results.QUARANTINE}",)) + check_local_resources(spec, address)
    try:
        ds = data.get(spec.data, spec.data_root, download=False)
    except data.DataNotFound as e:
        return problems + [f"data: {e}"]
    for name in spec.ood:
        try:
            data.get(name, spec.data_root, download=False)
        except data.DataNotFound as e:
            problems.append(f"ood: {e}")
    model = models.create(spec.model, num_classes=ds.num_classes, input_shape=ds.input_shape)
    shapes = [tuple(p.shape) for p in pruning.prunable(model).values()]
    for i, g in enumerate(spec.grids):
        for quota in g.quotas:
            if quota == "global" or quota.startswith("ratio:"):
                continue
            for sparsity in g.sparsities if g.sparsities is not None else spec.sparsities:
                try:
                    pruning.quota(quota, shapes, sparsity)
                except (pruning.InfeasibleQuota, ValueError) as e:
                    problems.append(f"grids[{i}].quotas: {quota!r} at sparsity {sparsity:g} on {spec.model}: {e}")
    # a step is counted in the data set's batches: a prune_at past the end of training is never reached, and its
    # trials would fail for want of the dense checkpoint at it
    hp = training.preset(spec.training).replace(**spec.hparams)
    total = step_of("end", ds, hp)
    for i, g in enumerate(spec.grids):
        late = [w for w in g.prune_at if w not in ("init", "end") and step_of(w, ds, hp) > total] \
            if set(g.methods) - {"dense"} else []
        if late:
            problems.append(f"grids[{i}].prune_at: {', '.join(late)} after the end of training (training_steps "
                            f"{hp.training_steps!r} is {total} steps of batch {hp.batch_size} on {spec.data})")
    return problems


def study_path(spec: StudySpec) -> str:
    return Storage(spec.storage).path(spec.name)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def spec_changes(old: dict, new: dict) -> list[str]:
    """'field: old -> new' for every field that differs between two dumps of a spec."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in sorted(set(a) | set(b))
            if a.get(k, "(unset)") != b.get(k, "(unset)")]


def _leftovers(storage: Storage, *parts: str) -> None:
    """Remove what killed writers left: '.<name>.<random>.tmp' files (complete files are renamed, never left)."""
    for rel, _ in storage.files(*parts):
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(".") and base.endswith(".tmp"):
            storage.delete(*parts, rel)


@dataclass
class Plan:
    """What a run would do, known without Ray."""
    trials: list[Trial]
    todo: list[Trial]
    done: int
    stale: int


def plan(spec: StudySpec, trials: list[Trial], set_aside: bool = False) -> Plan:
    """The study's trials (expand(spec)), those with no finished row yet, and how many rows on disk are stale."""
    storage = Storage(spec.storage)
    scanned = results.scan(storage, spec.name, set_aside=set_aside)
    ids = {t.trial_id for t in trials}
    now, stale = results.split_stale(scanned.rows, ids)
    finished = set(now.loc[now["status"].isin(results.FINISHED), "trial_id"])
    todo = [t for t in trials if t.trial_id not in finished]
    return Plan(trials, todo, len(trials) - len(todo), len(stale))


def run_study(spec: StudySpec, address: str | None = None, verbose: int = 1, callbacks=(),
              wait: bool = False) -> StudyRun:
    """Run every trial of `spec` not already finished in its storage; return the rows of the spec's trials.

    verbose: 0 prints nothing but warnings, 1 one line per finished trial, 2 Ray Tune's own progress tables.
    callbacks: Ray Tune callbacks (e.g. logger callbacks) added to the study's Tune runs.
    wait: if another driver runs this study now, wait for it instead of raising LeaseHeld.
    A driver that loses the study's lease (paused past its TTL, and taken over) raises LeaseLost: its trials are
    stopped, and neither they nor it write anything more.
    """
    trials = expand(spec)
    problems = preflight(spec, trials, address)
    if problems:
        raise SpecError(problems)
    probe(address)   # before the lease and any write: ray.init would hang on an address where nothing answers
    storage = Storage(spec.storage)
    with Lease(storage, (spec.name, LEASE), f"study {spec.name!r}").acquire(wait=wait) as lease:
        lease.verify()
        _record_spec(storage, spec, trials)
        _leftovers(storage, spec.name)
        planned = plan(spec, trials, set_aside=True)
        if planned.stale:
            log.warning("%d row(s) of trials the spec no longer has are stale: kept in %s, left out of the study's "
                        "results (results.load(..., include_stale=True) reads them)", planned.stale,
                        storage.path(spec.name, results.ROWS))
        todo = planned.todo
        trainings, interrupted = 0, False
        if todo:
            connected = connect(address, log_to_driver=verbose >= 2)
            check_resources(spec)
            # the lease's generation goes with every row this run writes, which is refused once the lease is lost
            ctx = dataclasses.replace(_context(spec, storage, trials), generation=lease.generation)
            callbacks = (*callbacks, _watch(lease))
            try:
                for _ in range(3):   # a damaged dense checkpoint costs a round: retrain it, rerun its trials
                    trained, interrupted, broken = _dense_phase(spec, ctx, storage, todo, verbose, callbacks)
                    trainings += trained
                    if not interrupted:
                        interrupted = _trial_phase(spec, ctx, storage, todo, broken, verbose, callbacks)
                    rows = _rows(storage, spec.name, todo)
                    corrupt = [t for t in todo if t.trial_id in rows and rows[t.trial_id]["status"] == "failed"
                               and str(rows[t.trial_id].get("error") or "").startswith(DENSE_CORRUPT)]
                    if interrupted or not corrupt:
                        break
                    for error in {rows[t.trial_id]["error"] for t in corrupt}:
                        log.warning("%s", error.removeprefix(f"{DENSE_CORRUPT}: "))
                    todo = corrupt
            except KeyboardInterrupt:   # Ctrl-C: the rows written so far stand; the summary counts only those
                interrupted = True
                if connected:
                    # Ray's processes block SIGINT, so trials would go on writing rows after the count. Shutting
                    # down a local Ray returns once its workers are dead; on a cluster, the actors this driver owns
                    # die with its connection.
                    import ray
                    ray.shutdown()
            except LeaseLost:   # another driver runs the study now: stop this one's trials, write nothing more
                if connected:
                    import ray
                    ray.shutdown()
                raise
        rows = _rows(storage, spec.name, planned.todo)
        finished_now = sum(r["status"] in results.FINISHED for r in rows.values())
        failed = sum(r["status"] == "failed" for r in rows.values())
        lease.verify()
        frame = results.consolidate(storage, spec.name)
        run = StudyRun(path=storage.uri_of(spec.name), frame=frame, ran=finished_now, skipped=planned.done,
                       failed=failed, dense_trainings=trainings, missing=len(planned.todo) - finished_now - failed,
                       stale=planned.stale)
    if interrupted:
        raise StudyInterrupted(run)
    return run


def _record_spec(storage: Storage, spec: StudySpec, trials: list[Trial]) -> None:
    """Write spec.yaml and the manifest of current trial ids; say what changed if the study ran before."""
    new = spec.to_dict()
    old = results.recorded_spec(storage, spec.name)
    changes = spec_changes(old, new) if old is not None else []
    if changes:
        log.warning("study %r changed since its last run (%s); rows of trials it no longer has stay on disk as "
                    "stale rows", spec.name, "; ".join(changes))
    storage.write_bytes(yaml.safe_dump(new, sort_keys=False).encode(), spec.name, results.SPEC)
    results.write_manifest(storage, spec.name, [t.trial_id for t in trials])


def _context(spec: StudySpec, storage: Storage, trials: list[Trial]) -> Context:
    rewind = parse_when(trials[0].train_hparams().rewind_step) if trials else "init"
    # absolute paths: Tune runs each trial in its own working directory
    return Context(storage=storage.uri, study=spec.name,
                   data_root=os.pathsep.join(map(os.path.abspath, spec.data_root.split(os.pathsep)))
                   if spec.data_root else None,
                   metrics=list(spec.metrics), ood=list(spec.ood),
                   plugins=[os.path.abspath(p) if p.endswith(".py") else p for p in spec.plugins],
                   dense_steps=sorted({"init", "end", rewind, *(t.prune_at for t in trials)}),
                   workers=spec.workers, ray_train=spec.ray_train, cpus_per_worker=spec.cpus_per_worker,
                   gpus_per_worker=spec.gpus_per_worker, backend=spec.backend, upload_every=spec.upload_every)


def _rows(storage: Storage, study: str, trials: list[Trial]) -> dict[str, dict]:
    ids = {t.trial_id for t in trials}
    df = results.scan(storage, study).rows
    return {r["trial_id"]: r for r in df[df["trial_id"].isin(ids)].to_dict("records")}


def _dense_phase(spec, ctx, storage, todo, verbose, callbacks) -> tuple[int, bool, dict[str, str]]:
    """Train the dense runs `todo` needs and nobody has; wait (holding no trial slot) for those another driver is
    training. Returns (runs trained, interrupted, {dense_id: error} of runs that failed)."""
    pending = {}
    for t in todo:
        if t.needs_dense and t.dense_id not in pending:
            pending[t.dense_id] = t.dense_trial()
    pending = {i: t for i, t in pending.items()
               if not dense_store.complete(dense_store.read_result(storage, i), ctx.dense_steps)}
    trained, broken = 0, {}
    while pending:
        mine = {}
        for dense_id in pending:
            lease = Lease(storage, (dense_store.DENSE, dense_id, dense_store.LEASE), f"dense run {dense_id}")
            if lease.try_acquire() is not None:
                continue
            if dense_store.complete(dense_store.read_result(storage, dense_id), ctx.dense_steps):
                lease.release()   # its previous holder finished it between our look and our lease
                continue
            mine[dense_id] = lease.keep()
            _leftovers(storage, dense_store.DENSE, dense_id)
        try:
            if mine:
                jobs = [{**_job("dense", [pending[i]]), "generation": mine[i].generation} for i in mine]
                errors, interrupted = _tune(spec, ctx, storage, jobs, "dense", verbose, callbacks)
                if interrupted:
                    return trained, True, broken
                for job in jobs:
                    dense_id = Trial.from_dict(job["trials"][0]).dense_id
                    if errors.get(job["name"]) is not None:
                        broken[dense_id] = errors[job["name"]]
                    elif dense_store.read_result(storage, dense_id) is not None:
                        trained += 1
        finally:
            for lease in mine.values():
                lease.release()
        for dense_id in list(pending):
            if dense_id in mine or dense_store.complete(dense_store.read_result(storage, dense_id),
                                                        ctx.dense_steps):
                del pending[dense_id]
        if pending and not mine:
            time.sleep(1.0)
    return trained, False, broken


def _trial_phase(spec, ctx, storage, todo, broken, verbose, callbacks) -> bool:
    """Run the trials; those whose dense run failed are recorded failed with its error. Returns interrupted."""
    runnable = []
    for t in todo:
        if t.dense_id in broken and t.needs_dense:
            results.write_row(storage, spec.name, failed_row(t, ctx, f"the dense run {t.dense_id} failed: "
                                                                      f"{broken[t.dense_id]}"))
        else:
            runnable.append(t)
    if not runnable:
        return False
    from . import packing
    size = packing.pack_size(spec.pack_size, runnable, ctx, *packing.slots(spec))
    jobs = [_job("masked", pack) for pack in packing.packs(runnable, size)]
    if size > 1:
        log.info("%d trial(s) in %d pack(s) of up to %d", len(runnable), len(jobs), size)
    errors, interrupted = _tune(spec, ctx, storage, jobs, "trials", verbose, callbacks)
    rows = _rows(storage, spec.name, runnable)
    for job in jobs:
        if errors.get(job["name"]) is None:
            continue
        for t in map(Trial.from_dict, job["trials"]):
            # a worker that died (killed, out of memory) wrote nothing: record the error Tune saw
            if t.trial_id not in rows:
                results.write_row(storage, spec.name, failed_row(t, ctx, errors[job["name"]]))
    return interrupted


# --- Tune --------------------------------------------------------------------------------------------------------

_SHOWN = ("method", "sparsity", "seed", "ablation", "quota", "prune_at", "target", "model", "data")


def _job(kind: str, trials: list[Trial]) -> dict:
    """One Tune trial (a trial, a pack of trials, or a dense run): its readable name, its settings as Tune's config
    (a setting that differs among a pack's members lists their values), and the trials it runs."""
    t = trials[0]
    if len(trials) > 1:
        name = f"pack{len(trials)}-{t.model}-seeds{min(x.seed for x in trials)}-{max(x.seed for x in trials)}"
    else:
        name = f"{t.method}"
        if t.method != "dense":
            name += f"-s{t.sparsity:g}"
            name += "".join(f"-{v}" for v, d in ((t.ablation, "none"), (t.quota, "global"), (t.prune_at, "init"),
                                                  (t.target, "direct")) if v != d)
        name += f"-seed{t.seed}"
    ids = "".join(x.dense_id if kind == "dense" else x.trial_id for x in trials)
    name = f"{name}-{(ids if len(trials) == 1 else hashlib.sha256(ids.encode()).hexdigest())[:8]}"
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

    def setting(k):
        values = list(dict.fromkeys(getattr(x, k) for x in trials))
        return values[0] if len(values) == 1 else "|".join(map(str, values))

    config = {"name": name, "kind": kind, "trials": len(trials), "trial_id": setting("trial_id"),
              **{k: setting(k) for k in _SHOWN}}
    return {"name": name, "kind": kind, "config": config, "trials": [x.to_dict() for x in trials]}


def _enter(ctx: dict) -> Context:
    """Set up a trial or worker process: the study's plugins, and one torch thread per reserved CPU (more would
    fight the other trials on the node)."""
    import torch

    from .plugins import load_plugins
    ctx = Context(**ctx)
    load_plugins(ctx.plugins)
    torch.set_num_threads(max(1, int(ctx.cpus_per_worker)))
    return ctx


def _ray_train(kind: str, trial: Trial, ctx: Context) -> None:
    """Run a trial data-parallel over ctx.workers Ray Train workers (DDP); rank 0 writes its outputs."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    kwargs = {}
    if ctx.backend == "xla":
        from ray.train.torch.xla import TorchXLAConfig
        kwargs["torch_config"] = TorchXLAConfig()
        scaling = ScalingConfig(num_workers=ctx.workers, use_tpu=True)
    else:
        resources = {"CPU": ctx.cpus_per_worker, **({"GPU": ctx.gpus_per_worker} if ctx.gpus_per_worker else {})}
        scaling = ScalingConfig(num_workers=ctx.workers, use_gpu=ctx.gpus_per_worker > 0,
                                resources_per_worker=resources)
    storage = Storage(ctx.storage)
    trainer = TorchTrainer(_train_worker, scaling_config=scaling,
                           train_loop_config={"kind": kind, "trial": trial.to_dict(), "ctx": dataclasses.asdict(ctx)},
                           run_config=RunConfig(name=f"{kind}-{trial.trial_id}-{int(time.time())}",
                                                storage_path=storage.target(ctx.study, "train"),
                                                storage_filesystem=storage.fs, callbacks=[TuneReportCallback()]),
                           **kwargs)
    trainer.fit()


def _train_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    from .trial import run_dense, run_masked
    ctx = _enter(config["ctx"])
    trial = Trial.from_dict(config["trial"])
    device = ray.train.torch.get_device() if ctx.backend == "torch" else None
    if config["kind"] == "dense":
        run_dense(trial, ctx, device=device)
    else:
        row = run_masked(trial, ctx, device=device, report=lambda m: ray.train.report(m))
        ray.train.report({"accuracy": (row or {}).get("accuracy")})


def _summary(row: dict) -> dict:
    return {k: row.get(k) for k in ("trial_id", "method", "sparsity", "seed", "ablation", "quota", "prune_at",
                                     "target", "status", "accuracy", "wall_time", "error")}


def _tune_job(config: dict, jobs: dict, ctx: dict) -> None:
    """One Tune trial: a dense run, or trials pruned and retrained in-process or through Ray Train. A trial that
    raises gets a failed row (its root error) and the Tune trial raises after the others finished, so Tune retries
    it; a retry skips the trials already finished."""
    from ray import tune

    from .packing import run_pack
    from .trial import run_dense
    ctx = _enter(ctx)
    job = jobs[config["name"]]
    trials = [Trial.from_dict(d) for d in job["trials"]]
    storage = Storage(ctx.storage)
    if job["kind"] == "dense":
        trial = trials[0]
        ctx = dataclasses.replace(ctx, generation=job["generation"])   # it writes under the dense run's lease
        if ctx.distributed:
            _ray_train("dense", trial, ctx)
        else:
            run_dense(trial, ctx, report=tune.report)
        result = dense_store.read_result(storage, trial.dense_id) or {}
        tune.report({"done": True, "rows": [{"trial_id": trial.dense_id, "method": "dense (trained)",
                                             "seed": trial.seed, "status": result.get("status"),
                                             "accuracy": result.get("accuracy"),
                                             "wall_time": result.get("wall_time")}]})
        return
    todo = [t for t in trials if (row := results.read_row(storage, ctx.study, t.trial_id)) is None
            or row["status"] not in results.FINISHED]   # a retried Tune trial skips its finished members
    if len(todo) > 1 and not ctx.distributed:
        outcomes = run_pack(todo, ctx, job["name"], report=tune.report)
    else:
        outcomes = {t.trial_id: _run_one(t, ctx, storage) for t in todo}
    summaries, errors = [], []
    for trial in todo:
        row = outcomes[trial.trial_id]
        if isinstance(row, dense_store.DenseCorrupt):   # the driver retrains the dense run and reruns the trial
            row = failed_row(trial, ctx, f"{DENSE_CORRUPT}: {row}")
            results.write_row(storage, ctx.study, row)
        elif isinstance(row, Exception):
            errors.append(row)
            row = failed_row(trial, ctx, row)
            results.write_row(storage, ctx.study, row)
        summaries.append(_summary(row or {}))
    tune.report({"done": not errors, "rows": summaries})
    if errors:
        raise errors[0]


def _run_one(trial: Trial, ctx: Context, storage: Storage):
    """A trial alone (through Ray Train when distributed): its row, or the exception that stopped it."""
    from ray import tune

    from .trial import run_masked
    try:
        if ctx.distributed:
            _ray_train("masked", trial, ctx)
            return results.read_row(storage, ctx.study, trial.trial_id)
        return run_masked(trial, ctx, report=tune.report)
    except Exception as e:
        return e


class _Progress:
    """One line per finished trial: [done/total] settings: accuracy (status) in time, and the time left. done counts
    trials, not lines: a trial that Tune retries (it failed, or its pack did) is reported again and counted once."""

    def __init__(self, total: int, what: str):
        from ray.tune import Callback

        progress = self

        class Lines(Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                for row in result.get("rows") or []:
                    progress.line(row)

        self.total, self.what, self.seen, self.started = total, what, set(), time.monotonic()
        self.callback = Lines()

    def line(self, row: dict) -> None:
        self.seen.add(row["trial_id"])
        done = len(self.seen)
        left = (time.monotonic() - self.started) / done * (self.total - done)
        what = row.get("method", "")
        if row.get("sparsity") is not None and what != "dense":
            what += f" s={row['sparsity']:g}"
        what += "".join(f" {row[k]}" for k, d in (("ablation", "none"), ("quota", "global"), ("prune_at", "init"),
                                                   ("target", "direct")) if row.get(k) not in (None, d))
        outcome = (f"accuracy {100 * row['accuracy']:.1f}%" if row.get("accuracy") is not None
                   else one_line(row.get("error")))
        print(f"[{done}/{self.total} {self.what}] {what} seed={row.get('seed')}: {outcome} "
              f"({row.get('status')}, {row.get('wall_time') or 0:.1f} s); about {left / 60:.1f} min left",
              flush=True)


def _watch(lease: Lease):
    """A Tune callback that ends the run (LeaseLost out of tuner.fit) at the first step after the study's lease is
    lost, before Tune starts or reports another trial."""
    from ray.tune import Callback

    class Watch(Callback):
        def __init__(self, lease):
            self.lease = lease

        def on_step_begin(self, iteration, trials, **info):
            if self.lease is not None:
                self.lease.check()

        def __getstate__(self):
            # Tune saves its callbacks with the experiment; the lease (and its heartbeat) is this driver's alone
            return {"lease": None}

    return Watch(lease)


def _loggers(spec: StudySpec) -> list:
    """Tune always writes CSV, JSON and TensorBoard logs; wandb and mlflow are added when the spec names them."""
    out = []
    if "wandb" in spec.loggers:
        from ray.air.integrations.wandb import WandbLoggerCallback
        out.append(WandbLoggerCallback(project=spec.name))
    if "mlflow" in spec.loggers:
        from ray.air.integrations.mlflow import MLflowLoggerCallback
        out.append(MLflowLoggerCallback(experiment_name=spec.name))
    return out


def _lookup(jobs: dict, key: str, config: dict):
    return jobs[config["name"]]["config"][key]


def _tune(spec, ctx, storage, jobs: list[dict], phase: str, verbose, callbacks) -> tuple[dict, bool]:
    """Run jobs as Tune trials; returns ({job name: error text or None}, whether the run was interrupted)."""
    from ray import tune

    table = {j["name"]: j for j in jobs}
    keys = list(jobs[0]["config"])
    space = {"name": tune.grid_search(list(table)),
             **{k: tune.sample_from(partial(_lookup, table, k)) for k in keys if k != "name"}}
    resources = ({"cpu": 0, "memory": COORDINATOR_MEMORY} if ctx.distributed
                 else {"cpu": spec.cpus_per_worker, "gpu": spec.gpus_per_worker})
    trainable = tune.with_resources(tune.with_parameters(_tune_job, jobs=table, ctx=dataclasses.asdict(ctx)),
                                    resources)
    progress = _Progress(sum(len(j["trials"]) for j in jobs), phase)
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent or None,
                                    # a reused process skips torch's import; a nested Ray Train run cannot be reused
                                    reuse_actors=not ctx.distributed,
                                    trial_dirname_creator=lambda t: t.config["name"],
                                    trial_name_creator=lambda t: t.config["name"]),
        run_config=tune.RunConfig(name=f"{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=storage.target(spec.name, "tune"), storage_filesystem=storage.fs,
                                  failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                                  callbacks=[*([progress.callback] if verbose == 1 else []), *_loggers(spec),
                                             *callbacks],
                                  verbose=2 if verbose >= 2 else 0),
    )
    # Ctrl-C raises KeyboardInterrupt here at once rather than through Tune's handler, which would end the run as
    # if it had finished (its unfinished trials lost among the finished ones)
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        grid = tuner.fit()
    finally:
        if previous is None:
            del os.environ["TUNE_DISABLE_SIGINT_HANDLER"]
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
    errors, interrupted = {}, False
    for result in grid:
        name = result.config["name"]
        if result.error is not None:
            errors[name] = describe(result.error)
        elif not (result.metrics or {}).get("done"):
            interrupted = True
    return errors, interrupted
