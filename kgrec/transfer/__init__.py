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
    data_dir: Path | str | None = None,
) -> TransferResult:
    """Run :func:`~kgrec.transfer.protocol.run_transfer` and save the report under
    ``<target_ws>/reports/transfer/`` (``transfer.json``, ``transfer.md``, ``transfer-prauc.png``).
    ``zero_shot_vocab``: ``shared`` (zero-shot scores the target's drug classes some source prescribes) or
    ``target`` (all of the target's). ``in_domain``: the target's own evaluation on the same folds, reused.
    Models that read the graph (:data:`NEEDS_GRAPH`) on a target made by ``kgrec prepare`` alone: its
    graph is loaded first from ``data_dir`` (default ``$KGREC_DATA``; embedded store), said so in the
    progress and in ``res.pooling["graph_loaded"]``; without a data folder, an error naming the command."""
    from kgrec.transfer.report import save as save_report

    loaded = _ensure_graph(Path(target_ws), models, data_dir, progress)
    res = run_transfer(target_ws, source_ws, modes, models, folds, seed, shares, progress, zero_shot_vocab, in_domain)
    if loaded:
        res.pooling["graph_loaded"] = loaded
    if save:
        res.pooling["saved"] = save_report(res, Path(target_ws) / "reports" / "transfer")
    return res


NEEDS_GRAPH = frozenset({"logreg-graph", "site-ensemble", "site-ensemble-names", "student"})


def _ensure_graph(target: Path, models: Sequence[str], data_dir, progress) -> str:
    """Load the target's graph when a model needs it and the workspace has none; what was done, or ''."""
    import os

    from kgrec.errors import WorkspaceError

    need = sorted(NEEDS_GRAPH & set(models))
    if not need or (target / "graph" / "tables").is_dir():
        return ""
    data_dir = data_dir or os.environ.get("KGREC_DATA")
    if not data_dir or not Path(data_dir).is_dir():
        raise WorkspaceError(f"{', '.join(need)} need(s) the target's knowledge graph and {target} has none: run "
                             f"`kgrec load-graph -w {target}` first, or give --data-dir (or KGREC_DATA) to load it here")
    from kgrec.graph.load import load_graph

    msg = f"loading the knowledge graph of {target} (needed by {', '.join(need)}) ..."
    if progress:
        progress(msg)
    res = load_graph(target, data_dir)
    return f"{msg.removesuffix(' ...')}: {res.stats['n_nodes']:,} nodes, {res.stats['n_edges']:,} edges"


__all__ = ["DEFAULT_MODELS", "NEEDS_GRAPH", "MODES", "SHARES", "VOCABS", "SharedView", "Site", "TransferResult", "load_site", "pool", "run_transfer", "transfer"]
