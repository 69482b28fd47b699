"""Checksums that travel inside every file raysweep writes, so a damaged file is caught when it is read, never used.

Torch checkpoints hold {"format", "owner", "digest", "payload"}: the owner names what the file belongs to (a run's id
and what it depends on), and the digest covers the owner and the payload's content (every tensor's dtype, shape and
bytes, every other value's repr), so a flipped byte in a weight changes it however torch laid the file out. A checksum
proves a file intact, not that it is the file its reader wants: a reader names the owner it expects, and a file of
another owner raises Corrupt as a damaged one does, so that it is set aside and never used.
JSON files hold their digest under "digest"; Parquet row files carry theirs in the file's key-value metadata (see
raysweep.results). A file whose digest does not match raises Corrupt, naming the file.
"""

from __future__ import annotations

import hashlib
import json

TORCH_FORMAT = "raysweep-checkpoint/2"   # /1 named no owner: whose it is cannot be checked, so it is not read


class Corrupt(ValueError):
    """A file's content does not match the checksum recorded when it was written."""

    def __init__(self, where, reason: str):
        self.where = str(where)
        super().__init__(f"{self.where} is corrupt: {reason}")


def _feed(h, obj) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        # a view as bytes hashes every dtype, bool and bfloat16 included, without a copy through numpy
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def digest(obj) -> str:
    """sha256 of a nested structure of dicts, lists, tuples, tensors and scalars, by content."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def seal(payload, owner: dict) -> dict:
    """What torch.save writes for `payload`: the payload, what it belongs to, and the digest of both."""
    return {"format": TORCH_FORMAT, "owner": owner, "digest": digest([owner, payload]), "payload": payload}


def _belongs(theirs, ours: dict) -> str:
    if isinstance(theirs, dict):   # name only what differs: the rest is long and the same
        keys = [k for k in {**theirs, **ours} if theirs.get(k) != ours.get(k)]
        theirs, ours = {k: theirs.get(k) for k in keys}, {k: ours.get(k) for k in keys}
    return f"belongs to {theirs}, not {ours}"


def unseal(loaded, where, owner: dict | None = None):
    """The payload of a sealed checkpoint; Corrupt unless its digest matches and, when `owner` is given, the file
    belongs to it (owner=None reads any intact file, for inspection only)."""
    if not isinstance(loaded, dict) or loaded.get("format") != TORCH_FORMAT or "payload" not in loaded:
        raise Corrupt(where, "not a raysweep checkpoint naming its owner (no recorded checksum, or written by an "
                             "older raysweep)")
    if digest([loaded.get("owner"), loaded["payload"]]) != loaded.get("digest"):
        raise Corrupt(where, "its content does not match the checksum recorded when it was written")
    if owner is not None and loaded["owner"] != owner:
        raise Corrupt(where, _belongs(loaded["owner"], owner))
    return loaded["payload"]


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str).encode()


def seal_json(obj: dict) -> bytes:
    # the digest is taken of what a reader gets back (JSON turns tuples into lists and int keys into strings)
    body = json.loads(json.dumps({k: v for k, v in obj.items() if k != "digest"}, default=str))
    return json.dumps({**body, "digest": hashlib.sha256(_canonical(body)).hexdigest()}, default=str).encode()


def unseal_json(data: bytes, where) -> dict:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(where, f"not JSON ({e})") from None
    if not isinstance(obj, dict) or "digest" not in obj:
        raise Corrupt(where, "no recorded checksum")
    body = {k: v for k, v in obj.items() if k != "digest"}
    if hashlib.sha256(_canonical(body)).hexdigest() != obj["digest"]:
        raise Corrupt(where, "its content does not match the checksum recorded when it was written")
    return body
