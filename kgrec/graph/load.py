"""``load_graph``: build the graph tables from the open sources (and the workspace cohort) and load
them into a store. ``kgrec load-graph`` calls this.

>>> res = load_graph("ws", "../shared/data")                      # embedded: ws/graph/embedded.lbug
>>> res = load_graph("ws", "../shared/data", store="neo4j", uri="bolt://localhost:7687", batch_size=2000)
>>> res.stats["edges_by_source"]["INDICATION"]
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec import fsatomic
from kgrec.errors import WorkspaceError
from kgrec.graph.schema import Schema, load_schema
from kgrec.graph.stores import get_store
from kgrec.graph.stores.base import LoadStats, Progress


@dataclass
class LoadResult:
    store: str  # "embedded" | "neo4j"
    location: str  # where the graph lives (no credentials)
    load: LoadStats  # what the load wrote, with timings
    stats: dict  # counts in the store after the load: per label/type and per source
    build_report: dict = field(default_factory=dict)  # the builder's report (selection, per-source counts, drops)
    seconds: dict = field(default_factory=dict)  # build, load, total
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "store": self.store,
            "location": self.location,
            "counts": {
                "nodes": self.stats["nodes"],
                "edges": self.stats["edges"],
                "n_nodes": self.stats["n_nodes"],
                "n_edges": self.stats["n_edges"],
            },
            "by_source": {"nodes": self.stats["nodes_by_source"], "edges": self.stats["edges_by_source"]},
            "load": self.load.to_dict(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "notes": list(self.notes),
            "build": self.build_report,
        }


def _build_graph(data_dir: Path, **kw: Any) -> Any:
    """The builder (imported on use: ``kgrec.graph.build``)."""
    from kgrec.graph.build import build_graph

    return build_graph(data_dir, **kw)


def load_graph(
    workspace: Path | str | None,
    data_dir: Path | str,
    store: str = "embedded",
    sources: list[str] | tuple[str, ...] | None = None,
    exclude_nc: bool = False,
    *,
    progress: bool = False,
    on_table: Progress | None = None,
    schema: Schema | None = None,
    **store_kw: Any,
) -> LoadResult:
    """Build the graph from ``data_dir`` (plus the cohort in ``workspace``) and load it into ``store``.

    ``sources``: source names (default: all; the cohort source ``ehr`` when the workspace has a
    cohort). ``exclude_nc``: leave out the non-commercial sources. ``progress``: the builder's
    per-source progress on stderr; ``on_table(table, rows_done, rows_total)``: the store's progress.
    ``store_kw`` go to the store (``uri``, ``user``, ``password``, ``batch_size``, ``constraints`` for
    neo4j). The embedded store lives in ``<workspace>/graph/embedded.lbug``; the loaded tables are also
    saved as Parquet in ``<workspace>/graph/tables`` for the embedding stage.
    """
    schema = schema or load_schema()
    ws = Path(workspace) if workspace is not None else None
    if store == "embedded" and ws is None:
        raise WorkspaceError("the embedded store lives in a workspace: pass --workspace")
    t0 = time.perf_counter()
    if ws is not None:  # finish a swap a killed load left half done, and remove killed loads' files
        fsatomic.recover(ws / "graph")
        fsatomic.sweep(ws / "graph")
    built = _build_graph(
        Path(data_dir), workspace=ws, sources=list(sources) if sources else None, exclude_nc=exclude_nc, progress=progress
    )
    t_build = time.perf_counter() - t0
    if store == "embedded":
        store_kw = {"workspace": ws, **store_kw}
    # the exact tables loaded, for the embedding stage (same graph, no store round trip): staged first,
    # then swapped in with the embedded graph file in one commit (or alone after a Neo4j load)
    tables_dir = ws / "graph" / "tables" if ws is not None else None
    staged = None
    try:
        with get_store(store, **store_kw) as st:
            if tables_dir is not None:
                build_id = getattr(st, "build_id", None) or uuid.uuid4().hex
                staged = built.tables.stage(tables_dir, build_id)
                if hasattr(st, "commit_with"):
                    st.commit_with = [(staged, tables_dir)]
            loaded = st.load(built.tables, schema, progress=on_table)
            stats = st.stats(schema)
            location = st.describe()
        if staged is not None and staged.exists():  # a store without a joint commit (neo4j)
            fsatomic.replace_dir(staged, tables_dir)
    finally:
        if staged is not None and staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    total = time.perf_counter() - t0
    report = built.report if isinstance(built.report, dict) else getattr(built.report, "to_dict", lambda: {})()
    skipped = (report.get("selection") or {}).get("skipped") or {}
    notes = [f"source {name} not loaded: {why}" for name, why in skipped.items()]
    return LoadResult(
        store=store,
        location=location,
        load=loaded,
        stats=stats,
        build_report=report,
        seconds={"build": t_build, "load": loaded.seconds, "total": total},
        notes=notes,
    )


def export_graph(
    workspace: Path | str | None,
    data_dir: Path | str,
    out: Path | str,
    fmt: str = "neo4j-admin",
    sources: list[str] | tuple[str, ...] | None = None,
    exclude_nc: bool = False,
    *,
    progress: bool = False,
    schema: Schema | None = None,
) -> dict[str, Any]:
    """Build the graph as :func:`load_graph` does and write it as files instead of loading it.

    ``fmt="neo4j-admin"``: CSVs for ``neo4j-admin database import full`` plus ``import.sh``,
    ``constraints.cypher`` and ``manifest.json`` (:mod:`kgrec.graph.stores.neo4j_admin`). ``out`` is
    replaced whole once complete."""
    if fmt != "neo4j-admin":
        raise WorkspaceError(f"unknown export format {fmt!r}: the one format is 'neo4j-admin'")
    from kgrec.graph.stores.neo4j_admin import write_neo4j_admin

    ws = Path(workspace) if workspace is not None else None
    t0 = time.perf_counter()
    built = _build_graph(
        Path(data_dir), workspace=ws, sources=list(sources) if sources else None, exclude_nc=exclude_nc, progress=progress
    )
    t_build = time.perf_counter() - t0
    written = write_neo4j_admin(built.tables, Path(out), schema or load_schema())
    return written.to_dict() | {"format": fmt, "seconds": {"build": round(t_build, 3), "write": round(time.perf_counter() - t0 - t_build, 3)}}


__all__ = ["LoadResult", "export_graph", "load_graph"]
