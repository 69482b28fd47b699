"""Trial results as a Parquet dataset: one file per trial, named by the trial's id, so a row exists once.

    from raysweep import results
    df = results.load("runs/fig4-lenet_300_100-digits")   # pandas DataFrame, one row per current trial

Columns are native Arrow types: `history` is list<struct>, `layer_sparsities` map<string, double>, `finished_at` a
UTC timestamp, so pandas, pyarrow.dataset and DuckDB query them directly. Each file records its schema version and a
checksum of its content in the Parquet key-value metadata; a file that cannot be read or fails its checksum is
reported by name and treated as missing (its trial runs again). Rows written before the checksum (schema 1: JSON
strings, float times) are still read.

A study's manifest (<study>/manifest.json, written by every run) lists the trial ids of its current spec. Readers show
only those rows; rows of trials an edited spec no longer has are *stale*: they stay on disk, reachable with
include_stale=True.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import Storage, split

ROWS = "trials"            # <study>/trials/<trial_id>.parquet
CONSOLIDATED = "results.parquet"
MANIFEST = "manifest.json"
QUARANTINE = "quarantine"  # <study>/quarantine/<file>: row files that could not be used, kept for inspection
FINISHED = ("completed", "diverged")   # a failed trial is tried again on the next run
SCHEMA_VERSION = "2"
_META_SCHEMA, _META_DIGEST = b"raysweep.schema", b"raysweep.digest"

log = logging.getLogger("raysweep")

_STRING = ("study", "trial_id", "dense_id", "model", "data", "init", "bn_init", "method", "ablation", "quota",
           "prune_at", "retrain", "target", "device", "host", "error", "status", "pack")
_INT = ("seed", "per_class", "iterations", "workers", "steps")
_FLOAT = ("sparsity", "accuracy", "loss", "wall_time", "sparsity_direct", "sparsity_effective",
          "compression_direct", "compression_effective", "neuron_collapse")
_TYPES = {**{c: pa.string() for c in _STRING}, **{c: pa.int64() for c in _INT},
          **{c: pa.float64() for c in _FLOAT}, "rescale": pa.bool_(),
          "layer_sparsities": pa.map_(pa.string(), pa.float64()),
          "finished_at": pa.timestamp("us", tz="UTC")}


def _history_type(rows: list[dict]) -> pa.DataType:
    """list<struct> of the evaluation records: numbers as double (step as int64), anything else as Arrow infers."""
    values: dict[str, list] = {}
    for row in rows:
        history = row.get("history")
        for record in history if isinstance(history, list) else []:   # a frame's missing value is NaN
            for k, v in record.items():
                values.setdefault(k, []).append(v)

    def kind(key, vs):
        if key == "step":
            return pa.int64()
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vs):
            return pa.float64()
        return pa.array(vs, from_pandas=True).type

    return pa.list_(pa.struct([(k, kind(k, vs)) for k, vs in values.items()]))


def _timestamp(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if math.isnan(value) else datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return value


def _table(rows: list[dict]) -> pa.Table:
    """Rows as a table of native Arrow types; columns raysweep does not know are inferred."""
    rows = [{**r, **({"finished_at": _timestamp(r["finished_at"])} if "finished_at" in r else {})} for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r))
    types = {**_TYPES, "history": _history_type(rows)}
    # from_pandas: a NaN that pandas put where a value is missing (a failed row has no accuracy) becomes null
    columns = [pa.array([r.get(name) for r in rows], type=types.get(name), from_pandas=True) for name in names]
    return pa.Table.from_arrays(columns, names=names)


def _content_digest(table: pa.Table) -> str:
    body = json.dumps({"columns": table.column_names, "rows": table.to_pylist()}, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def to_parquet(rows: list[dict]) -> bytes:
    """A Parquet file of `rows` sealed with its schema version and a checksum of its content."""
    table = _table(rows)
    # the digest is taken of the table as a reader gets it back, so nothing Parquet normalises can mismatch
    readback = pq.read_table(io.BytesIO(_parquet_bytes(table)))
    meta = {**(table.schema.metadata or {}), _META_SCHEMA: SCHEMA_VERSION.encode(),
            _META_DIGEST: _content_digest(readback).encode()}
    return _parquet_bytes(table.replace_schema_metadata(meta))


class BadRowFile(ValueError):
    """A row file that cannot be used: unreadable, failing its checksum, or not the row its name says."""


def from_parquet(data: bytes, where: str) -> pd.DataFrame:
    """The rows of a sealed (or schema-1) Parquet file, decoded to Python objects; BadRowFile if unusable."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise BadRowFile(f"{where} cannot be read as Parquet ({type(e).__name__}: {e})") from None
    meta = table.schema.metadata or {}
    if _META_DIGEST in meta:
        plain = table.replace_schema_metadata(None)
        if _content_digest(plain) != meta[_META_DIGEST].decode():
            raise BadRowFile(f"{where}: its content does not match the checksum recorded when it was written")
    elif meta.get(_META_SCHEMA) is not None:
        raise BadRowFile(f"{where}: schema {meta[_META_SCHEMA].decode()} file without its checksum")
    return _decode(table.to_pandas(maps_as_pydicts="strict"))


