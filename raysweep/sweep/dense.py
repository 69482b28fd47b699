"""The dense-run store: each dense run (model, data, hyperparameters, seed) is trained once per storage.

<storage>/dense/<dense_id>/ holds the run's checkpoints (step_<t>.pt, sealed with a checksum) and result.json, written
last and sealed too: its existence means the run is done, for this driver, a restarted one, or a later study on the
same storage. Who trains a missing run is decided by a lease in the same directory (sweep.lease), taken by the driver
that trains it, so two drivers or two studies never train one dense run at once.

Every file names the run it belongs to (owner(): its id and what it depends on; result.json its dense_id), so that a
file copied from another run's directory is caught as a damaged one is. A result.json that fails its checksum or names
another run is set aside and the run counts as missing; a checkpoint that fails its checksum, belongs to another run
or step, or is missing (another reader set it aside first) when a trial reads it raises DenseCorrupt after setting
the file and result.json aside, so the driver trains the run again and reruns the trial: a damaged dense run is never
used.
"""

from __future__ import annotations

import logging
import time

from ..integrity import Corrupt, seal_json, unseal_json
from ..storage import Storage

DENSE = "dense"
RESULT = "result.json"
LEASE = "lease.json"

log = logging.getLogger("raysweep")


class DenseCorrupt(RuntimeError):
    """A dense run's checkpoint cannot be used (damaged, another run's, or missing); it has been set aside and the run
    must be trained again."""


def owner(trial) -> dict:
    """What a dense run's checkpoints and state belong to: its id, and what it depends on (the id is their hash)."""
    return {"dense_id": trial.dense_id, "model": trial.model, "data": trial.data, "init": trial.init,
            "bn_init": trial.bn_init, "seed": trial.seed}


def _set_aside(storage: Storage, dense_id: str, name: str) -> str:
    """Move a file out of the way; says where to, for a warning."""
    aside = f"{name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        storage.move((DENSE, dense_id, name), (DENSE, dense_id, aside))
    except FileNotFoundError:
        return "gone already (another reader set it aside, or it was deleted)"
    return f"moved to {storage.path(DENSE, dense_id, aside)}"


def read_result(storage: Storage, dense_id: str) -> dict | None:
    """The run's verified result.json, or None if there is none (a damaged one is set aside and reported)."""
    try:
        data = storage.read_bytes(DENSE, dense_id, RESULT)
    except FileNotFoundError:
        return None
    where = storage.path(DENSE, dense_id, RESULT)
    try:
        result = unseal_json(data, where)
        if result.get("dense_id") != dense_id:
            raise Corrupt(where, f"belongs to the dense run {result.get('dense_id')}, not {dense_id}")
        return result
    except Corrupt as e:
        log.warning("%s; %s, the dense run will be trained again", e, _set_aside(storage, dense_id, RESULT))
        return None


def write_result(storage: Storage, dense_id: str, summary: dict, generation: int | None = None) -> None:
    """Seal and write the run's result.json; with the generation of its lease (a driver's dense job), only while the
    run's lease still holds that generation (sweep.lease.fence), so a paused trainer whose lease was taken over
    writes nothing after the one that took it."""
    if generation is not None:
        from .lease import fence
        fence(storage, (DENSE, dense_id, LEASE), generation, f"dense run {dense_id}")
    storage.write_bytes(seal_json(summary), DENSE, dense_id, RESULT)


def complete(result: dict | None, steps) -> bool:
    """Whether a dense run needs no more training for `steps`: it saved them all, or it diverged (training it again
    from the same seed would diverge again)."""
    return result is not None and (result["status"] == "diverged" or set(steps) <= set(result["checkpoints"]))


def invalidate(storage: Storage, dense_id: str, name: str, error) -> DenseCorrupt:
    """Set a checkpoint that cannot be used (`error`: a Corrupt, or why it is missing) and the run's result.json
    aside; the error to raise."""
    aside = _set_aside(storage, dense_id, name)
    _set_aside(storage, dense_id, RESULT)
    log.warning("%s; %s, the dense run will be trained again", error, aside)
    return DenseCorrupt(f"{error}; {aside}: the dense run {dense_id} will be trained again")
