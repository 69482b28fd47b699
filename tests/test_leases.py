"""Leases on the storage: one holder at a time, taken over once its holder stops renewing, and only by one taker."""

import json
import threading
import time

import pytest

from raysweep.storage import Storage
from raysweep.sweep.lease import Holder, Lease, LeaseHeld


def test_one_holder_at_a_time_and_release_frees_it(tmp_path):
    storage = Storage(str(tmp_path))
    first = Lease(storage, ("s", "lease.json"), "study 's'")
    second = Lease(storage, ("s", "lease.json"), "study 's'")
    assert first.try_acquire() is None
    held = second.try_acquire()
    assert held is not None and held.holder == first.id and held.what == "study 's'"
    with pytest.raises(LeaseHeld, match=r"study 's' is held by pid \d+ on .* expires in"):
        second.acquire(wait=False)
    assert first.try_acquire() is None          # its holder may take it again (a renewal)
    first.release()
    assert not (tmp_path / "s" / "lease.json").exists()
    assert second.try_acquire() is None


def test_a_holder_that_stops_renewing_is_taken_over_within_its_ttl(tmp_path):
    storage = Storage(str(tmp_path))
    dead = Lease(storage, ("d", "lease.json"), "dense run d", ttl=1.5, beat=0.3).acquire(wait=False)
    alive = Lease(storage, ("d", "lease.json"), "dense run d", ttl=1.5, beat=0.3)
    time.sleep(2.0)
    assert alive.try_acquire() is not None      # renewed by its heartbeat: still held
    dead._stop.set()                            # the holder dies: nobody renews any more
    dead._thread.join()
    started = time.monotonic()
    alive.acquire(wait=True, poll=0.1)
    assert time.monotonic() - started < 1.5 + 0.5
    assert json.loads((tmp_path / "d" / "lease.json").read_text())["holder"] == alive.id
    assert not dead.renew() and dead.lost.is_set()   # a holder that was taken over learns it at its next beat
    alive.release()


def test_only_one_of_many_takers_gets_an_expired_lease(tmp_path):
    storage = Storage(str(tmp_path))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "lease.json").write_text(json.dumps(
        {"holder": "gone", "host": "h", "pid": 1, "what": "x", "since": 0.0, "expires": time.time() - 1}))
    takers = [Lease(storage, ("x", "lease.json"), "x") for _ in range(8)]
    won = []
    barrier = threading.Barrier(len(takers))

    def take(lease):
        barrier.wait()
        if lease.try_acquire() is None:
            won.append(lease.id)

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert json.loads((tmp_path / "x" / "lease.json").read_text())["holder"] == won[0]


def test_a_torn_lease_file_holds_nothing(tmp_path):
    storage = Storage(str(tmp_path))
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "lease.json").write_text('{"holder": "half')
    assert Lease(storage, ("y", "lease.json"), "y").try_acquire() is None


def test_a_lease_of_a_dead_process_on_this_machine_is_free_at_once_and_a_live_ones_is_not(tmp_path):
    import platform
    import subprocess
    import sys
    storage = Storage(str(tmp_path))
    (tmp_path / "k").mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for pid, free in ((live.pid, False), (dead.pid, True)):
            (tmp_path / "k" / "lease.json").write_text(json.dumps(
                {"holder": f"p{pid}", "host": platform.node(), "pid": pid, "what": "study 'k'", "since": time.time(),
                 "expires": time.time() + 600}))   # a killed driver's lease, far from expiring
            taker = Lease(storage, ("k", "lease.json"), "study 'k'")
            assert (taker.try_acquire() is None) is free
            taker.release()
    finally:
        live.kill()
        live.wait()


