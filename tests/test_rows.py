"""Row files, the manifest and the recorded spec as the readers meet them on disk: genuine files written by raysweep,
then damaged. Each damage is named in a warning and recovered from; nothing crashes a reader or a run, and nothing
unsealed is trusted. No Ray: the studies are finished, so a run has nothing to train."""

import io
import json
import logging
import time

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from raysweep import cli, results, sweep
from raysweep.storage import Storage


def finished_study(tmp_path):
    """A study of two trials that a run has finished: rows, spec.yaml, manifest.json and results.parquet."""
    spec = sweep.StudySpec.from_dict({"name": "s", "storage": str(tmp_path), "seeds": [0], "sparsities": [0.5],
                                      "dense": False, "grids": [{"methods": ["random", "magnitude"]}],
                                      "hparams": {"training_steps": "1it"}})
    trials = sweep.expand(spec)
    for t in trials:
        results.write_row(Storage(spec.storage), spec.name, {"study": spec.name, **t.columns(), "status": "completed",
                                                             "accuracy": 0.5, "finished_at": time.time()})
    sweep.run_study(spec, verbose=0)
    return spec, [t.trial_id for t in trials], tmp_path / "s"


def status(path, capsys) -> str:
    assert cli.main(["status", str(path)]) == 0
    return " ".join(capsys.readouterr().out.split())


def readers_recover(path, capsys):
    """load, plot and report answer (plot and report exit 0) and return the rows load gives."""
    frame = results.load(str(path))
    assert cli.main(["plot", str(path)]) == 0
    assert cli.main(["report", str(path.parent)]) == 0
    capsys.readouterr()
    return frame


def test_a_row_whose_checksum_was_stripped_is_not_used(tmp_path, capsys, caplog):
    _, ids, path = finished_study(tmp_path)
    row = path / "trials" / f"{ids[0]}.parquet"
    table = pq.read_table(row)
    forged = table.set_column(table.column_names.index("accuracy"), "accuracy", pc.add(table["accuracy"], 0.4))
    pq.write_table(forged.replace_schema_metadata(None), row)
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert "completed 1 diverged 0 failed 0 missing 1" in status(path, capsys)
        frame = readers_recover(path, capsys)
    assert f"{row} carries no checksum" in caplog.text
    assert list(frame["trial_id"]) == [ids[1]] and frame["accuracy"].tolist() == [0.5]
    assert results.read_row(Storage(str(tmp_path)), "s", ids[0]) is None


def test_a_sealed_row_file_must_hold_exactly_its_own_row(tmp_path, capsys, caplog):
    spec, ids, path = finished_study(tmp_path)
    storage = Storage(str(tmp_path))
    row = results.read_row(storage, "s", ids[0])
    storage.write_bytes(results.to_parquet([row, row]), "s", "trials", f"{ids[0]}.parquet")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert "completed 1 diverged 0 failed 0 missing 1" in status(path, capsys)
        assert list(readers_recover(path, capsys)["trial_id"]) == [ids[1]]
    assert f"trials/{ids[0]}.parquet holds 2 row(s)" in caplog.text
    assert results.read_row(storage, "s", ids[0]) is None


