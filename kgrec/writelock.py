"""One training run per workspace: an ``flock`` that a second run on the same workspace meets at once.

Two ``kgrec run`` / ``kgrec train`` / ``accelerate launch`` commands training into one workspace would
overwrite each other's models (each model is written atomically, so one whole model would stay, but which
one depends on timing). :func:`one_writer` makes the second one stop before it trains, naming the first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kgrec.errors import WorkspaceError

WRITER_LOCK = ".kgrec-training.lock"
_HELD: set[str] = set()  # locks this process holds: re-entrant (kgrec run, then each of its stages)


@contextmanager
def one_writer(folder: Path | str, what: str) -> Iterator[None]:
    """Let one process at a time train into ``folder`` (a workspace): an ``flock`` on
    ``folder/.kgrec-training.lock``, which the kernel releases when the holder dies (no stale lock after a
    crash or SIGKILL). A second process — a second ``kgrec train`` or ``accelerate launch`` on the same
    workspace — gets a :class:`WorkspaceError` at once naming the holder, instead of two runs overwriting
    each other's models (each model is still written atomically, so what stays is one whole model).
    Re-entrant within a process."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = str((folder / WRITER_LOCK).resolve())
    if path in _HELD:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except (ValueError, OSError):
                holder = {}
            who = f"process {holder['pid']} ({holder.get('what', 'training')}, since {holder.get('since', '?')})" if holder.get("pid") else "another process"
            raise WorkspaceError(f"{folder}: {who} is training in this workspace; wait for it to finish, or train into "
                                 f"another workspace (-w). Nothing was written by this run.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        _HELD.add(path)
        try:
            yield
        finally:
            _HELD.discard(path)
    finally:
        os.close(fd)  # releases the flock
