"""Where raysweep writes: nothing leaves the storage root through a symbolic link below it (the root itself may be
one), and a storage that cannot hold a study (a file, /proc, an unknown scheme, S3 without a bucket or unreachable)
is one line and exit 2 before Ray starts, within seconds, with nothing written. Real links, files and sockets."""

import logging
import os
import socket
import time

import pytest
import ray
import yaml

from raysweep import cli, results, sweep
from s3_server import free_port, moto_endpoint
from raysweep.storage import OutsideStorage, Storage, check
from raysweep.sweep import dense as dense_store

SPEC = {"name": "s", "seeds": [0], "sparsities": [0.5], "dense": False, "grids": [{"methods": ["random"]}],
        "hparams": {"training_steps": "1it"}}


def _tree(path):
    """Every file below `path` with its bytes (links not followed): what a test compares before and after."""
    return {p: open(p, "rb").read() for p in sorted(map(str, path.rglob("*"))) if os.path.isfile(p)
            and not os.path.islink(p)}


def _study(tmp_path):
    """A finished study (rows as a run leaves them, no Ray) in tmp_path/runs/s, and a directory outside it."""
    spec = sweep.StudySpec.from_dict({**SPEC, "storage": str(tmp_path / "runs")})
    storage = Storage(spec.storage)
    for t in sweep.expand(spec):
        results.write_row(storage, "s", {"study": "s", **t.columns(), "status": "completed", "accuracy": 0.5,
                                         "finished_at": time.time()})
    results.write_manifest(storage, "s", [t.trial_id for t in sweep.expand(spec)])
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "storage": str(tmp_path / "runs")}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the user's own file")
    return spec, storage, outside


def test_a_quarantine_linked_elsewhere_receives_nothing(tmp_path, caplog):
    spec, storage, outside = _study(tmp_path)
    (tmp_path / "runs" / "s" / "quarantine").symlink_to(outside)
    junk = tmp_path / "runs" / "s" / "trials" / "junk.parquet"
    junk.write_bytes(b"not parquet")
    before = _tree(outside)
    # the damaged file stays where it is, a warning names the link, and the run goes on (here: nothing left to do)
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert cli.main(["run", str(tmp_path / "spec.yaml")]) == 0
    assert f"{tmp_path}/runs/s/quarantine is a symbolic link (to {outside})" in caplog.text
    assert junk.read_bytes() == b"not parquet" and _tree(outside) == before and not ray.is_initialized()


def test_links_below_the_root_are_refused_for_every_write(tmp_path):
    spec, storage, outside = _study(tmp_path)
    before = _tree(outside)
    study = tmp_path / "runs" / "s"
    row = {"study": "s", **sweep.expand(spec)[0].columns(), "status": "completed", "accuracy": 0.9,
           "finished_at": time.time()}
    # trials/ linked elsewhere: a row is not written into it
    (study / "trials").rename(tmp_path / "moved")
    (study / "trials").symlink_to(outside)
    with pytest.raises(OutsideStorage, match="trials is a symbolic link"):
        results.write_row(storage, "s", row)
    (study / "trials").unlink()
    (tmp_path / "moved").rename(study / "trials")
    # a row file linked to a file outside: the new row replaces the link, the file it pointed to is untouched
    path = study / "trials" / f"{row['trial_id']}.parquet"
    path.unlink()
    path.symlink_to(outside / "keep.txt")
    results.write_row(storage, "s", row)
    assert not path.is_symlink() and results.read_row(storage, "s", row["trial_id"])["accuracy"] == 0.9
    # dense/<id> linked elsewhere: no result, checkpoint directory, move, listing for a trial's own writes
    (tmp_path / "runs" / "dense").mkdir()
    (tmp_path / "runs" / "dense" / "d1").symlink_to(outside)
    for write in (lambda: dense_store.write_result(storage, "d1", {"steps": 1}),
                  lambda: storage.local_path("dense", "d1"), lambda: storage.makedirs("dense", "d1", "x"),
                  lambda: storage.create_new(b"x", "dense", "d1", "lease.json"),
                  lambda: storage.move(("dense", "d1", "keep.txt"), ("dense", "d1", "aside")),
                  lambda: storage.delete("dense", "d1", "keep.txt"), lambda: storage.remove_dir("dense", "d1"),
                  lambda: storage.write_bytes(b"x", "..", "escaped")):
        with pytest.raises(OutsideStorage):
            write()
    # a link itself may be removed: the file it points to stays
    storage.delete("dense", "d1")
    assert not (tmp_path / "runs" / "dense" / "d1").exists() and _tree(outside) == before
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_the_storage_root_itself_may_be_a_link(tmp_path, scheme):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    storage = Storage(f"{scheme}{tmp_path / 'link'}")
    storage.write_bytes(b"x", "s", "trials", "a.parquet")
    storage.move(("s", "trials", "a.parquet"), ("s", "quarantine", "a"))
    assert (tmp_path / "real" / "s" / "quarantine" / "a").read_bytes() == b"x"
    assert check(storage.uri, "s") == []


