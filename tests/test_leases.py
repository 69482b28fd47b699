"""Leases on the storage: one holder at a time, taken over once its holder stops renewing, and only by one taker."""

import json
import threading
import time

import pytest

from raysweep.storage import Storage
from raysweep.sweep.lease import Lease, LeaseHeld


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
