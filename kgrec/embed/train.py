"""Embedding stages over a workspace: export the graph, train KGE or GNN, compare with popularity.

With ``patients="none"`` (what ``kgrec run`` trains with) the vectors come from the shared cache of
cohort-free graph vectors (:mod:`kgrec.embed.cache`, docs/cache.md): trained once per graph and settings,
then laid onto this workspace's entities (cohort-only ones filled from their neighbours or counted as
missing). Either way the stage writes its outputs into the workspace, and ``metrics.json`` says under
``cache`` whether the cache was used, hit or not, and why not.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kgrec.embed.cache import (
    CacheError,
    Entry,
    Fetched,
    Mapped,
    cache_root,
    canonical_export,
    code_fingerprint,
    entry_key,
    export_key,
    fetch_or_build,
    fill_from_neighbours,
    open_tables,
    store_export,
    why_not_cached,
)
from kgrec.embed.export import GraphExport, export_graph
from kgrec.embed.vectors import embed_dir
from kgrec.errors import WorkspaceError
from kgrec.fsatomic import atomic_dir
from kgrec.graph.tables import GraphTables, per_tables
from kgrec.metrics.ranking import popularity_scores, rank_evaluate

FILL_HOPS = 2


def graph_tables_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "graph" / "tables"


@dataclass
class EmbedStageResult:
    stage: str
    metrics: dict
    baseline: dict
    seconds: float  # training time spent by this call (0 when the vectors came from the cache)
    export_info: dict
    path: Path
    device: str = "cpu"  # where it trained (config.device of the saved metrics.json)
    cache: dict = field(default_factory=dict)  # the shared cache: used or why not, hit, filled, missing

    def to_json(self) -> dict:
        return {"stage": self.stage, "metrics": self.metrics, "popularity_baseline": self.baseline,
                "train_seconds": self.seconds, "export": self.export_info, "path": str(self.path), "device": self.device,
                "cache": self.cache}


def _stderr(message: str) -> None:
    """One timestamped line on stderr, like every stage line of ``kgrec run`` without a terminal."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _tables(workspace: Path | str) -> GraphTables:
    return GraphTables.load(graph_tables_dir(workspace))


def prepare_export(workspace: Path | str, patients: str = "train", seed: int = 42, reuse: bool = False, tables: GraphTables | None = None) -> GraphExport:
    """The workspace's graph export (rebuilt from ``graph/tables`` unless ``reuse`` and one exists; built
    once per process for the same tables, patients and seed: the KGE and GNN stages of ``kgrec run`` read
    the same). ``tables``: the workspace's tables, already read."""
    folder = embed_dir(workspace) / "export"
    if reuse and (folder / "export.json").exists():
        return GraphExport.load(folder)
    ex = per_tables(graph_tables_dir(workspace), f"embedding export ({patients})",
                    lambda: export_graph(tables if tables is not None else _tables(workspace), patients=patients, seed=seed), (patients, seed))
    ex.save(folder)
    return ex


def baseline_metrics(export: GraphExport, workspace: Path | str, seed: int = 42) -> dict:
    """The popularity baseline's held-out ranking metrics (once per export and seed in a process), saved in the workspace."""
    if _BASELINE.get("export") is not export or _BASELINE.get("seed") != seed:
        _BASELINE.update(export=export, seed=seed, metrics=rank_evaluate(popularity_scores(export), export, "test", seed=seed))
    m = dict(_BASELINE["metrics"])
    out = embed_dir(workspace) / "baseline"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"metrics": m}, indent=2))
    return m


_BASELINE: dict = {}


# ---------------- the shared cache ----------------
@dataclass
class _OpenGraph:
    """The cohort-free export of a workspace graph and its content key."""

    export: GraphExport
    key: str
    report: dict


def _open_graph(workspace: Path | str, tables: GraphTables, seed: int, root: Path, say: Callable[[str], None]) -> _OpenGraph:
    """The cohort-free export of the workspace's ``tables`` (built once per process for the same tables
    and seed), kept in the shared cache beside the vectors trained on it."""

    def build() -> _OpenGraph:
        cf_tables, report = open_tables(tables)
        ex = canonical_export(export_graph(cf_tables, patients="none", seed=seed))
        return _OpenGraph(ex, export_key(ex), report)

    og = per_tables(graph_tables_dir(workspace), "cohort-free export", build, (seed,))
    store_export(root, og.export, og.key, say)
    return og


def cache_info(folder: Path) -> dict:
    """The ``cache`` record of a stage's ``metrics.json`` ({} when absent: trained before the cache existed)."""
    f = Path(folder) / "metrics.json"
    if not f.exists():
        return {}
    return json.loads(f.read_text()).get("cache") or {}


def _record(folder: Path, info: dict) -> None:
    """Add the ``cache`` record to the ``metrics.json`` the result's ``save`` wrote."""
    f = Path(folder) / "metrics.json"
    meta = json.loads(f.read_text())
    meta["cache"] = info
    f.write_text(json.dumps(meta, indent=2))


