"""Leases on the study's storage: who may run a study, or train a dense run, right now.

A lease is a small JSON file naming its holder and when it expires. Its holder renews it every BEAT seconds from a
background thread; a holder that dies stops renewing, and its lease is taken over TTL seconds later at most, or at
once by a process of the same machine, which can see that the holder's pid no longer exists. The
storage is the one thing every driver of a study (on this cluster, another cluster or a laptop) shares, so the leases
live there rather than in a Ray actor, which only its own cluster could see.

Taking a lease is exclusive on local storage: a free lease is created with O_EXCL, and an expired one is taken by
whoever first creates (O_EXCL) the marker naming that expired holder. Object stores have no create-if-absent through pyarrow: there the taker writes, waits SETTLE seconds and
re-reads, and the last writer wins, which is enough for drivers that start seconds apart.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from ..storage import Storage

TTL = 10.0
BEAT = 2.0
SETTLE = 1.0


@dataclass
class Holder:
    holder: str
    host: str
    pid: int
    what: str
    since: float
    expires: float

    def describe(self) -> str:
        left = self.expires - time.time()
        return (f"{self.what} is held by pid {self.pid} on {self.host} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))} "
                f"(its lease {'expires in %.0f s' % left if left > 0 else 'has expired'})")

    def gone(self) -> bool:
        """Whether the holder is a process of this machine that no longer exists: its lease is free at once."""
        if self.host != platform.node() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:   # alive, under another user
            return False
        return False


class LeaseHeld(RuntimeError):
    def __init__(self, holder: Holder):
        self.holder = holder
        super().__init__(holder.describe())


class Lease:
    """The lease at `parts` of `storage` for `what` (a study, a dense run). Use try_acquire/release, or `with`."""

    def __init__(self, storage: Storage, parts: tuple, what: str, ttl: float = TTL, beat: float = BEAT):
        self.storage, self.parts, self.what, self.ttl, self.beat = storage, tuple(parts), what, ttl, beat
        self.id = uuid.uuid4().hex
        self.since = time.time()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._markers: list[tuple] = []

    def _mine(self) -> bytes:
        now = time.time()
        return json.dumps(asdict(Holder(self.id, platform.node(), os.getpid(), self.what, self.since,
                                        now + self.ttl))).encode()

    def current(self) -> Holder | None:
        try:
            return Holder(**json.loads(self.storage.read_bytes(*self.parts)))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):   # a torn or foreign file holds nothing
            return Holder("", "?", 0, self.what, 0.0, 0.0)

    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free or expired; return None when taken, else the live holder."""
        if self.storage.create_new(self._mine(), *self.parts):
            return self._confirm()
        held = self.current()
        if held is None:
            return self.try_acquire()
        if held.holder == self.id:
            self.renew()
            return None
        if held.expires > time.time() and not held.gone():
            return held
        if self.storage.local:
            marker = (*self.parts[:-1], f"{self.parts[-1]}.takeover-{held.holder or 'unreadable'}-{held.expires}")
            if not self.storage.create_new(b"", *marker):   # another taker got this expired lease first
                return self.try_acquire()
            self._markers.append(marker)
        self.storage.write_bytes(self._mine(), *self.parts)
        return self._confirm()

    def _confirm(self) -> Holder | None:
        if not self.storage.local:
            time.sleep(SETTLE)
        held = self.current()
        return None if held is not None and held.holder == self.id else held

    def renew(self) -> bool:
        held = self.current()
        if held is None or held.holder != self.id:
            self.lost.set()
            return False
        self.storage.write_bytes(self._mine(), *self.parts)
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        held = self.current()
        if held is not None and held.holder == self.id:
            self.storage.delete(*self.parts)
        for marker in self._markers:   # by now no taker still acts on the expired holder a marker names
            self.storage.delete(*marker)
        self._markers.clear()

    def keep(self) -> "Lease":
        """Renew in the background until release()."""
        def beat():
            while not self._stop.wait(self.beat):
                try:
                    if not self.renew():
                        return
                except OSError:   # a storage hiccup: try again at the next beat, the lease outlives a few
                    continue
        self._stop.clear()
        self._thread = threading.Thread(target=beat, name=f"lease {self.what}", daemon=True)
        self._thread.start()
        return self

    def acquire(self, wait: bool, poll: float = 1.0) -> "Lease":
        """Take the lease and keep it; if another holder has it: LeaseHeld, or wait for it when `wait`."""
        while True:
            held = self.try_acquire()
            if held is None:
                return self.keep()
            if not wait:
                raise LeaseHeld(held)
            time.sleep(poll)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