def _taker_process(tmp_path, study="t"):
    """A real process that takes the study's lease, says so, and stays (until the test kills it)."""
    import subprocess
    import sys
    code = ("import time\n"
            "from raysweep.storage import Storage\n"
            "from raysweep.sweep.lease import Lease\n"
            f"lease = Lease(Storage({str(tmp_path)!r}), ({study!r}, 'lease.json'), 'study {study}')\n"
            "assert lease.try_acquire() is None\n"
            "print(lease.generation, flush=True)\n"
            "time.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


def test_an_unreadable_lease_is_taken_over_however_often_it_occurs(tmp_path):
    import signal
    storage = Storage(str(tmp_path))
    lease = tmp_path / "t" / "lease.json"
    lease.parent.mkdir()
    lease.write_text("{torn")
    driver, generation = _taker_process(tmp_path)   # takes the torn lease (leaving its takeover marker) ...
    driver.send_signal(signal.SIGKILL)                # ... and is killed holding it
    driver.wait()
    assert json.loads(lease.read_text())["generation"] == generation
    lease.write_text("{torn")                         # the same bytes again, a new occurrence
    markers = {p.name for p in lease.parent.glob("lease.json.takeover-*")}
    assert len(markers) == 1                          # the killed taker's
    taker = Lease(storage, ("t", "lease.json"), "study 't'", ttl=0.5)
    time.sleep(0.6)
    assert taker.try_acquire() is None                # was: RecursionError, and blocked until a marker was deleted
    assert taker.generation > generation
    mine = {p.name for p in lease.parent.glob("lease.json.takeover-*")}
    assert len(mine) == 1 and not mine & markers      # its own; the killed one's, older than a TTL, cleaned
    taker.release()
    assert not lease.exists() and not list(lease.parent.glob("lease.json.takeover-*"))


@pytest.mark.parametrize("content", [
    "",                                              # what a create killed between its two steps left (before)
    '{"holder": "h", "host": "x", "pid": 1, "what": "w", "since": 0, "expires": "never"}',
    '{"holder": "h", "host": "x", "pid": true, "what": "w", "since": 0, "expires": 1e300}',
    '{"holder": "h", "host": "x", "pid": 1, "what": "w", "since": 0, "expires": NaN}',
    '{"holder": "h", "host": "x", "pid": 1, "what": "w", "since": 0, "expires": 1e300}',   # would block for good
    '{"holder": "h", "host": "x", "pid": 1, "what": "w", "since": 0, "expires": 1e300, "generation": "1"}',
    '{"holder": "h", "host": "x", "pid": 1, "what": "w", "since": 0}',
    "[1, 2, 3]", "null", "\xff\xfe"])
def test_a_lease_file_that_holds_no_lease_is_taken_over_at_once_never_a_type_error(tmp_path, content):
    storage = Storage(str(tmp_path))
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "lease.json").write_text(content, errors="surrogateescape")
    unreadable = (tmp_path / "u" / "lease.json").read_bytes()
    taker = Lease(storage, ("u", "lease.json"), "u")
    assert taker.try_acquire() is None
    assert json.loads((tmp_path / "u" / "lease.json").read_text())["holder"] == taker.id
    taker.release()
    assert Holder.parse(unreadable) is None


def test_a_killed_create_leaves_no_partial_file(tmp_path):
    import subprocess
    import sys
    # a create of 256 MiB, killed as soon as anything appears in its directory: before, the target appeared empty
    # first (O_EXCL) and was filled after; now the bytes go to a temporary that is linked to the target once complete
    size = 256 * 1024 ** 2
    code = ("from raysweep.storage import Storage\n"
            f"Storage({str(tmp_path)!r}).create_new(b'x' * {size}, 'c', 'lease.json')\n")
    (tmp_path / "c").mkdir()
    creator = subprocess.Popen([sys.executable, "-c", code])
    while not any((tmp_path / "c").iterdir()) and creator.poll() is None:
        time.sleep(0.001)
    creator.kill()
    creator.wait()
    target = tmp_path / "c" / "lease.json"
    existed = target.exists()
    assert not existed or target.stat().st_size == size
    storage = Storage(str(tmp_path))
    assert storage.create_new(b"mine", "c", "lease.json") is not existed
    assert storage.create_new(b"theirs", "c", "lease.json") is False
    assert len([p for p in (tmp_path / "c").iterdir() if p.suffix == ".tmp"]) <= 1   # the killed one's, if any