def _used(got: Fetched, og: _OpenGraph, m: Mapped, seconds: float) -> dict:
    man = got.entry.manifest()
    return {
        "used": True, "key": got.entry.key, "hit": got.hit, "entry": str(got.entry.path), "export_key": og.key,
        "cohort_free_graph": og.report, "from_cache": m.from_cache, "filled_from_neighbours": m.filled_total,
        "filled_by_hops": {str(k): v for k, v in m.filled.items()}, "missing": len(m.missing),
        "missing_by_label": dict(Counter(e.partition(":")[0] for e in m.missing)), "missing_examples": m.missing[:10],
        "trained_seconds": man.get("trained_seconds"), "trained_on": man.get("device"), "created": man.get("created"),
        "metrics_on": "the cohort-free export (the same held-out indication pairs)", "seconds": round(seconds, 2), **got.notes,
    }


def _unused(why: str) -> dict:
    return {"used": False, "reason": why}


def cache_line(stage: str, info: dict) -> str:
    """One line saying where a stage's vectors came from."""
    if not info.get("used"):
        return f"{stage}: not from the shared cache: {info.get('reason', 'no record')}"
    how = (f"cache hit ({info['entry']}, trained in {info.get('trained_seconds')} s on {info.get('trained_on')})"
           if info["hit"] else f"trained and stored in the cache ({info['entry']})")
    return (f"{stage}: {how}: {info['from_cache']:,} entities from the cache, {info['filled_from_neighbours']:,} filled "
            f"from neighbours, {info['missing']:,} missing (no trained entity within {FILL_HOPS} hops)")


def _fetch_filled(stage: str, og, ex, kwargs: dict, extra: dict, train, result_cls, root: Path, say):
    """The shared cache's entry for ``stage`` on the cohort-free graph ``og`` (trained with ``train(og.export,
    **kwargs)`` and stored if missing), and its vectors filled onto the workspace export ``ex``.

    Returns ``(got, cached, filled)``: the fetch report, the entry's result, and the neighbour fill."""
    module = {"kge": ("kgrec.embed.kge", ("torch", "pykeen")), "gnn": ("kgrec.embed.gnn", ("torch", "torch_geometric"))}[stage]
    key, inputs = entry_key(stage, og.key, kwargs, code_fingerprint(*module), extra)
    entry = Entry(root, stage, key)

    def build(folder: Path) -> dict:
        r = train(og.export, **kwargs)
        r.save(folder)
        return {"device": r.config["device"], "trained_seconds": r.seconds}

    got = fetch_or_build(entry, inputs, build, say)
    cached = result_cls.load(entry.path)
    if cached.entities != og.export.entities:
        raise CacheError(f"cache entry {entry.path}: its entity index is not the one of the graph it is keyed on; remove the entry")
    return got, cached, fill_from_neighbours(ex, cached.entities, [cached.entity_vectors], hops=FILL_HOPS)


# ---------------- the stages ----------------
def run_kge(workspace, model="RotatE", dim=32, epochs=30, batch_size=None, lr=0.01, num_negs=4, seed=42, patients="train", progress=True,
            device="auto", cache=True, say: Callable[[str], None] | None = None) -> EmbedStageResult:
    """PyKEEN embeddings of the workspace graph, from the shared cache when ``patients="none"`` and
    ``cache`` (and ``KGREC_CACHE`` is not ``off``). ``say``: where the one-line cache report goes (stderr)."""
    from kgrec.embed.kge import KGEResult, train_kge

    say = say or _stderr
    kwargs = dict(model=model, dim=dim, epochs=epochs, batch_size=batch_size, lr=lr, num_negs=num_negs, seed=seed, progress=progress, device=device)
    tables = _tables(workspace)
    ex = prepare_export(workspace, patients=patients, seed=seed, tables=tables)
    out = embed_dir(workspace) / "kge"
    why = why_not_cached(patients, cache)
    if why is not None:
        res = train_kge(ex, **kwargs)
        with atomic_dir(out) as tmp:  # written beside the old vectors and swapped in: a crash keeps the old ones
            res.save(tmp)
            _record(tmp, _unused(why))
        return EmbedStageResult("kge", res.metrics, baseline_metrics(ex, workspace, seed), res.seconds, ex.info, out, res.config["device"], _unused(why))
    t0 = time.perf_counter()
    root = cache_root()
    og = _open_graph(workspace, tables, seed, root, say)
    got, cached, m = _fetch_filled("kge", og, ex, kwargs, {}, train_kge, KGEResult, root, say)
    res = KGEResult(m.mats[0], cached.relation_vectors, [ex.entities[i] for i in m.rows], cached.relations, cached.metrics, cached.config, cached.seconds, cached.losses)
    info = _used(got, og, m, time.perf_counter() - t0)
    with atomic_dir(out) as tmp:
        res.save(tmp)
        _record(tmp, info)
    say(cache_line("kge", info))
    return EmbedStageResult("kge", res.metrics, baseline_metrics(ex, workspace, seed), 0.0 if got.hit else cached.seconds, ex.info, out, res.config["device"], info)


