"""Progress messages from inside a long step (an epoch, a batch of encodings) to whoever shows them.

A training loop calls :func:`report` (``"kge: epoch 12/30"``); a stage runner that wants the messages
wraps the step in :func:`reporting_to` (``kgrec run`` and ``kgrec train`` pass them to their stage lines,
which print the latest one whenever 25 s pass without a line when there is no terminal). Without a receiver a
message costs one lookup. The receiver is a context variable: it follows the code that set it, not
threads it did not start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SINK: ContextVar[Callable[[str], None] | None] = ContextVar("kgrec_progress", default=None)


@contextmanager
def reporting_to(sink: Callable[[str], None] | None) -> Iterator[None]:
    """Send the :func:`report` messages of the enclosed code to ``sink`` (None: nowhere)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def report(message: str) -> None:
    """One progress message (``"<stage>: <what> <done>/<total>"``) to the current receiver, if any."""
    sink = _SINK.get()
    if sink is not None:
        sink(message)


class Every:
    """``report`` a counter at most every ``seconds`` (and at its end): for loops of many fast steps."""

    def __init__(self, what: str, total: int, seconds: float = 5.0):
        self.what, self.total, self.seconds = what, int(total), seconds
        self._last = float("-inf")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done >= self.total or now - self._last >= self.seconds:
            self._last = now
            report(f"{self.what} {done:,}/{self.total:,}")
