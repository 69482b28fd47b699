"""Study storage: a local directory or any URI pyarrow.fs understands (s3://, gs://, hdfs://).

Every file is written whole or not at all: bytes go to a temporary name beside the target, then are moved.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs


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

    def local_path(self, *parts: str) -> Path:
        """The on-disk path of a location; only for local storage."""
        if not self.local:
            raise ValueError(f"{self.uri} is not local storage")
        return Path(self.path(*parts))

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        target = self.path(*parts)
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
        """Write a file that must not exist yet; False if it does. Atomic on local storage (O_EXCL); object stores
        offer no create-if-absent through pyarrow, so there a caller that must be alone re-reads after a pause."""
        target = self.path(*parts)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if not self.local:
            if self.exists(*parts):
                return False
            self.write_bytes(data, *parts)
            return True
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def move(self, src: tuple, dst: tuple) -> None:
        """Rename a file; on local storage this fails (FileNotFoundError) for all but one of several racing movers."""
        self.fs.create_dir(self.path(*dst).rsplit("/", 1)[0], recursive=True)
        if self.local:
            os.rename(self.path(*src), self.path(*dst))
        else:
            self.fs.move(self.path(*src), self.path(*dst))

    def delete(self, *parts: str) -> None:
        """Remove a file if it is there."""
        try:
            self.fs.delete_file(self.path(*parts))
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
            shutil.rmtree(self.path(*parts), ignore_errors=True)
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

