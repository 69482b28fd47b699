"""Checkpoint files: weights at chosen steps and the full state needed to resume a run.

Every file is written whole (temporary name, then rename), sealed with a content checksum and the identity of what it
belongs to (raysweep.integrity), and read back with torch.load(weights_only=True), so a file from storage can neither
run code nor be used damaged, nor be used by a run it does not belong to.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from ..integrity import Corrupt, seal, unseal

STATE_FILE = "state.pt"
log = logging.getLogger("raysweep")


def weights_path(directory, step: int) -> Path:
    return Path(directory) / f"step_{step}.pt"


def atomic_save(obj, path, owner: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(seal(obj, owner), f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path, owner: dict | None = None):
    """The object saved by atomic_save at `path`; Corrupt if the file is damaged, not a raysweep checkpoint, or (given
    `owner`) another owner's. owner=None is for inspecting a file, never for using it."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, KeyError) as e:
        raise Corrupt(path, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return unseal(loaded, path, owner)


def cpu_state_dict(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def load_weights(path, owner: dict | None = None) -> dict:
    """The model state_dict saved at a step (checkpoint_dir/step_<t>.pt), on the CPU; `owner` as load()'s (what the
    run_state.weights_owner() of its run and step is)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return load(path, owner)


def set_aside(path) -> Path:
    """Rename a damaged file out of the way (kept for inspection, never read again) and return its new name."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


def load_state(directory, owner: dict):
    """The resumable state in `directory` of the run `owner` names, or None. A damaged state, or one of another run,
    is set aside and the run starts over."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        return load(path, owner)
    except Corrupt as e:
        log.warning("%s; moved to %s, the run starts from its beginning", e, set_aside(path).name)
        return None