def test_schema_1_rows_are_read_only_after_an_explicit_migration(tmp_path, caplog, capsys):
    # schema 1: JSON text in history and layer_sparsities, seconds since the epoch in finished_at, no checksum
    old = pa.Table.from_pylist([{"trial_id": "0123456789abcdef", "status": "completed", "accuracy": 0.9,
                                 "history": json.dumps([{"step": 1, "accuracy": 0.5}]),
                                 "layer_sparsities": json.dumps({"0.weight": 0.5}), "finished_at": 1.7e9}])
    buffer = io.BytesIO()
    pq.write_table(old, buffer)
    storage = Storage(str(tmp_path))
    storage.write_bytes(buffer.getvalue(), "old", "trials", "0123456789abcdef.parquet")
    pq.write_table(pa.concat_tables([old, old]), tmp_path / "old" / "trials" / "fedcba9876543210.parquet")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert results.load(str(tmp_path / "old")).empty   # read as it stands, it is as untrusted as a stripped one
        assert cli.main(["migrate", str(tmp_path / "old")]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said == [f"re-sealed {storage.path('old', 'trials', '0123456789abcdef.parquet')}",
                    "1 file(s) without a checksum re-sealed as schema 2"]
    assert "fedcba9876543210.parquet holds 2 row(s)" in caplog.text   # not one row of its trial: left as it is
    frame = results.load(str(tmp_path / "old"))
    row = frame.iloc[0]
    assert len(frame) == 1 and row["accuracy"] == 0.9
    assert row["history"] == [{"step": 1, "accuracy": 0.5}] and row["layer_sparsities"] == {"0.weight": 0.5}
    assert row["finished_at"] == pd.Timestamp(1.7e9, unit="s", tz="UTC")
    assert pq.read_schema(tmp_path / "old" / "trials" / "0123456789abcdef.parquet").metadata[b"raysweep.schema"] == b"2"
    assert results.migrate(str(tmp_path / "old")) == []   # sealed files are left alone


def test_a_directory_among_the_row_files_is_skipped_and_a_run_moves_it_aside(tmp_path, capsys, caplog):
    spec, ids, path = finished_study(tmp_path)
    row = path / "trials" / f"{ids[0]}.parquet"
    row.rename(tmp_path / "kept")
    row.mkdir()
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert "completed 1 diverged 0 failed 0 missing 1" in status(path, capsys)
        assert list(readers_recover(path, capsys)["trial_id"]) == [ids[1]]
    assert f"{row} is not a file" in caplog.text
    row.rmdir()
    (tmp_path / "kept").rename(row)
    (path / "trials" / "x.parquet").mkdir()
    run = sweep.run_study(spec, verbose=0)   # a foreign name: nothing to train, the directory is set aside
    assert (run.ran, run.skipped, run.missing) == (0, 2, 0)
    assert not (path / "trials" / "x.parquet").exists()
    assert [p.name.split(".")[0] for p in (path / "quarantine").iterdir()] == ["x"]


@pytest.mark.parametrize("manifest", ['{"trial_id', "[1,2,3]", '{"trial_ids": []}'],
                         ids=["truncated", "a-list", "unsealed"])
def test_a_damaged_manifest_is_treated_as_absent_and_the_next_run_rewrites_it(tmp_path, capsys, caplog, manifest):
    spec, ids, path = finished_study(tmp_path)
    # a stale row, so that the manifest's absence shows: it counts as current until a run rewrites the manifest
    results.write_row(Storage(str(tmp_path)), "s", {"trial_id": "0" * 16, "status": "completed", "accuracy": 0.1})
    (path / "manifest.json").write_text(manifest)
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert "3 trials completed 3 diverged 0 failed 0 missing 0" in status(path, capsys)
        assert len(readers_recover(path, capsys)) == 3
    assert f"{path / 'manifest.json'} is corrupt" in caplog.text and "treated as absent" in caplog.text
    run = sweep.run_study(spec, verbose=0)
    assert (run.ran, run.skipped, run.stale) == (0, 2, 1)
    assert results.current_ids(Storage(str(tmp_path)), "s") == set(ids)
    assert "2 trials completed 2 diverged 0 failed 0 missing 0 stale 1" in status(path, capsys)


@pytest.mark.parametrize("recorded", ["- 1\n- 2\n", "name: [unclosed\n", ""], ids=["a-list", "not-yaml", "empty"])
def test_a_damaged_recorded_spec_is_treated_as_absent_and_rewritten(tmp_path, capsys, caplog, recorded):
    spec, _, path = finished_study(tmp_path)
    (path / "spec.yaml").write_text(recorded)
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert len(readers_recover(path, capsys)) == 2
        run = sweep.run_study(spec, verbose=0)
    assert (run.ran, run.skipped) == (0, 2)
    assert f"{path / 'spec.yaml'} is damaged" in caplog.text and "changed since its last run" not in caplog.text
    assert yaml.safe_load((path / "spec.yaml").read_text()) == spec.to_dict()