def test_a_storage_that_cannot_hold_a_study_is_one_line_before_ray(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    silent = socket.socket()   # accepts connections, never answers: a stalled endpoint
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    cases = {str(tmp_path / "afile"): "is a file, not a directory",
             "/proc/raysweep-x": "cannot write in /proc",
             "http://example.invalid/x": "cannot use 'http://example.invalid/x'",
             "s3://": "names no bucket",
             f"s3://bucket/x?endpoint_override=127.0.0.1:{free_port()}&scheme=http": "cannot reach s3://bucket/x",
             f"s3://bucket/x?endpoint_override=127.0.0.1:{silent.getsockname()[1]}&scheme=http":
                 "cannot reach s3://bucket/x"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    before = _tree(tmp_path)
    try:
        for storage, expected in cases.items():
            started = time.monotonic()
            assert cli.main(["run", str(tmp_path / "spec.yaml"), "--storage", storage]) == 2, storage
            seconds = time.monotonic() - started
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1 and err[0].startswith("error: storage: ") and expected in err[0], (storage, err)
            assert seconds < 15, f"{storage} took {seconds:.1f} s"   # pyarrow's defaults retry for minutes
    finally:
        silent.close()
    assert not ray.is_initialized() and _tree(tmp_path) == before
    assert not os.path.exists("/proc/raysweep-x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    assert check(str(tmp_path / "ro"), "s", "dense") == [f"storage: cannot write in {tmp_path / 'ro'} (read-only, "
                                                         f"not writable by this user, or full)"]


def test_missing_directories_are_fine_and_links_below_are_named(tmp_path):
    assert check(str(tmp_path / "new" / "deeper"), "s", "dense") == []
    (tmp_path / "runs" / "s" / "tune").mkdir(parents=True)
    (tmp_path / "runs" / "s" / "tune" / "x").symlink_to(tmp_path)
    (problem,) = check(str(tmp_path / "runs"), "s")
    assert problem.startswith(f"storage: {tmp_path}/runs/s/tune/x is a symbolic link")
    (tmp_path / "runs" / "t").symlink_to(tmp_path / "runs" / "s")
    assert check(str(tmp_path / "runs"), "t")[0].startswith(f"storage: {tmp_path}/runs/t is a symbolic link")


@pytest.fixture
def s3():
    with moto_endpoint() as endpoint:
        yield endpoint


def test_an_s3_bucket_must_exist_and_a_location_be_a_directory(s3):
    query = f"?endpoint_override={s3}&scheme=http&region=us-east-1"
    assert check(f"s3://nobucket/runs{query}", "s") == [f"storage: s3://nobucket/runs{query}: the bucket "
                                                         f"'nobucket' does not exist (create it first)"]
    import pyarrow.fs as pafs
    pafs.S3FileSystem(endpoint_override=s3, scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir("bkt")
    storage = Storage(f"s3://bkt/runs{query}")
    assert check(storage.uri, "s") == []
    storage.write_bytes(b"x", "s")
    assert check(storage.uri, "s") == [f"storage: s3://bkt/runs/s{query} is a file, not a directory"]


def test_readers_of_an_empty_or_missing_directory_answer_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "norows" / "trials").mkdir(parents=True)
    cases = [(["status", "empty"], "{tmp}/empty is neither a study directory"),
             (["status", "missing"], "{tmp}/missing is neither a study directory"),
             (["plot", "empty"], "no results under {tmp}/empty"),
             (["plot", "missing"], "no results under {tmp}/missing"),
             (["plot", "norows"], "{tmp}/norows holds no rows yet: nothing to plot"),
             (["report", "empty"], "{tmp}/empty holds neither script outputs"),
             (["report", "missing"], "{tmp}/missing is not a directory of studies or script outputs"),
             (["status", "http://example.invalid/x"], "http://example.invalid/x: Unrecognized filesystem type")]
    before = _tree(tmp_path)
    for (command, where), expected in cases:
        where = where if "://" in where else str(tmp_path / where)
        try:
            code = cli.main([command, where])
        except SystemExit as e:   # the readers' directory lookup exits at once, wherever it is called from
            code = e.code
        assert code == 2, (command, where)
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: " + expected.format(tmp=tmp_path)), (command, line)
    assert _tree(tmp_path) == before and not (tmp_path / "missing").exists()
