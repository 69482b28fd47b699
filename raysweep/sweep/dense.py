"""The dense-run store: each dense run (model, data, hyperparameters, seed) is trained once per storage.

<storage>/dense/<dense_id>/ holds the run's checkpoints (step_<t>.pt, sealed with a checksum) and result.json, written
last and sealed too: its existence means the run is done, for this driver, a restarted one, or a later study on the
same storage. Who trains a missing run is decided by a lease in the same directory (sweep.lease), taken by the driver
that trains it, so two drivers or two studies never train one dense run at once.

A result.json that fails its checksum is set aside and the run counts as missing; a checkpoint that fails its
checksum when a trial reads it raises DenseCorrupt after setting the file and result.json aside, so the driver trains
the run again and reruns the trial: a damaged dense run is never used.
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
    """A dense run's checkpoint failed its checksum; it has been set aside and the run must be trained again."""


def _set_aside(storage: Storage, dense_id: str, name: str) -> str:
    aside = f"{name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        storage.move((DENSE, dense_id, name), (DENSE, dense_id, aside))
    except FileNotFoundError:   # another reader set it aside first
        pass
    return storage.path(DENSE, dense_id, aside)


def read_result(storage: Storage, dense_id: str) -> dict | None:
    """The run's verified result.json, or None if there is none (a damaged one is set aside and reported)."""
    try:
        data = storage.read_bytes(DENSE, dense_id, RESULT)
    except FileNotFoundError:
        return None
    try:
        return unseal_json(data, storage.path(DENSE, dense_id, RESULT))
    except Corrupt as e:
        log.warning("%s; moved to %s, the dense run will be trained again", e, _set_aside(storage, dense_id, RESULT))
        return None


def write_result(storage: Storage, dense_id: str, summary: dict) -> None:
    storage.write_bytes(seal_json(summary), DENSE, dense_id, RESULT)


def complete(result: dict | None, steps) -> bool:
    """Whether a dense run needs no more training for `steps`: it saved them all, or it diverged (training it again
    from the same seed would diverge again)."""
    return result is not None and (result["status"] == "diverged" or set(steps) <= set(result["checkpoints"]))


def invalidate(storage: Storage, dense_id: str, name: str, error: Corrupt) -> DenseCorrupt:
    """Set a damaged checkpoint and the run's result.json aside; the error to raise."""
    aside = _set_aside(storage, dense_id, name)
    _set_aside(storage, dense_id, RESULT)
    log.warning("%s; moved to %s, the dense run will be trained again", error, aside)
    return DenseCorrupt(f"{error}; moved to {aside}: the dense run {dense_id} will be trained again")
