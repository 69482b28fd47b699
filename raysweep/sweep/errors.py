"""What a failed trial records: its root exception (type, message, last frames), without Ray's wrappers or colours."""

from __future__ import annotations

import re
import traceback

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAMES = 6


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: through Ray's task errors (.cause) and Python's chaining."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None:
            break
        exc = inner
    return exc


def describe(exc: BaseException) -> str:
    """'Type: message' of the root cause, then its last frames; plain text."""
    root = root_cause(exc)
    text = _ANSI.sub("", str(root)).strip()
    if "Traceback (most recent call last)" in text:
        # a remote error that arrived as text only: its last line is the exception, the lines above its frames
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join([lines[-1], *lines[-1 - 2 * FRAMES:-1]])
    frames = traceback.format_tb(root.__traceback__)[-FRAMES:] if root.__traceback__ else []
    return _ANSI.sub("", "\n".join([f"{type(root).__name__}: {text}", *(f.rstrip() for f in frames)]))


def one_line(error: str | None) -> str:
    """The first line of a recorded error (its type and message)."""
    return (error or "").strip().splitlines()[0][:300] if error else ""
