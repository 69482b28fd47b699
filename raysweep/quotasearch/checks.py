"""Checks made before any search starts: the families' ranges on the model's real layers, the Optuna storage."""

from __future__ import annotations

import itertools
import os

import numpy as np

from .. import data, models, pruning
from ..storage import Storage
from .spec import SearchSpec, parse_range, quota_string


class SearchError(ValueError):
    """A search that cannot start as specified; the message names the family, parameters and sparsity, and
    `problems` says it in one line per problem, each naming its field, as `raysweep search` prints them."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class StorageError(SearchError):
    """The Optuna storage URL cannot be opened."""


def layer_shapes(spec: SearchSpec) -> list[tuple[int, ...]]:
    """The prunable weight shapes of spec.model on spec.data."""
    ds = data.get(spec.data, spec.data_root)
    model = models.create(spec.model, num_classes=ds.num_classes, input_shape=ds.input_shape)
    return [tuple(p.shape) for p in pruning.prunable(model).values()]


def probe_points(space: dict, per_axis: int = 5) -> list[dict]:
    """The corners of a parameter box and a grid inside it (per_axis values per axis, log-spaced on log axes)."""
    axes = {}
    for key, value in space.items():
        r = parse_range(value)
        axes[key] = (np.geomspace(r.low, r.high, per_axis) if r.log else np.linspace(r.low, r.high, per_axis))
    keys = sorted(axes)
    return [dict(zip(keys, (float(v) for v in combo))) for combo in itertools.product(*(axes[k] for k in keys))]


def check_ranges(spec: SearchSpec, shapes) -> None:
    """Every family must give a valid quota at every probe point of its box and every target sparsity."""
    problems = []
    for fam in spec.families:
        for sparsity in spec.sparsities:
            bad = []
            for point in probe_points(fam.space):
                name = quota_string(fam.name, {**(fam.fixed or {}), **point})
                try:
                    pruning.quota(name, shapes, sparsity)
                except ValueError as e:   # InfeasibleQuota and bad parameter values alike
                    bad.append(f"{name}: {e}")
            if bad:
                problems.append(f"family {fam.name} with space {fam.space} gives invalid quotas at sparsity "
                                f"{sparsity} on {spec.model} ({len(bad)} of {len(probe_points(fam.space))} probe "
                                f"points), e.g. {bad[0]}")
    if problems:
        raise SearchError("parameter ranges that produce invalid quotas (narrow them or fix parameters):\n" +
                          "\n".join(f"  - {p}" for p in problems),
                          [f"families: {p} (narrow the range or fix parameters)" for p in problems])


def optuna_url(spec: SearchSpec) -> str:
    if spec.optuna_storage:
        return spec.optuna_storage
    storage = Storage(spec.storage)
    if not storage.local:
        raise StorageError(f"optuna_storage: storage {spec.storage!r} is not local, so the default SQLite study "
                           f"cannot live there: set optuna_storage to an SQLAlchemy URL (e.g. "
                           f"postgresql://user@host/db)")
    storage.makedirs(spec.name)
    return f"sqlite:///{storage.local_path(spec.name, 'optuna.db')}"


def open_optuna_storage(url: str):
    """An Optuna RDBStorage for `url`, or StorageError saying why it cannot be opened."""
    import optuna
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:   # SQLAlchemy raises many unrelated types for unusable URLs
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"   # SQLAlchemy appends the SQL and a link
        path = url.removeprefix("sqlite:///")
        if path != url and os.path.isfile(path):
            # A damaged SQLite file (truncated, overwritten) is not replaced by a fresh one: it is the only record of
            # the proposals run and of what the samplers learned, and a fresh one would restart every search's
            # budget at trial number 0, overwriting the rows of the proposals that finished. Whether to restore it
            # or start over is the researcher's call.
            raise StorageError(f"optuna_storage: {path} is damaged ({why}); restore it from a backup, or move the "
                               f"directory {os.path.dirname(path)} aside to start the search afresh") from None
        raise StorageError(f"optuna_storage: cannot open the Optuna storage {url!r}: {why}") from None
