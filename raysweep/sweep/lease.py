"""Leases on the study's storage: who may run a study, or train a dense run, right now.

A lease is a small JSON file naming its holder and when it expires. Its holder renews it every BEAT seconds from a
background thread; a holder that dies stops renewing, and its lease is taken over TTL seconds later at most, or at
once by a process of the same machine, which can see that the holder's pid no longer exists. The
storage is the one thing every driver of a study (on this cluster, another cluster or a laptop) shares, so the leases
live there rather than in a Ray actor, which only its own cluster could see.

Taking a lease is exclusive on local storage: a free lease is created atomically only if absent, and an expired one
is taken by whoever first creates (the same way) the marker naming that expired holder. Object stores have no
create-if-absent through pyarrow: there the taker writes, waits SETTLE seconds and re-reads, and the last writer wins,
which is enough for drivers that start seconds apart. A lease file that cannot be read as a lease (torn, empty,
ill-typed) holds nothing: it is taken over at once. A marker names the expired holder and its expiry, or, for a file
that holds no lease, a digest of its bytes, inode and modification time, so that no two occurrences share a marker
(one left by a killed taker blocks nothing); markers older than a TTL are removed.

A holder that was paused (a suspended laptop, a storage stall) for longer than its TTL may find its lease taken over.
Every acquisition therefore carries a generation number, a fencing token: the holder's writers (its trial processes
too) pass theirs to fence() before they write, which refuses (LeaseLost) once the lease holds another generation; and
the holder checks its lease (check()) before it schedules more work, looking at the storage at once when the lease
outlived its last renewal. Storage offers no lock between a read and a write: a write can still land in the instant
after its fence's read, and a holder renewing in the instant a taker writes can overwrite the taker's lease (then the
taker's writes are refused and it stops instead). The fence narrows a stale writer's window to that instant, where
without it a stale driver would run a whole study again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import threading
import time
import uuid
from dataclasses import asdict, dataclass, fields

from ..integrity import Corrupt, seal_json, unseal_json
from ..storage import Storage

STUDY = "lease.json"   # <study>/lease.json: the study's lease
TTL = 10.0
BEAT = 2.0
SETTLE = 1.0
TTL_ENV = "RAYSWEEP_LEASE_TTL"   # seconds; tests shorten it to pause a holder past its lease in little time
ATTEMPTS = 8   # races lost in a row to other takers before try_acquire reports the lease as busy


@dataclass
class Holder:
    holder: str
    host: str
    pid: int
    what: str
    since: float
    expires: float
    generation: int = 0   # leases written before fencing carry none

    @classmethod
    def parse(cls, data: bytes) -> "Holder | None":
        """The holder a lease file names, or None if it is no lease: not JSON, or a field missing or ill-typed."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(obj, dict):
            return None
        values = {}
        for f in fields(cls):
            value = obj.get(f.name, f.default)
            kind = {"str": str, "int": int, "float": (int, float)}[f.type]
            if not isinstance(value, kind) or isinstance(value, bool):
                return None
            if f.type == "float":
                try:   # a time a date can be told of (describe() prints it)
                    time.localtime(value)
                except (OverflowError, OSError, ValueError):   # inf, NaN, or beyond any calendar
                    return None
            values[f.name] = value
        return cls(**values)

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


class LeaseLost(RuntimeError):
    """This process's lease has another holder now, or none: it must stop and write nothing more.
    (A plain message, so that it pickles across Ray processes.)"""


def default_ttl() -> float:
    """The lease TTL: TTL, or $RAYSWEEP_LEASE_TTL seconds."""
    text = os.environ.get(TTL_ENV)
    if text is None:
        return TTL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        from .spec import SpecError
        raise SpecError([f"{TTL_ENV}: a lease's time to live in seconds must be a positive number, not {text[:40]!r}"])
    return value


def _lost(what: str, held: Holder | None, why: str) -> LeaseLost:
    now = ("no lease is there now" if held is None else "the lease file holds no lease now" if not held.pid
           else f"now {held.describe()}")
    return LeaseLost(f"{what}: this process lost its lease ({why}; {now}); it stopped and writes nothing more")


def _read(storage: Storage, parts: tuple) -> Holder | None:
    """The holder of the lease at parts: None if there is no lease file; an expired holder named for the file's bytes
    and identity if it holds no lease, so that each unreadable occurrence is taken over (and marked) apart."""
    try:
        data = storage.read_bytes(*parts)
    except FileNotFoundError:
        return None
    held = Holder.parse(data)
    if held is not None:
        return held
    try:
        info = os.stat(storage.path(*parts)) if storage.local else None
        identity = f"{info.st_ino}-{info.st_mtime_ns}" if info else str(storage.fs.get_file_info(
            storage.path(*parts)).mtime)
    except FileNotFoundError:   # replaced since it was read: a new occurrence, read on the next pass
        identity = "gone"
    key = hashlib.sha256(data + identity.encode()).hexdigest()[:16]
    return Holder(f"unreadable-{key}", "?", 0, "", 0.0, 0.0)


def fence(storage: Storage, parts: tuple, generation: int, what: str = "the lease") -> None:
    """Refuse a write (LeaseLost) unless the lease at parts still holds `generation`: the writer's lease is current."""
    held = _read(storage, parts)
    if held is None or held.generation != generation:
        raise _lost(what, held, f"a write of generation {generation} was refused")


