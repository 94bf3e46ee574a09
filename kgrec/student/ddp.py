"""Data-parallel student training under ``accelerate launch`` (DDP: gloo on CPUs, NCCL on GPUs).

One process (the default, and ``kgrec train`` run directly) trains exactly as before. Launched with
``accelerate launch --multi_gpu --num_processes N -m kgrec train --stage distill ...`` (on CPUs too:
``--cpu`` makes accelerate start one process only), each rank:

* starts from rank 0's weights (broadcast), walks the same shuffled batches (same seed) and takes its
  ``rank::N`` share of each batch, so every rank takes the same number of steps;
* averages its gradients with the other ranks after every step (all-reduce of every trained
  parameter, a zero gradient where a rank had nothing: no rank waits on a tensor another never sends);
* validates on the whole validation split with the same weights, so early stopping agrees;
* writes nothing but on rank 0 (:func:`is_main`), after the others reached the same point.

A rank that dies leaves the others blocked in a collective: they fail after ``$KGREC_DIST_TIMEOUT``
seconds (default 600), not hang. More processes than the batch size is refused at once. Importing
this module imports no torch (the CLI asks :func:`is_main` before printing).
"""

from __future__ import annotations

import os
from datetime import timedelta

from kgrec.errors import KgrecError

TIMEOUT_ENV = "KGREC_DIST_TIMEOUT"


def world_size() -> int:
    """Processes of this launch (``WORLD_SIZE``, set by ``accelerate launch`` / ``torchrun``)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main() -> bool:
    """Whether this process writes (rank 0, or a run that was not launched in parallel)."""
    return os.environ.get("RANK", "0") in ("0", "")


def accelerator(device: str, batch_size: int):
    """An ``accelerate.Accelerator`` when launched with several processes, else None."""
    n = world_size()
    if n <= 1:
        return None
    if batch_size < n:
        raise KgrecError(f"{n} processes but a batch of {batch_size}: each process needs at least one visit per batch "
                         f"(use --num_processes ≤ {batch_size} or a larger batch)")
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    seconds = float(os.environ.get(TIMEOUT_ENV, "600"))
    return Accelerator(cpu=device == "cpu", kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=seconds))])


def broadcast(params) -> None:
    """Every rank takes rank 0's values of ``params``."""
    import torch.distributed as dist

    for p in params:
        dist.broadcast(p.data, src=0)


def average_gradients(params, n: int) -> None:
    """All-reduce the gradients of ``params`` and divide by ``n`` (what DDP does, for a loss assembled
    from several calls into the model, which DDP's wrapper cannot follow)."""
    import torch
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= n


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
