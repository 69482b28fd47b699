"""Trial results as a Parquet dataset: one file per trial, named by the trial's id, so a row exists once.

    from raysweep import results
    df = results.load("runs/fig4-lenet_300_100-digits")   # pandas DataFrame, one row per current trial

Columns are native Arrow types: `history` is list<struct>, `layer_sparsities` map<string, double>, `finished_at` a
UTC timestamp, so pandas, pyarrow.dataset and DuckDB query them directly. Each file records its schema version and a
checksum of its content in the Parquet key-value metadata; a file that cannot be read, fails or lacks its checksum,
or is not the one row of the trial its name says is reported by name and treated as missing (its trial runs again).
Rows written before the checksum (schema 1: JSON strings, float times) look like rows whose checksum was stripped, so
they are read only after `results.migrate(path)` re-seals them as schema 2, which a user asks for knowing their origin.

A study's manifest (<study>/manifest.json, written by every run, sealed) lists the trial ids of its current spec.
Readers show only those rows; rows of trials an edited spec no longer has are *stale*: they stay on disk, reachable
with include_stale=True. A damaged manifest is named in a warning and treated as absent until the next run rewrites it.
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
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from ..integrity import Corrupt, seal_json, unseal_json
from ..storage import Storage, split

ROWS = "trials"            # <study>/trials/<trial_id>.parquet
CONSOLIDATED = "results.parquet"
MANIFEST = "manifest.json"
SPEC = "spec.yaml"         # <study>/spec.yaml: the spec of the study's last run
QUARANTINE = "quarantine"  # <study>/quarantine/<file>: row files that could not be used, kept for inspection
FINISHED = ("completed", "diverged")   # a failed trial is tried again on the next run
SCHEMA_VERSION = "2"
_META_SCHEMA, _META_DIGEST = b"raysweep.schema", b"raysweep.digest"

log = logging.getLogger("raysweep")

_STRING = ("study", "trial_id", "dense_id", "model", "data", "init", "bn_init", "method", "ablation", "quota",
           "prune_at", "retrain", "target", "device", "host", "error", "status", "pack")
_INT = ("seed", "per_class", "iterations", "workers", "steps", "generation")
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
    return _sealed(_table(rows))


def _sealed(table: pa.Table) -> bytes:
    # the digest is taken of the table as a reader gets it back, so nothing Parquet normalises can mismatch
    readback = pq.read_table(io.BytesIO(_parquet_bytes(table)))
    meta = {**(table.schema.metadata or {}), _META_SCHEMA: SCHEMA_VERSION.encode(),
            _META_DIGEST: _content_digest(readback).encode()}
    return _parquet_bytes(table.replace_schema_metadata(meta))


class BadRowFile(ValueError):
    """A row file that cannot be used: unreadable, failing or lacking its checksum, or not the row its name says."""


def _read_table(data: bytes, where: str) -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise BadRowFile(f"{where} cannot be read as Parquet ({type(e).__name__}: {e})") from None


def _frame(table: pa.Table) -> pd.DataFrame:
    return _decode(table.to_pandas(maps_as_pydicts="strict"))


def from_parquet(data: bytes, where: str) -> pd.DataFrame:
    """The rows of a sealed Parquet file, decoded to Python objects; BadRowFile if unusable."""
    table = _read_table(data, where)
    meta = table.schema.metadata or {}
    if _META_DIGEST not in meta:
        # a file written before checksums and one whose checksum was stripped (and its content edited) look alike
        raise BadRowFile(f"{where} carries no checksum (written before schema {SCHEMA_VERSION}, or its metadata was "
                         f"stripped); if raysweep wrote it, results.migrate() re-seals it")
    if _content_digest(table.replace_schema_metadata(None)) != meta[_META_DIGEST].decode():
        raise BadRowFile(f"{where}: its content does not match the checksum recorded when it was written")
    return _frame(table)


def _one_row(frame: pd.DataFrame, where: str, trial_id: str) -> pd.DataFrame:
    """`frame` if it is exactly the one row of `trial_id`: a row file holds its own trial's row and nothing else."""
    ids = list(frame["trial_id"]) if "trial_id" in frame else []
    if ids != [trial_id]:
        raise BadRowFile(f"{where} holds {len(ids)} row(s) of {sorted(set(map(str, ids)))[:3]}, not the one row of "
                         f"trial {trial_id} its name says (a copy, a foreign or an edited file)")
    return frame


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
    """Write (or replace) the row of trial row['trial_id'] atomically. A row that carries the generation of the
    study's lease (every row of a run) is refused (sweep.lease.LeaseLost) once that lease holds another: a driver
    that lost its lease, and its trials, write no row after the driver that took it over."""
    if not pd.isna(row.get("generation")):
        from ..sweep import lease
        lease.fence(storage, (study, lease.STUDY), int(row["generation"]), f"study {study!r}")
    storage.write_bytes(to_parquet([row]), study, ROWS, f"{row['trial_id']}.parquet")


