"""Which device a training stage runs on: ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto``.

``auto`` is ``cuda`` where PyTorch sees a GPU, else ``cpu``. Asking for ``cuda`` on a machine without
one is an error (:class:`~kgrec.errors.OptionError`, exit code 2 on the CLI) that says so (never a silent fall back to the CPU). Every stage records the device it
used in its JSON (``config.device``).
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from kgrec.errors import OptionError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> str:
    """``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` -> the device string to use (``cpu`` or ``cuda:N``)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here (torch {torch.__version__}, "
                             f"built with CUDA {torch.version.cuda or 'none'}): use --device cpu or auto")
        idx = int(name.split(":", 1)[1]) if ":" in name else 0
        if not 0 <= idx < torch.cuda.device_count():
            raise OptionError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return f"cuda:{idx}"
    raise OptionError(f"unknown device {name!r}; choose from {', '.join(DEVICES)} (or cuda:N)")


def device_info(device: str) -> dict:
    """What the stage's JSON records about the device it ran on."""
    import torch

    info = {"device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(int(device.split(":")[1]))
    return info


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@contextmanager
def large_blocks_from_heap(device: str) -> Iterator[bool]:
    """While training on the CPU, let glibc serve large tensors from its heap instead of fresh ``mmap`` pages.

    glibc gives every block above its mmap threshold (at most 32 MB) its own pages and returns them to the
    kernel when freed, so a training step whose tensors are larger (the KGE's batch grows with the graph)
    page-faults all of its memory in again each step. On the 100k-visit graph that was 12 M page faults and
    30 s of system time per 38 s epoch; with this, 1.4 s of system time and 22 s per epoch (docs/reports/scale.md). On
    exit the threshold is 32 MB (where glibc's own adaptive threshold ends) and the freed heap is given back
    (``malloc_trim``). The first few steps still grow the heap: torch allocates with ``posix_memalign``, which
    can only reuse a freed block once it has merged with a neighbour, so reuse settles after a few steps
    (how soon varies from run to run; tests/test_embed.py checks where glibc puts the block). Yields whether it applied: not on a GPU and not without glibc (macOS, musl).
    """
    libc = None
    if device.startswith("cpu") and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
        except (OSError, AttributeError):
            libc, ok = None, False
    else:
        ok = False
    try:
        yield ok
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
            libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
            libc.malloc_trim(0)
