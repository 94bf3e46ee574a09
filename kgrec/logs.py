"""Third-party messages that tell a kgrec user nothing, switched off where they come from.

Each filter names the warning's module (``warnings.filterwarnings(..., module=...)``) or the library's
own logger, so a warning from anywhere else, kgrec's included, still shows. Called by every CLI command
and by :func:`kgrec.api.run`; calling it again adds nothing (``filterwarnings`` replaces an identical
filter), and it re-installs the filters where a test harness reset them.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category, module regex): one entry per warning seen in a `kgrec run` log, with why
# it says nothing to a user.
WARNINGS: list[tuple[str, type[Warning], str]] = [
    # PyKEEN's training loop asks for pinned memory; on a machine without a GPU torch says it won't pin
    (r".*'pin_memory' argument is set as true but no accelerator is found", UserWarning, r"torch\.utils\.data\.dataloader"),
]
# loggers whose lines narrate internals: level raised so that only what matters to a user passes
LOGGERS: dict[str, int] = {
    # "Encountered tensors on device_types={'cpu'} while only ['cuda'] are considered safe for automatic
    # memory utilization maximization": PyKEEN's batch-size search, which is CUDA-only, on the CPU
    "torch_max_mem": logging.ERROR,
    # "Evaluation took 85.97s seconds": PyKEEN's evaluator narrating (kgrec reports each stage's time). The
    # module's own logger: importing pykeen sets the "pykeen" logger to INFO, which would undo a level there
    "pykeen.evaluation.evaluator": logging.WARNING,
}

def quiet_third_party() -> None:
    """Install the filters of :data:`WARNINGS` and the levels of :data:`LOGGERS`."""
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, level in LOGGERS.items():
        logging.getLogger(name).setLevel(level)