def run_gnn(workspace, dim=64, epochs=100, lr=0.01, num_layers=2, init_from_kge=True, seed=42, patients="train", progress=True, device="auto",
            cache=True, say: Callable[[str], None] | None = None) -> EmbedStageResult:
    """R-GCN embeddings of the workspace graph, from the shared cache when the KGE stage's vectors are
    (the two stages must cover the same entities; a GNN without KGE vectors follows ``patients``/``cache``)."""
    from kgrec.embed.gnn import GNNResult, train_gnn
    from kgrec.embed.kge import KGEResult

    say = say or _stderr
    kge_dir = embed_dir(workspace) / "kge"
    has_kge = (kge_dir / "vectors.safetensors").exists()
    kge_cache = cache_info(kge_dir) if has_kge else {}
    why = why_not_cached(patients, cache)
    if kge_cache.get("used") and why is not None:
        raise WorkspaceError(
            f"the workspace's KGE vectors come from the shared cache ({kge_dir / 'metrics.json'}), so the GNN must too "
            f"(both cover the same entities), but here the cache cannot serve it: {why}. Train both stages alike: "
            f"`kgrec train --stage kge --patients {patients}{' --no-cache' if not cache else ''}` first")
    if has_kge and why is None and not kge_cache.get("used"):
        why = (f"the workspace's KGE vectors were trained without the cache ({kge_cache.get('reason', 'before the cache existed')}): "
               "the GNN follows, so that both cover the same entities")
    out = embed_dir(workspace) / "gnn"
    if why is not None:
        init = None
        if init_from_kge and has_kge:
            ex = prepare_export(workspace, patients=patients, seed=seed, reuse=True)
            kge = KGEResult.load(kge_dir)
            if kge.entities != ex.entities:
                raise WorkspaceError("the KGE vectors do not match the graph export: rerun `kgrec train --stage kge`")
            init = kge.entity_vectors
        else:
            ex = prepare_export(workspace, patients=patients, seed=seed, reuse=has_kge)
        # with KGE vectors, the residual decoder: the KGE's own score plus the GNN's gated correction (kgrec.embed.gnn)
        res = train_gnn(ex, dim=dim, epochs=epochs, lr=lr, num_layers=num_layers, init_vectors=init, kge=kge if init is not None else None,
                        seed=seed, progress=progress, device=device)
        with atomic_dir(out) as tmp:
            res.save(tmp)
            _record(tmp, _unused(why))
        return EmbedStageResult("gnn", res.metrics, baseline_metrics(ex, workspace, seed), res.seconds, ex.info, out, res.config["device"], _unused(why))

    t0 = time.perf_counter()
    root = cache_root()
    tables = _tables(workspace)
    ex = prepare_export(workspace, patients="none", seed=seed, tables=tables)
    og = _open_graph(workspace, tables, seed, root, say)
    init, extra, kge = None, {}, None
    if init_from_kge and has_kge:
        if kge_cache.get("export_key") != og.key:
            raise WorkspaceError(f"the KGE vectors in {kge_dir} were trained on another graph than the workspace's now: rerun `kgrec train --stage kge`")
        kge = KGEResult.load(kge_dir)
        pos = {e: i for i, e in enumerate(kge.entities)}
        rows = [pos.get(e, -1) for e in og.export.entities]
        if min(rows, default=0) < 0:
            raise WorkspaceError(f"the KGE vectors in {kge_dir} lack entities of the graph: rerun `kgrec train --stage kge`")
        init = kge.entity_vectors[rows]  # exactly the cached entry's vectors, in the cohort-free order
        extra["kge_entry"] = kge_cache.get("key")
    else:
        extra["init"] = "random" if not init_from_kge else "random: no KGE vectors in the workspace"
    # every keyword argument of train_gnn goes through this dict, so the key covers new ones as they come
    # (the KGE for the residual decoder, over the cohort-free index: keyable() hashes it by content)
    kge_open = KGEResult(init, kge.relation_vectors, og.export.entities, kge.relations, kge.metrics, kge.config) if kge is not None else None
    gnn_kwargs = dict(dim=dim, epochs=epochs, lr=lr, num_layers=num_layers, init_vectors=init, kge=kge_open, seed=seed, progress=progress, device=device)
    got, cached, m = _fetch_filled("gnn", og, ex, gnn_kwargs, extra, train_gnn, GNNResult, root, say)
    res = GNNResult(m.mats[0], [ex.entities[i] for i in m.rows], cached.relation_vector, cached.metrics, cached.config, cached.seconds, cached.losses,
                    cached.decoder)
    if kge is not None and kge.entities != res.entities:
        raise WorkspaceError(f"the KGE vectors in {kge_dir} cover other entities than the GNN's: rerun `kgrec train --stage kge`")
    info = _used(got, og, m, time.perf_counter() - t0)
    if "init" in extra:
        info["init"] = extra["init"]
    with atomic_dir(out) as tmp:
        res.save(tmp)
        _record(tmp, info)
    say(cache_line("gnn", info))
    return EmbedStageResult("gnn", res.metrics, baseline_metrics(ex, workspace, seed), 0.0 if got.hit else cached.seconds, ex.info, out, res.config["device"], info)
