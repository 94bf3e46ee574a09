"""Build the graph's node/edge tables from the open sources (and a workspace cohort).

:func:`build_graph` runs each selected source (``kgrec.graph.sources.REGISTRY``), merges what they
return and checks the result against ``graph_schema/schema.yaml``:

* Selection: all sources by default (``ehr`` only with a workspace that holds a cohort); a source's ``requires`` (the
  sources defining the nodes its edges point at) are added to a selection; ``exclude_nc`` skips the
  non-commercial sources (MEDI) and the non-commercial parts of mixed ones (DrugBank slim ATC codes,
  ChCh-Miner pairs). Derived sources (``icd``) run last.
* Nodes defined by several sources become one row: the node's ``source`` is the first defining source
  in registry order (the registry order is the merge priority), and each property comes from the first
  source in that order that has a non-empty value (e.g. a Drug keeps its WHO ATC name over the cohort's).
* Edges are de-duplicated on ``(src, dst, source)`` plus their kind-like string properties
  (``kind``, ``pmid``, ``atc_code``); the same pair from two sources stays two edges.
* An edge whose end is no node is dropped and counted in the report only for the relationship types
  its source declares droppable (indications, trial edges, literature edges, DDI pairs, IN_CLASS:
  references to DOIDs / DrugBank ids / ATC classes absent from the defining files). Any other dangling
  edge is an error.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kgrec.errors import KgrecError, WorkspaceError
from kgrec.graph.schema import Schema, load_schema
from kgrec.graph.sources import REGISTRY, WORKSPACE_SOURCES, Context, SourceTables, is_nc
from kgrec.graph.tables import GraphTables, isin
from kgrec.progress import report as say

_NOT_KIND = {"source", "licence"}


@dataclass
class BuildResult:
    """The conformed tables and the build report (selection, per-source counts and notes, dropped
    and duplicate edges, final counts per label/type and per source, timings)."""

    tables: GraphTables
    report: dict = field(default_factory=dict)


def select_sources(
    sources: list[str] | tuple[str, ...] | None, workspace: Path | None, exclude_nc: bool
) -> tuple[list[str], dict]:
    """The sources to run, in run order (derived last), and notes for the report."""
    notes: dict = {"requested": list(sources) if sources else "all", "added_as_dependency": [], "skipped": {}}
    has_cohort = workspace is not None and (Path(workspace) / "cohort" / "visits.parquet").exists()
    if sources is None:
        chosen = [n for n in REGISTRY if n not in WORKSPACE_SOURCES or has_cohort]
        if not has_cohort:
            for n in WORKSPACE_SOURCES:
                notes["skipped"][n] = "no workspace given" if workspace is None else f"no cohort in {workspace} (run `kgrec prepare`)"
    else:
        unknown = [s for s in sources if s not in REGISTRY]
        if unknown:
            raise KgrecError(f"unknown graph source(s) {', '.join(map(repr, unknown))}; choose from {', '.join(REGISTRY)}")
        chosen = list(dict.fromkeys(sources))
        for n in chosen:
            if n in WORKSPACE_SOURCES and not has_cohort:
                raise WorkspaceError(
                    f"source {n!r} reads the cohort: pass a workspace (--workspace)"
                    if workspace is None
                    else f"source {n!r} reads the cohort, and {workspace} has none: run `kgrec prepare` first"
                )
        todo = list(chosen)
        while todo:
            for dep in REGISTRY[todo.pop()].requires:
                if dep not in chosen:
                    chosen.append(dep)
                    notes["added_as_dependency"].append(dep)
                    todo.append(dep)
    if exclude_nc:
        for n in [n for n in chosen if REGISTRY[n].nc]:
            chosen.remove(n)
            notes["skipped"][n] = "non-commercial licence (--exclude-nc)"
    order = list(REGISTRY)
    chosen.sort(key=lambda n: (REGISTRY[n].derived, order.index(n)))
    return chosen, notes


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<20}"),
        BarColumn(bar_width=20),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def _check_output(name: str, out: SourceTables, schema: Schema, exclude_nc: bool) -> None:
    for label, df in out.nodes.items():
        if label not in schema.nodes:
            raise ValueError(f"source {name}: node label {label!r} is not in the schema")
        for col in ("id", "source"):
            if col not in df or df[col].isna().any() or (df[col].astype(str) == "").any():
                raise ValueError(f"source {name}: {label} nodes need a non-empty {col!r}")
    for rel, df in out.edges.items():
        if rel not in schema.relationships:
            raise ValueError(f"source {name}: relationship {rel!r} is not in the schema")
        for col in ("src", "dst", "source", "licence"):
            if col not in df or df[col].isna().any() or (df[col].astype(str) == "").any():
                raise ValueError(f"source {name}: {rel} edges need a non-empty {col!r}")
        if exclude_nc and df["licence"].map(is_nc).any():
            raise ValueError(f"source {name}: {rel} edges under a non-commercial licence with exclude_nc")


def merge_nodes(outputs: list[tuple[str, SourceTables]], schema: Schema) -> dict[str, pd.DataFrame]:
    """One row per id and label; ``source`` and every property from the first output (in the given
    order) with a non-empty value."""
    frames: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for _, out in outputs:
        for label, df in out.nodes.items():
            frames[label].append(df)
    nodes = {}
    for label in schema.nodes:
        if label not in frames:
            continue
        df = pd.concat(frames[label], ignore_index=True)
        df = df.astype({c: "object" for c in df.columns})
        df = df.mask(df.map(lambda x: isinstance(x, str) and x == ""))
        nodes[label] = df.groupby("id", sort=False, as_index=False).first()
    return nodes


def merge_edges(
    outputs: list[tuple[str, SourceTables]], schema: Schema, nodes: dict[str, pd.DataFrame], report: dict
) -> dict[str, pd.DataFrame]:
    frames: dict[str, list[pd.DataFrame]] = defaultdict(list)
    droppable: dict[str, set[str]] = {name: out.droppable for name, out in outputs}
    for name, out in outputs:
        for rel, df in out.edges.items():
            frames[rel].append(df.assign(_module=name))
    ids = {label: df["id"] for label, df in nodes.items()}
    edges = {}
    for rel, spec in schema.relationships.items():
        if rel not in frames:
            continue
        df = pd.concat(frames[rel], ignore_index=True)
        key = ["src", "dst", "source"] + [p for p, t in spec.properties.items() if t == "STRING" and p not in _NOT_KIND and p in df]
        before = len(df)
        df = df.drop_duplicates(key)
        if before != len(df):
            report["duplicate_edges_removed"][rel] = before - len(df)
        miss_src = ~isin(df["src"], ids.get(spec.src, []))
        miss_dst = ~isin(df["dst"], ids.get(spec.dst, []))
        bad = miss_src | miss_dst
        if bad.any():
            for module, part in df[bad].groupby("_module"):
                if rel not in droppable[module]:
                    end, label = ("src", spec.src) if (~isin(part["src"], ids.get(spec.src, []))).any() else ("dst", spec.dst)
                    first = part.loc[~isin(part[end], ids.get(label, [])), end].iloc[0]
                    raise ValueError(f"source {module}: {len(part)} {rel} edges point at no {label} node (first {end}: {first!r})")
                for src_name, p in part.groupby("source"):
                    report["dropped_edges"].setdefault(rel, {})[src_name] = {
                        f"no_{spec.src}_src": int((~isin(p["src"], ids.get(spec.src, []))).sum()),
                        f"no_{spec.dst}_dst": int((~isin(p["dst"], ids.get(spec.dst, []))).sum()),
                        "dropped": int(len(p)),
                        "examples": sorted({f"{a}->{b}" for a, b in zip(p["src"].head(3), p["dst"].head(3))}),
                    }
            df = df[~bad]
        edges[rel] = df.drop(columns="_module")
    return edges


def build_graph(
    data_dir: Path,
    workspace: Path | None = None,
    sources: list[str] | tuple[str, ...] | None = None,
    exclude_nc: bool = False,
    progress: bool = True,
    schema: Schema | None = None,
) -> BuildResult:
    """Build the graph tables.

    Args:
        data_dir: the open-data root (``../shared/data`` or ``$KGREC_DATA``).
        workspace: a kgrec workspace whose ``cohort/`` adds Patient/Visit nodes and their edges.
        sources: source names to run (default: all; ``ehr`` only with a workspace); dependencies added.
        exclude_nc: leave out every non-commercial source and part.
        progress: show a rich progress display per source on stderr.
        schema: the graph schema (default: ``graph_schema/schema.yaml``).

    Returns:
        :class:`BuildResult`: tables conformed to the schema, and the report.

    Raises:
        InputError: a source file is missing or has a corrupt row (naming the file and line).
    """
    t0 = time.perf_counter()
    schema = schema or load_schema()
    chosen, notes = select_sources(sources, workspace, exclude_nc)
    ctx = Context(Path(data_dir), workspace, exclude_nc)
    report: dict = {
        "data_dir": str(data_dir),
        "workspace": str(workspace) if workspace is not None else None,
        "exclude_nc": exclude_nc,
        "selection": {**notes, "run": chosen},
        "sources": {},
        "dropped_edges": {},
        "duplicate_edges_removed": {},
    }
    outputs: dict[str, SourceTables] = {}
    with _progress(progress) as bar:
        for k, name in enumerate(chosen, 1):
            say(f"load-graph: building source {name} ({k}/{len(chosen)})")
            spec = REGISTRY[name]
            task = bar.add_task(name, total=1, info="")
            t = time.perf_counter()
            prev = [outputs[n] for n in outputs] if spec.derived else None
            out = spec.create().build(ctx, prev)
            _check_output(name, out, schema, exclude_nc)
            outputs[name] = out
            c = out.counts()
            secs = round(time.perf_counter() - t, 3)
            report["sources"][name] = {**c, "seconds": secs, "notes": out.report}
            n_nodes, n_edges = sum(c["nodes"].values()), sum(c["edges"].values())
            bar.update(task, completed=1, info=f"{n_nodes:,} nodes, {n_edges:,} edges")
        say("load-graph: merging and checking the sources")
        merge_task = bar.add_task("merge + check", total=1, info="")
        ordered = [(n, outputs[n]) for n in REGISTRY if n in outputs]  # merge priority = registry order
        nodes = merge_nodes(ordered, schema)
        edges = merge_edges(ordered, schema, nodes, report)
        tables = GraphTables(nodes, edges).conform(schema)
        bar.update(merge_task, completed=1, info=f"{sum(len(v) for v in tables.nodes.values()):,} nodes, {sum(len(v) for v in tables.edges.values()):,} edges")
    report["counts"] = tables.counts()
    report["by_source"] = {
        "nodes": {k: {s: int(n) for s, n in v["source"].value_counts().sort_index().items()} for k, v in tables.nodes.items()},
        "edges": {k: {s: int(n) for s, n in v["source"].value_counts().sort_index().items()} for k, v in tables.edges.items()},
    }
    report["licences"] = dict(
        sorted(pd.concat([v["licence"] for v in tables.edges.values()] or [pd.Series(dtype="string")]).value_counts().items())
    )
    report["licences"] = {str(k): int(v) for k, v in report["licences"].items()}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return BuildResult(tables, report)