class Lease:
    """The lease at `parts` of `storage` for `what` (a study, a dense run). Use try_acquire/release, or `with`."""

    def __init__(self, storage: Storage, parts: tuple, what: str, ttl: float | None = None,
                 beat: float | None = None):
        self.storage, self.parts, self.what = storage, tuple(parts), what
        self.ttl = ttl if ttl is not None else default_ttl()
        self.beat = beat if beat is not None else self.ttl * BEAT / TTL
        self.id = uuid.uuid4().hex
        self.since = time.time()
        self.generation = 0    # this holder's fencing token, set when it takes the lease
        self.expires = 0.0     # the expiry it last wrote
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._markers: list[tuple] = []

    @property
    def _counter(self) -> tuple:
        """lease.json -> lease.generation beside it: the last generation issued, kept when the lease is released."""
        return (*self.parts[:-1], self.parts[-1].rsplit(".", 1)[0] + ".generation")

    def _next_generation(self, held: Holder | None) -> int:
        """A generation above every one issued before. The counter file keeps the order when drivers' clocks differ;
        the clock keeps a number from coming back when that file is lost, damaged, or lowered by a taker that wrote
        it late; the expired holder's own number covers a counter that its killed holder never wrote. Microseconds:
        below 2**53, so a generation survives exactly in a float column (pandas makes one of an int column with
        gaps, as when older rows without a generation are read with newer ones)."""
        try:
            last = unseal_json(self.storage.read_bytes(*self._counter), self.storage.path(*self._counter))
            last = last["generation"] if isinstance(last.get("generation"), int) else 0
        except (FileNotFoundError, Corrupt):
            last = 0
        return max(time.time_ns() // 1000, last + 1, (held.generation + 1) if held is not None else 0)

    def _mine(self, generation: int) -> bytes:
        self._expiring = time.time() + self.ttl
        return json.dumps(asdict(Holder(self.id, platform.node(), os.getpid(), self.what, self.since,
                                        self._expiring, generation))).encode()

    def current(self) -> Holder | None:
        return _read(self.storage, self.parts)

    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free or expired; return None when taken, else the live holder."""
        held = None
        for _ in range(ATTEMPTS):
            if self.storage.create_new(self._mine(self._next_generation(held)), *self.parts):
                return self._confirm()
            held = self.current()
            if held is None:   # released between our create and our read
                continue
            if held.holder == self.id and self.renew():
                return None
            if held.expires > time.time() and not held.gone():
                return held
            if self.storage.local:
                self._clean_markers()
                marker = (*self.parts[:-1], f"{self.parts[-1]}.takeover-{held.holder}-{held.expires}")
                if not self.storage.create_new(b"", *marker):   # another taker got this expired lease first
                    continue
                self._markers.append(marker)
                if self.current() != held:   # taken (and maybe its marker cleaned) while we were making ours
                    continue
            self.storage.write_bytes(self._mine(self._next_generation(held)), *self.parts)
            return self._confirm()
        return held if held is not None else Holder("", "?", 0, self.what, self.since, time.time() + self.ttl)

    def _clean_markers(self) -> None:
        """Remove takeover markers older than a TTL: their takeover is long over, and they would only pile up."""
        prefix = f"{self.parts[-1]}.takeover-"
        for name in self.storage.list(*self.parts[:-1]):
            if name.startswith(prefix):
                try:
                    if os.stat(self.storage.path(*self.parts[:-1], name)).st_mtime < time.time() - self.ttl:
                        self.storage.delete(*self.parts[:-1], name)
                except FileNotFoundError:
                    continue

    def _confirm(self) -> Holder | None:
        if not self.storage.local:
            time.sleep(SETTLE)
        held = self.current()
        if held is None or held.holder != self.id:
            return held if held is not None else Holder("", "?", 0, self.what, self.since, 0.0)
        self.generation, self.expires = held.generation, held.expires
        self.lost.clear()   # taken (again) under a new generation: the writers of an older one stay fenced out
        try:   # only a holder advances the counter; a lower value written late is covered by the clock
            self.storage.write_bytes(seal_json({"generation": self.generation}), *self._counter)
        except OSError:   # the counter only orders generations across clocks: the lease stands without it
            pass
        return None

    def renew(self) -> bool:
        """Extend the lease; False (and lost set) if it is not this holder's any more: another holder has it, or
        none (it was released, or cleared as unreadable)."""
        held = self.current()
        if held is None or (held.holder, held.generation) != (self.id, self.generation):
            self.lost.set()
            return False
        self.storage.write_bytes(self._mine(self.generation), *self.parts)
        self.expires = self._expiring
        return True

    def check(self) -> None:
        """Raise LeaseLost if this holder must stop. Cheap while the heartbeat keeps the lease: it reads a flag. When
        the lease outlived its last renewal here (this process was paused, or the storage stalled), it looks at the
        storage at once rather than at the next beat: a lease that expired with nobody taking it is kept."""
        if not self.lost.is_set() and time.time() >= self.expires:
            try:
                self.renew()
            except OSError:   # the storage is unreachable, so nothing is written either: look again next time
                pass
        if self.lost.is_set():
            raise _lost(self.what, self.current(), "another holder took it over")

    def verify(self) -> None:
        """check(), and that the lease on the storage still holds this holder's generation: before a write."""
        self.check()
        fence(self.storage, self.parts, self.generation, self.what)

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