def test_the_generation_increases_with_every_acquisition(tmp_path):
    storage = Storage(str(tmp_path))
    seen = []
    for _ in range(3):   # taken and released: a fresh lease never reuses a number
        lease = Lease(storage, ("g", "lease.json"), "g")
        assert lease.try_acquire() is None
        seen.append(lease.generation)
        lease.release()
    # a holder whose clock ran far ahead issued a generation beyond this machine's clock: the next is above it
    (tmp_path / "g" / "lease.json").write_text(json.dumps(
        {"holder": "fast", "host": "h", "pid": 1, "what": "g", "since": 0.0, "expires": 0.0, "generation": 2 ** 52}))
    lease = Lease(storage, ("g", "lease.json"), "g")
    assert lease.try_acquire() is None
    seen.append(lease.generation)
    lease.release()
    lease = Lease(storage, ("g", "lease.json"), "g")   # released, yet its number is remembered beside the lease
    assert lease.try_acquire() is None
    seen.append(lease.generation)
    (tmp_path / "g" / "lease.generation").unlink()      # the counter lost: the clock still gives a new number
    lease.release()
    lease = Lease(storage, ("g", "lease.json"), "g")
    assert lease.try_acquire() is None
    assert seen == sorted(set(seen)) and seen[3] == 2 ** 52 + 1 and seen[4] == 2 ** 52 + 2
    assert lease.generation not in seen
    lease.release()


def test_a_holder_taken_over_while_paused_writes_nothing_more(tmp_path):
    from raysweep import results
    from raysweep.sweep import dense as dense_store
    from raysweep.sweep.lease import LeaseLost, fence
    storage = Storage(str(tmp_path))
    paused = Lease(storage, ("s", "lease.json"), "study 's'", ttl=1.0, beat=0.2).acquire(wait=False)
    row = {"trial_id": "t1", "status": "completed", "accuracy": 0.5, "generation": paused.generation}
    results.write_row(storage, "s", row)
    paused._stop.set()    # what a pause does to its heartbeat
    paused._thread.join()
    time.sleep(1.2)
    paused.check()        # expired, but nobody took it: kept, and renewed at once
    assert json.loads((tmp_path / "s" / "lease.json").read_text())["expires"] > time.time()
    time.sleep(1.2)
    other = Lease(storage, ("s", "lease.json"), "study 's'").acquire(wait=True, poll=0.1)
    assert other.generation > paused.generation
    written = (tmp_path / "s" / "trials" / "t1.parquet").read_bytes()
    with pytest.raises(LeaseLost, match=r"study 's': this process lost its lease .* now study 's' is held by pid"):
        results.write_row(storage, "s", {**row, "accuracy": 0.25})   # the paused holder's trial, late
    assert (tmp_path / "s" / "trials" / "t1.parquet").read_bytes() == written
    with pytest.raises(LeaseLost, match="lost its lease"):
        paused.check()    # the holder itself learns it the moment it runs again
    assert not paused.renew()
    results.write_row(storage, "s", {**row, "generation": other.generation, "accuracy": 0.75})
    assert results.read_row(storage, "s", "t1")["accuracy"] == 0.75
    other.release()
    with pytest.raises(LeaseLost, match="no lease is there now"):   # a released lease fences its writers out too
        fence(storage, ("s", "lease.json"), other.generation, "study 's'")
    # a dense run's result likewise, under its own lease
    dense = Lease(storage, ("dense", "d", "lease.json"), "dense run d").acquire(wait=False)
    dense_store.write_result(storage, "d", {"dense_id": "d", "status": "completed"}, dense.generation)
    with pytest.raises(LeaseLost):
        dense_store.write_result(storage, "d", {"dense_id": "d", "status": "diverged"}, dense.generation - 1)
    assert dense_store.read_result(storage, "d")["status"] == "completed"
    dense.release()


def test_a_trial_of_a_holder_taken_over_writes_no_state_and_no_checkpoint(tmp_path):
    # the trial processes of a paused driver run on: every file of their runs (setup, state.pt, step weights) is
    # fenced like their rows, so they stop at their next write instead of training to the end
    from raysweep import data, models, training
    from raysweep.sweep.lease import LeaseLost
    from raysweep.sweep.trial import Context, Workdir
    storage = Storage(str(tmp_path))
    paused = Lease(storage, ("s", "lease.json"), "study 's'", ttl=0.5)
    assert paused.try_acquire() is None
    ctx = Context(storage=str(tmp_path), study="s", generation=paused.generation)
    workdir = Workdir(ctx, ("s", "lease.json"), "s", "scratch", "t")   # allowed while its lease holds
    ds = data.get("digits")
    hp = training.preset("digits").replace(training_steps="3it", lr_drops=())
    time.sleep(0.6)
    other = Lease(storage, ("s", "lease.json"), "study 's'").acquire(wait=True, poll=0.1)
    model = models.create("lenet_300_100", num_classes=ds.num_classes, input_shape=ds.input_shape)
    with pytest.raises(LeaseLost, match="lost its lease"):
        training.train(model, ds, hp, checkpoint_dir=workdir.path, save_steps=[0], device="cpu",
                       guard=workdir.guard)
    with pytest.raises(LeaseLost):
        workdir.setup_seconds(1.0)
    with pytest.raises(LeaseLost):
        Workdir(ctx, ("s", "lease.json"), "s", "scratch", "u")
    assert list(workdir.path.iterdir()) == [] and not (tmp_path / "s" / "scratch" / "u").exists()
    other.release()


