"""Study storage: a local directory or any URI pyarrow.fs understands (s3://, gs://, hdfs://).

Every file is written whole or not at all: bytes go to a temporary name beside the target, then are moved.
Nothing is written through a symbolic link below a local storage root (see OutsideStorage); the root itself may be
one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs


class OutsideStorage(PermissionError):
    """A write refused because its path below a local storage root passes through a symbolic link (or '..'): it
    could land outside the directories raysweep manages (a quarantine/ linked to the user's home, say)."""


class Storage:
    """A root location; paths below it are '/'-joined strings relative to the root."""

    def __init__(self, uri: str):
        uri = str(uri)
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
            self.local = isinstance(self.fs, pafs.LocalFileSystem)
            self.uri = uri
        else:
            # absolute, so that trial processes (whose working directory Tune changes) find the same place
            self.fs, self.root, self.local = pafs.LocalFileSystem(), str(Path(uri).resolve()), True
            self.uri = self.root

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def uri_of(self, *parts: str) -> str:
        """The local path or URI of a location below the root, as Storage() takes it (an URI's query, such as an S3
        endpoint_override, stays at its end)."""
        if "://" not in self.uri:
            return self.path(*parts)
        base, mark, query = self.uri.partition("?")
        return "/".join([base.rstrip("/"), *parts]) + mark + query

    def target(self, *parts: str, last: bool = True) -> str:
        """path(*parts) of a location about to be written. On local storage no name below the root may be '..' or a
        symbolic link (OutsideStorage otherwise); last=False lets the final name be a link, for the operations that
        replace, rename or remove a link itself rather than what it points to. This guards against mistakes and
        stale setups, not against someone who can write into the study (a link made after the check is followed)."""
        target = self.path(*parts)
        if not self.local:   # object stores have no links
            return target
        names = [n for n in "/".join(parts).split("/") if n not in ("", ".")]
        if ".." in names:
            raise OutsideStorage(f"{target}: '..' leads out of the storage root {self.root}")
        at = self.root.rstrip("/")
        for name in names if last else names[:-1]:
            at = f"{at}/{name}"
            if os.path.islink(at):
                raise OutsideStorage(f"{at} is a symbolic link (to {os.readlink(at)}); raysweep writes nothing "
                                     f"through a link below its storage root {self.root}: replace the link by "
                                     f"what it points to")
        return target

    def local_path(self, *parts: str) -> Path:
        """The on-disk path of a location, for its caller to write below (checked as target()); only for local
        storage."""
        if not self.local:
            raise ValueError(f"{self.uri} is not local storage")
        return Path(self.target(*parts))

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.target(*parts), recursive=True)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        target = self.target(*parts, last=False)   # os.replace puts the file in the place of a link at the target
        parent = target.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{target.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        if self.local:
            os.replace(tmp, target)
        else:
            self.fs.move(tmp, target)

    def create_new(self, data: bytes, *parts: str) -> bool:
        """Write a file that must not exist yet; False if it does. Atomic and exclusive on local storage (a hard link
        to a complete temporary); object stores offer no create-if-absent through pyarrow, so there a caller that must
        be alone re-reads after a pause."""
        target = self.target(*parts, last=False)   # os.link: an existing link is an existing file
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if not self.local:
            if self.exists(*parts):
                return False
            self.write_bytes(data, *parts)
            return True
        # whole or not at all: the bytes go to a temporary file first, then a hard link gives them the target's name,
        # which fails if that name exists; a create killed mid-way leaves only the temporary (a leftover), never an
        # empty or partial target
        tmp = f"{target.rsplit('/', 1)[0]}/.{target.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "xb") as f:
            f.write(data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def move(self, src: tuple, dst: tuple) -> None:
        """Rename a file; on local storage this fails (FileNotFoundError) for all but one of several racing movers."""
        source, target = self.target(*src, last=False), self.target(*dst, last=False)   # a link is renamed itself
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if self.local:
            os.rename(source, target)
        else:
            self.fs.move(source, target)

    def delete(self, *parts: str) -> None:
        """Remove a file if it is there."""
        try:
            self.fs.delete_file(self.target(*parts, last=False))   # a link is removed itself
        except FileNotFoundError:
            pass

    def files(self, *parts: str) -> list[tuple[str, float]]:
        """(path relative to the location, modification time) of every file below it, recursively."""
        base = self.path(*parts).rstrip("/") + "/"
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True, recursive=True)
        return sorted((info.path[len(base):], info.mtime.timestamp() if info.mtime else 0.0)
                      for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def list(self, *parts: str) -> list[str]:
        """Names of the entries directly below a location (empty if it does not exist)."""
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def download(self, local_file: Path, *parts: str) -> Path:
        local_file = Path(local_file)
        if not local_file.exists():
            local_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = local_file.with_name(f".{local_file.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(self.read_bytes(*parts))
            os.replace(tmp, local_file)
        return local_file

    def remove_dir(self, *parts: str) -> None:
        if self.local:
            shutil.rmtree(self.target(*parts), ignore_errors=True)
        elif self.exists(*parts):
            self.fs.delete_dir(self.path(*parts))


def split(location) -> tuple[Storage, str]:
    """(the storage of its parent, its name) of a local path or URI; an URI's query goes with the parent."""
    location = str(location)
    base, mark, query = location.partition("?") if "://" in location else (location, "", "")
    parent, _, name = base.rstrip("/").rpartition("/")
    if not name or parent.endswith(":/"):
        raise ValueError(f"{location!r} names no directory below a storage root")
    return Storage((parent or ".") + mark + query), name


def name_of(location) -> str:
    """The last name of a local path or URI (without an URI's query)."""
    return split(location)[1]


PROBE_TIMEOUT = 2.0   # seconds an object store gets to connect, and to answer, when checked


def check(uri: str, *locations: str, tolerated: tuple[str, ...] = ()) -> list[str]:
    """Why `uri` cannot hold raysweep's files at `locations` (names below its root), one 'storage: ...' line per
    problem; found before anything starts, creating nothing. A pyarrow file system must understand the URI, an
    object store must name a bucket and answer (within seconds: an unreachable endpoint would otherwise hang a run
    that has already written files); a location must be a directory or absent, on local storage with no symbolic
    link at or below it (see Storage.target: found now, not after hours of training) and a writable directory as
    its nearest existing parent. Links at the `tolerated` paths below the root are left to the writes themselves
    (where the caller warns and goes on without them, as for a quarantine directory)."""
    try:
        storage = Storage(uri)
    except (ValueError, OSError) as e:   # pyarrow's ArrowInvalid is a ValueError
        return [f"storage: cannot use {uri!r}: {e}"]
    if not storage.local:
        return _check_remote(storage, locations)
    problems = []
    for location in locations:
        try:
            problems += _check_local(storage, location, tolerated)
        except OSError as e:   # a directory on the way that this user may not read
            problems.append(f"storage: cannot use {e.filename or storage.path(location)}: {e.strerror or e}")
    return list(dict.fromkeys(problems))   # locations in one directory share its problems


def _check_local(storage: Storage, location: str, tolerated) -> list[str]:
    try:
        path = Path(storage.target(location))
    except OutsideStorage as e:
        return [f"storage: {e}"]
    problems = [f"storage: {e}" for e in _links_below(storage, path, {storage.path(t) for t in tolerated})]
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return problems + [f"storage: {existing} is a file, not a directory"]
    system = os.statvfs(existing)
    # a pseudo file system (/proc, /sys) reports no free space, like a full disk: nothing could be written
    if not os.access(existing, os.W_OK | os.X_OK) or system.f_flag & os.ST_RDONLY or not system.f_bavail:
        problems.append(f"storage: cannot write in {existing} (read-only, not writable by this user, or full)")
    return problems


def _links_below(storage: Storage, path: Path, tolerated: set[str]) -> list[str]:
    """What Storage.target would refuse below an existing local directory: every symbolic link in it (but those at
    the tolerated paths)."""
    found, todo = [], [path] if path.is_dir() else []
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.path in tolerated:
                    continue
                if entry.is_symlink():
                    try:
                        storage.target(os.path.relpath(entry.path, storage.root))
                    except OutsideStorage as e:
                        found.append(str(e))
                elif entry.is_dir():
                    todo.append(entry.path)
    return found


def _check_remote(storage: Storage, locations) -> list[str]:
    fs, paths, bucket = storage.fs, [storage.path(location) for location in locations], []
    if isinstance(fs, pafs.S3FileSystem):
        bucket = [storage.root.split("/", 1)[0]]
        if not bucket[0]:
            return [f"storage: {storage.uri} names no bucket (s3://BUCKET/path)"]
        # the same store with short timeouts and one retry: the defaults retry an unreachable endpoint for minutes
        rebuild, (options,) = fs.__reduce__()
        fs = rebuild({**options, "connect_timeout": PROBE_TIMEOUT, "request_timeout": PROBE_TIMEOUT,
                      "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2)})
    try:
        infos = fs.get_file_info(bucket + paths)
    except OSError as e:
        return [f"storage: cannot reach {storage.uri}: {e}"]
    if bucket and infos[0].type == pafs.FileType.NotFound:
        return [f"storage: {storage.uri}: the bucket {bucket[0]!r} does not exist (create it first)"]
    return [f"storage: {storage.uri_of(location)} is a file, not a directory"
            for location, info in zip(locations, infos[len(bucket):]) if info.type == pafs.FileType.File]