def read_row(storage: Storage, study: str, trial_id: str) -> dict | None:
    """The verified row of one trial, or None if it has none (or an unusable one)."""
    try:
        frame = _one_row(from_parquet(storage.read_bytes(study, ROWS, f"{trial_id}.parquet"), trial_id), trial_id,
                         trial_id)
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
    entries = storage.fs.get_file_info(pafs.FileSelector(storage.path(study, ROWS), allow_not_found=True))
    for entry in sorted(entries, key=lambda e: e.base_name):
        name = entry.base_name
        if not name.endswith(".parquet") or name.startswith("."):
            continue
        where = storage.path(study, ROWS, name)
        try:
            if entry.type != pafs.FileType.File:   # a directory by that name would fail every read of it
                raise BadRowFile(f"{where} is not a file")
            frame = _one_row(from_parquet(storage.read_bytes(study, ROWS, name), where), where,
                             name[: -len(".parquet")])
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
            except OSError as e:   # e.g. a directory an object store cannot move: it stays, skipped by every reader
                log.warning("%s; it could not be moved aside (%s) and is skipped, its trial counts as missing",
                            reason, e)
                continue
            log.warning("%s; moved to %s, its trial counts as missing", reason, storage.path(study, QUARANTINE, aside))
        else:
            log.warning("%s; its trial counts as missing", reason)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_id", "status"])
    return Scan(rows, bad)


def write_manifest(storage: Storage, study: str, trial_ids: list[str]) -> None:
    storage.write_bytes(seal_json({"trial_ids": sorted(trial_ids)}), study, MANIFEST)


def current_ids(storage: Storage, study: str) -> set[str] | None:
    """The trial ids of the study's current spec, or None when it has no usable manifest: none written yet, or one
    that is damaged, unsealed or not a manifest (named in a warning; the next run rewrites it)."""
    if not storage.exists(study, MANIFEST):
        return None
    where = storage.path(study, MANIFEST)
    try:
        ids = unseal_json(storage.read_bytes(study, MANIFEST), where).get("trial_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise Corrupt(where, "not a manifest (no list of trial ids)")
    except (Corrupt, OSError) as e:
        log.warning("%s; treated as absent, so every row on disk counts as current until the next run rewrites it",
                    e)
        return None
    return set(ids)


def recorded_spec(storage: Storage, *study: str) -> dict | None:
    """The spec the study's last run recorded, or None when there is none or it is damaged (named in a warning; the
    next run rewrites it)."""
    if not storage.exists(*study, SPEC):
        return None
    try:
        spec = yaml.safe_load(storage.read_bytes(*study, SPEC))
        if not isinstance(spec, dict):   # a run writes a mapping: anything else is damage, not a spec
            raise ValueError(f"not a mapping but {type(spec).__name__}")
    except (yaml.YAMLError, ValueError) as e:
        log.warning("%s is damaged (%s); treated as absent, the next run rewrites it", storage.path(*study, SPEC),
                    " ".join(str(e).split()))
        return None
    return spec


def split_stale(rows: pd.DataFrame, ids: set[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the current trials, stale rows)."""
    if ids is None:
        return rows, rows.iloc[0:0]
    now = rows["trial_id"].isin(ids)
    return rows[now].reset_index(drop=True), rows[~now].reset_index(drop=True)


def save(df: pd.DataFrame, storage: Storage, *parts: str) -> None:
    """Write a frame of rows as one sealed Parquet file, atomically."""
    records = df.to_dict("records")
    storage.write_bytes(to_parquet(records) if records else _sealed(pa.table({c: [] for c in df.columns})), *parts)


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


def migrate(path: str) -> list[str]:
    """Re-seal as schema 2 the files at `path` (a study directory's row files and results.parquet, or a script's
    results.parquet) that carry no checksum, and return their paths. Readers refuse such files, since a file written
    before checksums (schema 1) and one whose checksum was stripped look alike: migrate only files you know raysweep
    wrote, while no run of the study is going. A row file must still hold exactly the one row of its trial; any
    other file is named and left as it is."""
    storage, name = split(path)
    targets = [((name, ROWS, f), f[: -len(".parquet")]) for f in storage.list(name, ROWS)
               if f.endswith(".parquet") and not f.startswith(".")]
    targets += [((name, CONSOLIDATED), None)] if storage.exists(name, CONSOLIDATED) else []
    migrated = []
    for parts, trial_id in targets:
        where = storage.path(*parts)
        try:
            table = _read_table(storage.read_bytes(*parts), where)
            if _META_DIGEST in (table.schema.metadata or {}):
                continue
            frame = _frame(table) if trial_id is None else _one_row(_frame(table), where, trial_id)
        except (BadRowFile, OSError) as e:
            log.warning("%s; not migrated", e)
            continue
        save(frame, storage, *parts)
        migrated.append(where)
    return migrated