def test_the_lease_ttl_can_be_set_from_the_environment(tmp_path, monkeypatch):
    from raysweep.sweep.spec import SpecError
    monkeypatch.setenv("RAYSWEEP_LEASE_TTL", "2.5")
    lease = Lease(Storage(str(tmp_path)), ("e", "lease.json"), "e")
    assert (lease.ttl, lease.beat) == (2.5, 0.5)
    monkeypatch.setenv("RAYSWEEP_LEASE_TTL", "soon")
    with pytest.raises(SpecError, match="RAYSWEEP_LEASE_TTL: .* not 'soon'"):
        Lease(Storage(str(tmp_path)), ("e", "lease.json"), "e")


@pytest.mark.ray
def test_a_driver_paused_past_its_lease_stops_and_writes_nothing_more(tmp_path):
    """Issue 15 item 5: a driver SIGSTOPped past its lease's TTL loses it to a second driver started with --wait;
    after SIGCONT it stops at once (exit 1, one line) and writes no row, manifest, spec or results after the
    second one, so every trial's row is written once, by one driver or the other."""
    import os
    import re
    import signal
    import subprocess
    import sys

    import yaml

    from raysweep import results
    from test_sweep_ray import spec
    study = spec(tmp_path, name="p", seeds=[0, 1, 2, 3], sparsities=[0.3, 0.6], pack_size=1, max_concurrent=1,
                 hparams={"training_steps": "1it", "lr_drops": []})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(study.to_dict()))
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAYSWEEP_LEASE_TTL": "3"}

    def driver(name, *options):
        out, err = open(tmp_path / f"{name}.out", "w"), open(tmp_path / f"{name}.err", "w")
        return subprocess.Popen([sys.executable, "-m", "raysweep.cli", "run", str(path), *options], env=env,
                                start_new_session=True, stdout=out, stderr=err)

    study_dir, rows = tmp_path / "p", tmp_path / "p" / "trials"
    first = driver("first")
    try:
        deadline = time.time() + 120
        while not list(rows.glob("*.parquet")) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None and list(rows.glob("*.parquet")), (tmp_path / "first.err").read_text()[-2000:]
        os.kill(first.pid, signal.SIGSTOP)   # the driver alone: its trials run on, as a suspended driver's would
        generation = json.loads((study_dir / "lease.json").read_text())["generation"]
        second = driver("second", "--wait")
        assert second.wait(timeout=180) == 0, (tmp_path / "second.err").read_text()[-2000:]
        written = {p.name: p.stat().st_mtime_ns for p in study_dir.rglob("*") if p.is_file() and "tune" not in p.parts}
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=120) == 1
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    err = (tmp_path / "first.err").read_text()
    assert re.search(r"^error: study 'p': this process lost its lease \(.*\); it stopped and writes nothing more$",
                     err, re.M), err[-2000:]
    after = {p.name: p.stat().st_mtime_ns for p in study_dir.rglob("*") if p.is_file() and "tune" not in p.parts}
    assert after == written   # not one file of the study (rows, manifest, spec.yaml, results.parquet) touched again
    frame = results.load(str(study_dir))
    assert len(frame) == 8 and set(frame["status"]) == {"completed"}
    ran, done = map(int, re.search(r"(\d+) trials finished in this run, (\d+) already done",
                                   (tmp_path / "second.out").read_text()).groups())
    mine = frame["generation"] == generation
    assert done == mine.sum() >= 1 and ran == (~mine).sum() == 8 - done
    assert frame.loc[~mine, "generation"].nunique() == 1 and (frame.loc[~mine, "generation"] > generation).all()
