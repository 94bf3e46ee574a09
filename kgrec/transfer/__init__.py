"""Across sites and code systems: pooled cohorts and the zero-shot / few-shot / pooled protocol.

>>> from kgrec.transfer import transfer
>>> res = transfer("ws-mimic3", ["ws-eicu"], modes=["zero-shot", "pooled"])
>>> res = transfer("ws-mimic3", ["ws-eicu"], models=["logreg", "GAMENet"])  # PyHealth's models, same visits
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from kgrec.transfer.pool import Site, load_site, pool
from kgrec.transfer.protocol import DEFAULT_MODELS, MODES, SHARES, VOCABS, SharedView, TransferResult, run_transfer


def transfer(
    target_ws: Path | str,
    source_ws: Sequence[Path | str],
    modes: Sequence[str] = MODES,
    models: Sequence[str] = DEFAULT_MODELS,
    folds: int = 5,
    seed: int = 42,
    shares: Sequence[float] = SHARES,
    progress: Callable[[str], None] | None = None,
    save: bool = True,
    zero_shot_vocab: str = "shared",
    in_domain=None,
) -> TransferResult:
    """Run :func:`~kgrec.transfer.protocol.run_transfer` and save the report under
    ``<target_ws>/reports/transfer/`` (``transfer.json``, ``transfer.md``, ``transfer-prauc.png``).
    ``zero_shot_vocab``: ``shared`` (zero-shot scores the target's drug classes some source prescribes) or
    ``target`` (all of the target's). ``in_domain``: the target's own evaluation on the same folds, reused."""
    from kgrec.transfer.report import save as save_report

    res = run_transfer(target_ws, source_ws, modes, models, folds, seed, shares, progress, zero_shot_vocab, in_domain)
    if save:
        res.pooling["saved"] = save_report(res, Path(target_ws) / "reports" / "transfer")
    return res


__all__ = ["DEFAULT_MODELS", "MODES", "SHARES", "VOCABS", "SharedView", "Site", "TransferResult", "load_site", "pool", "run_transfer", "transfer"]
