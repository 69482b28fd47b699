"""Runs that never mix, never go silently wrong and never stall: each test is one of issue 10's cases, on a real local
Ray cluster, real files and real signals."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
import torch
import yaml

from raysweep import cli, results, sweep
from raysweep.storage import Storage
from raysweep.sweep import dense as dense_store
from raysweep.sweep.lease import Lease
from raysweep.training import checkpoints
from test_sweep_ray import spec

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_diverged_dense_run_makes_its_dependents_diverged_once_and_never_retried(tmp_path):
    study = spec(tmp_path, dense=True, hparams={"training_steps": "3ep", "lr_drops": [], "lr": 1000.0},
                 grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"]),
                        sweep.Grid(methods=["ltr"], prune_at=["init"])])
    run = sweep.run_study(study, verbose=0)
    rows = run.frame.set_index("method")
    assert run.failed == 0 and set(rows["status"]) == {"diverged"} and len(rows) == 3
    dense_id = rows.loc["dense", "dense_id"]
    for method in ("magnitude", "ltr"):
        assert re.match(rf"the dense run {dense_id} diverged at step \d+, before its checkpoint\(s\) \['end'\]",
                        rows.loc[method, "error"])
    saved = dense_store.read_result(Storage(str(tmp_path)), dense_id)
    assert saved["status"] == "diverged" and "end" not in saved["checkpoints"]
    for name in saved["checkpoints"].values():   # result.json lists only files that exist
        assert (tmp_path / "dense" / dense_id / name).exists()
    again = sweep.run_study(study, verbose=0)
    assert (again.ran, again.skipped, again.dense_trainings) == (0, 3, 0)


def _flip(path, count=64):
    """Flip `count` bytes in the middle of a file (inside a checkpoint's tensor data)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_dense_checkpoint_is_reported_retrained_and_never_used(tmp_path, caplog):
    study = spec(tmp_path, grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    first = sweep.run_study(study, verbose=0).frame.iloc[0]
    dense_dir = tmp_path / "dense" / first["dense_id"]
    end = dense_dir / json.loads((dense_dir / "result.json").read_text())["checkpoints"]["end"]
    _flip(end)
    with pytest.raises(Exception, match="is corrupt"):
        checkpoints.load_weights(end)
    (tmp_path / "s" / "trials" / f"{first['trial_id']}.parquet").unlink()   # the trial runs again
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        again = sweep.run_study(study, verbose=0)
    assert str(end) in caplog.text and "is corrupt" in caplog.text
    assert again.dense_trainings == 1 and again.ran == 1 and again.failed == 0
    row = again.frame.iloc[0]
    assert row["status"] == "completed" and row["accuracy"] == first["accuracy"]   # same seed, same dense run
    assert list(dense_dir.glob(f"{end.name}.corrupt-*"))                       # set aside, not deleted


def test_corrupt_foreign_and_duplicate_row_files_never_block_or_count_twice(tmp_path, caplog):
    study = spec(tmp_path, sparsities=[0.5, 0.9])
    first = sweep.run_study(study, verbose=0).frame
    rows = tmp_path / "s" / "trials"
    broken, kept = sorted(first["trial_id"])
    good = (rows / f"{kept}.parquet").read_bytes()
    (rows / f"{broken}.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    (rows / f"{kept} (copy).parquet").write_bytes(good)
    (rows / "foreign.parquet").write_bytes(good)
    # what a write killed mid-way leaves: 0-byte temporaries, cleaned by the next run
    leftovers = [rows / f".{kept}.parquet.0a1b.tmp", tmp_path / "s" / "scratch" / "x" / ".state.pt.zz.tmp"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        df = results.load(str(tmp_path / "s"))
    assert list(df["trial_id"]) == [kept]
    for name in (f"{broken}.parquet", f"{kept} (copy).parquet", "foreign.parquet"):
        assert name in caplog.text
    assert cli.main(["status", str(tmp_path / "s")]) == 0 and cli.main(["plot", str(tmp_path / "s")]) == 0
    again = sweep.run_study(study, verbose=0)
    assert (again.ran, again.skipped) == (1, 1) and sorted(again.frame["trial_id"]) == [broken, kept]
    aside = sorted(p.name.rsplit(".", 1)[0] for p in (tmp_path / "s" / "quarantine").iterdir())
    assert aside == sorted([f"{broken}.parquet", f"{kept} (copy).parquet", "foreign.parquet"])
    assert not any(p.exists() for p in leftovers)
    # a row whose bytes changed after it was written fails its checksum: its trial runs again
    target = rows / f"{kept}.parquet"
    data = bytearray(target.read_bytes())
    at = data.find(b"random")
    data[at] = ord("R")
    target.write_bytes(bytes(data))
    third = sweep.run_study(study, verbose=0)
    assert (third.ran, third.skipped) == (1, 1)


def _driver(path, *options, stdout=subprocess.PIPE):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "raysweep.cli", "run", str(path), *options], env=env,
                            start_new_session=True, stdout=stdout, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_ctrl_c_exits_130_and_counts_only_the_rows_that_exist(tmp_path):
    # each trial alone, so that rows land one by one (two packs of six could finish before the signal arrives)
    study = spec(tmp_path, name="int", seeds=[0, 1], sparsities=[0.3, 0.6, 0.9], pack_size=1,
                 hparams={"training_steps": "8ep", "lr_drops": []}, grids=[sweep.Grid(methods=["random", "magnitude"])])
    path = tmp_path / "int.yaml"
    path.write_text(yaml.safe_dump(study.to_dict()))
    rows = tmp_path / "int" / "trials"
    driver = _driver(path)
    _wait_for(lambda: len(list(rows.glob("*.parquet"))) >= 2 or driver.poll() is not None, 300, "two rows")
    os.killpg(driver.pid, signal.SIGINT)   # what Ctrl-C in a terminal sends: the whole foreground group
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-2000:]
    finished = results.load(str(tmp_path / "int"))
    finished = finished[finished["status"].isin(results.FINISHED)]
    assert 2 <= len(finished) < 12
    assert f"interrupted: {len(finished)} trials finished in this run, 0 already done" in out


def test_a_second_driver_of_a_study_refuses_or_waits_and_dense_runs_are_trained_once_per_storage(tmp_path):
    base = spec(tmp_path, name="a", seeds=[0], sparsities=[0.3, 0.6, 0.9],
                hparams={"training_steps": "6ep", "lr_drops": []},
                grids=[sweep.Grid(methods=["random", "magnitude"]), sweep.Grid(methods=["magnitude"],
                                                                              prune_at=["end"])])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(base.to_dict()))
    b.write_text(yaml.safe_dump(base.replace(name="b", grids=[sweep.Grid(methods=["ltr"], prune_at=["init"])])
                                .to_dict()))
    first, other = _driver(a, "--quiet"), _driver(b, "--quiet")     # two studies sharing one dense run
    _wait_for(lambda: (tmp_path / "a" / "lease.json").exists() or first.poll() is not None, 120, "a's lease")
    refused = subprocess.run([sys.executable, "-m", "raysweep.cli", "run", str(a)], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1 and "study 'a' is held by pid" in refused.stderr, refused.stderr
    waiting = _driver(a, "--wait", "--quiet")
    outs = [p.communicate(timeout=600) for p in (first, other, waiting)]
    assert [p.returncode for p in (first, other, waiting)] == [0, 0, 0], [o[1][-1500:] for o in outs]
    trained = [int(re.search(r"(\d+) dense trainings", o[0]).group(1)) for o in outs]
    assert trained[0] + trained[1] == 1 and trained[2] == 0   # the shared dense run was trained once
    assert "0 trials finished in this run, 9 already done" in outs[2][0]
    assert len(results.load(str(tmp_path / "a"))) == 9 and len(results.load(str(tmp_path / "b"))) == 3


def _trial_pids():
    """The processes running this cluster's Tune trials: workers ('ray::ImplicitFunc...') whose raylet this test
    process started (other clusters may run on the same machine)."""
    def parent(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    found = []
    for entry in os.listdir("/proc"):
        try:
            pid = int(entry)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::ImplicitFunc") and parent(parent(pid)) == os.getpid():
                    found.append(pid)
        except (ValueError, OSError):
            continue
    return found


def test_a_killed_trainer_resumes_at_once_and_counts_all_its_time(tmp_path):
    study = spec(tmp_path, dense=True, sparsities=[0.9], hparams={"training_steps": "150ep", "lr_drops": []},
                 grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    run, box = None, {}

    def drive():
        box["run"] = sweep.run_study(study, verbose=0)

    thread = threading.Thread(target=drive)
    thread.start()
    dense_state = None
    _wait_for(lambda: list((tmp_path / "dense").glob("*/state.pt")), 300, "the dense run's first state")
    dense_state = next((tmp_path / "dense").glob("*/state.pt"))
    before = checkpoints.load(dense_state)["wall_time"]
    for pid in _trial_pids():
        os.kill(pid, signal.SIGKILL)
    killed = time.time()
    scratch = tmp_path / "s" / "scratch"
    _wait_for(lambda: list(scratch.glob("*/state.pt")) or not thread.is_alive(), 600, "the trial's first state")
    trial_state = next(scratch.glob("*/state.pt"), None)
    trial_before = checkpoints.load(trial_state)["wall_time"] if trial_state else 0.0
    if trial_state is not None:
        for pid in _trial_pids():
            os.kill(pid, signal.SIGKILL)
    thread.join(timeout=900)
    run = box["run"]
    print(f"finished {time.time() - killed:.1f} s after the dense trainer was killed")
    assert run.dense_trainings == 1 and run.failed == 0 and set(run.frame["status"]) == {"completed"}
    dense = run.frame[run.frame["method"] == "dense"].iloc[0]
    assert dense["steps"] == 150 * 23 and len(dense["history"]) == 150   # resumed, not restarted nor cut short
    assert dense["wall_time"] >= before                               # the killed attempt's time counts
    pruned = run.frame[run.frame["method"] == "magnitude"].iloc[0]
    assert pruned["wall_time"] >= trial_before


def test_a_dense_run_held_elsewhere_is_waited_for_without_a_slot_and_taken_over_when_its_holder_dies(tmp_path):
    study = spec(tmp_path, grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    dense_id = sweep.expand(study)[0].dense_id
    elsewhere = Lease(Storage(str(tmp_path)), ("dense", dense_id, "lease.json"), "dense run").acquire(wait=False)
    box = {}
    thread = threading.Thread(target=lambda: box.update(run=sweep.run_study(study, verbose=0)))
    thread.start()
    time.sleep(8)
    assert ray.available_resources().get("CPU") == 2, "a waiting study holds no trial slot"
    assert not (tmp_path / "dense" / dense_id / "result.json").exists()
    elsewhere._stop.set()      # its holder dies: the lease is no longer renewed
    elsewhere._thread.join()
    died = time.time()
    _wait_for(lambda: json.loads((tmp_path / "dense" / dense_id / "lease.json").read_text())["holder"]
              != elsewhere.id, 60, "the takeover")
    assert time.time() - died < 10 + 3   # the lease's time to live, and a poll
    thread.join(timeout=600)
    assert box["run"].dense_trainings == 1 and box["run"].frame.iloc[0]["status"] == "completed"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_nothing_read_from_storage_runs_code(tmp_path):
    marker = tmp_path / "payload-ran"
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    torch.save({"run": _Payload(str(marker))}, crafted / "state.pt")
    assert checkpoints.load_state(crafted, {"run": {}}) is None   # refused (weights_only), set aside, never used
    assert not marker.exists() and list(crafted.glob("state.pt.corrupt-*"))
    # the same file where a trial resumes from: the trial starts afresh and completes
    study = spec(tmp_path)
    state = tmp_path / "s" / "scratch" / sweep.expand(study)[0].trial_id / "state.pt"
    state.parent.mkdir(parents=True)
    torch.save({"run": _Payload(str(marker))}, state)
    run = sweep.run_study(study, verbose=0)
    assert not marker.exists(), "a crafted state.pt ran its payload"
    assert run.frame.iloc[0]["status"] == "completed"