def _decode(df: pd.DataFrame) -> pd.DataFrame:
    """Python objects for the structured columns, from either schema version."""
    for column in ("layer_sparsities", "history"):
        if column in df:
            # schema 1 stored JSON text; Arrow gives a list<struct> back as an array of dicts
            df[column] = [json.loads(v) if isinstance(v, str)
                          else [dict(r) for r in v] if column == "history" and hasattr(v, "__len__")
                          else v for v in df[column]]
    if "finished_at" in df and not isinstance(df["finished_at"].dtype, pd.DatetimeTZDtype):
        df["finished_at"] = pd.to_datetime(df["finished_at"], unit="s", utc=True)
    return df


def write_row(storage: Storage, study: str, row: dict) -> None:
    """Write (or replace) the row of trial row['trial_id'] atomically."""
    storage.write_bytes(to_parquet([row]), study, ROWS, f"{row['trial_id']}.parquet")


def read_row(storage: Storage, study: str, trial_id: str) -> dict | None:
    """The verified row of one trial, or None if it has none (or an unusable one)."""
    try:
        frame = from_parquet(storage.read_bytes(study, ROWS, f"{trial_id}.parquet"), trial_id)
    except (FileNotFoundError, BadRowFile):
        return None
    return frame.iloc[0].to_dict()


@dataclass
class Scan:
    """What a study's trials/ directory holds."""
    rows: pd.DataFrame                                   # one verified row per trial id found
    bad: list[tuple[str, str]] = field(default_factory=list)   # (file name, why it is not used)


def scan(storage: Storage, study: str, set_aside: bool = False) -> Scan:
    """Read every row file. A file that cannot be used is named in a warning and ignored, so its trial counts as
    missing; with set_aside (a run, which holds the study's lease) it is also moved to <study>/quarantine/."""
    frames, bad = [], []
    for name in storage.list(study, ROWS):
        if not name.endswith(".parquet") or name.startswith("."):
            continue
        where = storage.path(study, ROWS, name)
        try:
            frame = from_parquet(storage.read_bytes(study, ROWS, name), where)
            ids = set(frame["trial_id"]) if "trial_id" in frame else set()
            if ids != {name[: -len(".parquet")]}:
                raise BadRowFile(f"{where} holds the row(s) of {sorted(ids)[:3]}, not of the trial its name says "
                                 f"(a copy or a foreign file)")
        except (BadRowFile, FileNotFoundError) as e:
            bad.append((name, str(e)))
            continue
        frames.append(frame)
    for name, reason in bad:
        if set_aside:
            aside = f"{name}.{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                storage.move((study, ROWS, name), (study, QUARANTINE, aside))
            except FileNotFoundError:
                continue
            log.warning("%s; moved to %s, its trial counts as missing", reason, storage.path(study, QUARANTINE, aside))
        else:
            log.warning("%s; its trial counts as missing", reason)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_id", "status"])
    return Scan(rows, bad)


def write_manifest(storage: Storage, study: str, trial_ids: list[str]) -> None:
    storage.write_bytes(json.dumps({"trial_ids": sorted(trial_ids)}).encode(), study, MANIFEST)


def current_ids(storage: Storage, study: str) -> set[str] | None:
    """The trial ids of the study's current spec, or None for a study written before manifests existed."""
    if not storage.exists(study, MANIFEST):
        return None
    return set(json.loads(storage.read_bytes(study, MANIFEST))["trial_ids"])


def split_stale(rows: pd.DataFrame, ids: set[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the current trials, stale rows)."""
    if ids is None:
        return rows, rows.iloc[0:0]
    now = rows["trial_id"].isin(ids)
    return rows[now].reset_index(drop=True), rows[~now].reset_index(drop=True)


def save(df: pd.DataFrame, storage: Storage, *parts: str) -> None:
    """Write a frame of rows as one sealed Parquet file, atomically."""
    records = df.to_dict("records")
    storage.write_bytes(to_parquet(records) if records else _parquet_bytes(pa.table({c: [] for c in df.columns})),
                        *parts)


def consolidate(storage: Storage, study: str) -> pd.DataFrame:
    """Gather the current trials' rows into <study>/results.parquet (written atomically) and return them."""
    rows, _ = split_stale(scan(storage, study).rows, current_ids(storage, study))
    save(rows, storage, study, CONSOLIDATED)
    return rows


def load(path: str, include_stale: bool = False) -> pd.DataFrame:
    """The rows at `path`, a local path or URI: a study directory's rows (those of its current spec's trials, or every
    row on disk with include_stale), or the results.parquet an experiment script wrote in its output directory."""
    storage, name = split(path)
    if storage.exists(name, ROWS):
        rows = scan(storage, name).rows
        return rows if include_stale else split_stale(rows, current_ids(storage, name))[0]
    if storage.exists(name, CONSOLIDATED):
        return from_parquet(storage.read_bytes(name, CONSOLIDATED), storage.path(name, CONSOLIDATED))
    raise FileNotFoundError(f"no results under {path}: neither a study directory ({ROWS}/) nor a script's output "
                            f"({CONSOLIDATED})")
