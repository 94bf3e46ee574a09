"""`kgrec load-graph` and `kgrec query`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import (
    DEFAULT_WORKSPACE,
    DataDir,
    JsonOut,
    Workspace,
    console,
    emit_json,
    handle_errors,
    one_step,
    resolve_data_dir,
    show,
)

StoreOpt = Annotated[str, typer.Option("--store", help="Graph store: 'embedded' (Ladybug in the workspace) or 'neo4j'.")]
UriOpt = Annotated[
    str | None, typer.Option("--uri", help="Neo4j Bolt URI (default: $NEO4J_URI).", show_default=False)
]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Neo4j user (default: $NEO4J_USER, else neo4j).", show_default=False)
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="Neo4j password (default: $NEO4J_PASSWORD; prompted for, hidden, on a terminal). Prefer the "
        "environment variable: options are visible in the process list.",
        show_default=False,
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database", help="Neo4j database (default: the server's home database).", show_default=False),
]


def _store_kw(
    store: str,
    uri: str | None,
    user: str | None,
    password: str | None,
    database: str | None,
    **extra: Any,
) -> dict[str, Any]:
    if store == "embedded":
        return {}
    if store != "neo4j":
        raise typer.BadParameter("choose 'embedded' or 'neo4j'", param_hint="--store")
    if password is None and "NEO4J_PASSWORD" not in os.environ and sys.stdin.isatty():
        password = typer.prompt("Neo4j password", hide_input=True, default="", show_default=False, err=True)
    return {"uri": uri, "user": user, "password": password, "database": database, **extra}


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _by_source(by: dict[str, int]) -> str:
    return ", ".join(f"{s or '?'} {n:,}" for s, n in sorted(by.items(), key=lambda kv: -kv[1]))


@app.command("load-graph")
@handle_errors
def load_graph_cmd(
    workspace: Workspace = DEFAULT_WORKSPACE,
    data_dir: DataDir = None,
    store: StoreOpt = "embedded",
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--sources",
            help="Sources to load (comma-separated or repeated; default: all, plus the cohort when the "
            "workspace has one). Sources the chosen ones depend on are added.",
            show_default=False,
        ),
    ] = None,
    exclude_nc: Annotated[bool, typer.Option("--exclude-nc", help="Leave out the non-commercial sources (MEDI, DrugBank-derived parts).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction (neo4j store).")] = 5000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Transactions in flight at once (neo4j store; deadlocks are retried).")
    ] = 2,
    constraints: Annotated[
        str,
        typer.Option(help="neo4j: 'unique' (uniqueness constraint on id per label), 'index', or 'skip' (servers that reject both)."),
    ] = "unique",
    uri: UriOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Build the knowledge graph from the open sources (and the workspace cohort) and load it.

    The embedded store is WORKSPACE/graph/embedded.lbug, replaced atomically once the new graph is
    complete (a failure leaves the previous one). The neo4j store writes in batches (CREATE into an
    empty database, MERGE otherwise): running the same load again gives the same counts, and
    completes a load that failed half-way. For graphs of millions of edges, `kgrec export-graph
    --format neo4j-admin` writes files for Neo4j's offline bulk importer instead.
    """
    from kgrec.graph.load import load_graph

    kw = _store_kw(store, uri, user, password, database, batch_size=batch_size, workers=workers, constraints=constraints)
    root = resolve_data_dir(data_dir)
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=json_out,
    )
    task = None
    done_before: dict[str, int] = {}

    def on_table(table: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(f"{store}: {table}", total=0)
        if done == 0:
            progress.update(task, total=(progress.tasks[0].total or 0) + total, description=f"{store}: {table}")
            done_before[table] = 0
        progress.advance(task, done - done_before.get(table, 0))
        done_before[table] = done

    def run(sink):
        def table_done(table: str, done: int, total: int) -> None:
            if sink is None:
                on_table(table, done, total)
            else:
                sink(f"load-graph: {store} store: {table} {done:,}/{total:,} rows")

        return load_graph(workspace, root, store=store, sources=_split(sources), exclude_nc=exclude_nc,
                          progress=not json_out and sink is None, on_table=table_done, **kw)

    try:  # no terminal: start, progress and end lines (kgrec.cli.common.one_step)
        res = one_step("load-graph", f"building the knowledge graph and loading it into the {store} store", run)
    finally:
        progress.stop()
    if json_out:
        emit_json(res.to_dict())
        return
    for note in res.notes:
        console.print(f"[yellow]note:[/] {note}")
    table = Table(title=f"graph in {res.location}")
    table.add_column("label / type")
    table.add_column("count", justify="right")
    table.add_column("by source")
    for label, n in res.stats["nodes"].items():
        table.add_row(f"({label})", f"{n:,}", _by_source(res.stats["nodes_by_source"][label]))
    table.add_section()
    for name, n in res.stats["edges"].items():
        table.add_row(f"-[{name}]->", f"{n:,}", _by_source(res.stats["edges_by_source"][name]))
    table.add_section()
    table.add_row("nodes", f"{res.stats['n_nodes']:,}", "")
    table.add_row("relationships", f"{res.stats['n_edges']:,}", "")
    show(table)
    ld = res.load
    rate = f", {ld.n_edges / ld.seconds:,.0f} edges/s" if ld.seconds > 0 else ""
    console.print(f"built in {res.seconds['build']:.1f} s, loaded in {ld.seconds:.1f} s{rate}")
    dropped = {k: v for k, v in (res.build_report.get("dropped_edges") or {}).items() if v}
    if dropped:
        console.print(f"edges dropped by the builder (ends not in the graph): {dropped}")


@app.command("export-graph")
@handle_errors
def export_graph_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (replaced whole once complete).")],
    workspace: Workspace = DEFAULT_WORKSPACE,
    data_dir: DataDir = None,
    fmt: Annotated[str, typer.Option("--format", help="'neo4j-admin': CSVs for `neo4j-admin database import full`.")] = "neo4j-admin",
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="Sources to export (as for load-graph; default: all, plus the cohort).", show_default=False),
    ] = None,
    exclude_nc: Annotated[bool, typer.Option("--exclude-nc", help="Leave out the non-commercial sources.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Write the knowledge graph as files for Neo4j's offline bulk importer (millions of edges).

    OUT gets nodes/<Label>.csv and relationships/<TYPE>.csv with neo4j-admin headers, import.sh (the
    exact `neo4j-admin database import full` command), constraints.cypher (run it once the database
    is started) and manifest.json. The graph is the one `kgrec load-graph` would load.
    """
    from kgrec.graph.load import export_graph

    res = export_graph(workspace, resolve_data_dir(data_dir), out, fmt=fmt, sources=_split(sources),
                       exclude_nc=exclude_nc, progress=not json_out)
    if json_out:
        emit_json(res)
        return
    console.print(f"wrote {res['n_nodes']:,} nodes and {res['n_edges']:,} relationships to {res['folder']}")
    console.print(f"import (Neo4j stopped; the database is overwritten): cd {res['folder']} && ./import.sh")
    console.print("then, with Neo4j running: cypher-shell -f constraints.cypher")


def _parse_params(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{v!r}: use name=value", param_hint="--param")
        out[name.strip()] = value
    return out


def _visit_ids(params: dict, workspace: Path) -> dict:
    """Visit ids as every command takes them: ``100375`` is the workspace cohort's ``mimic3:100375``
    (the graph's id); an id that already has a prefix is kept."""
    meta = Path(workspace) / "cohort" / "meta.json"
    if not meta.is_file():
        return params
    import json

    source = json.loads(meta.read_text()).get("source")
    fix = lambda v: f"{source}:{v}" if source and isinstance(v, str) and v and ":" not in v else v  # noqa: E731
    return {k: (fix(v) if k == "visit_id" else [fix(x) for x in v] if k == "own" and isinstance(v, list) else v) for k, v in params.items()}


def _is_path(value: Any) -> bool:
    return isinstance(value, dict) and "nodes" in value and "relationships" in value


def render(value: Any) -> str:
    """A cell for the terminal: paths as (Label id) -[TYPE source; licence]-> ..., nodes as (Label id)."""
    if _is_path(value):
        nodes, rels = value["nodes"], value["relationships"]
        parts = [render(nodes[0])] if nodes else []
        for i, r in enumerate(rels):
            label = f"{r.get('_type')} {r.get('source', '')}; {r.get('licence', '')}".strip()
            forward = i + 1 < len(nodes) and r.get("_end") == nodes[i + 1].get("id")
            parts.append(f"-[{label}]->" if forward else f"<-[{label}]-")
            if i + 1 < len(nodes):
                parts.append(render(nodes[i + 1]))
        return " ".join(parts)
    if isinstance(value, dict) and "_label" in value:
        return f"({value['_label']} {value.get('id', '')})"
    if isinstance(value, dict) and "_type" in value:
        return f"-[{value['_type']} {value.get('source', '')}]->"
    if isinstance(value, list):
        return ", ".join(render(v) for v in value)
    return "" if value is None else str(value)


@app.command("query")
@handle_errors
def query_cmd(
    query: Annotated[
        str,
        typer.Argument(
            help="A query of cypher/ by name (rationale_indication, rationale_trial, rationale_literature, "
            "rationale_similar_patients, ddi_check, drug_neighbourhood, graph_stats) or a .cypher file.",
            show_default=False,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="name=value (repeat). Lists: a,b,c or JSON. Passed as query parameters.", show_default=False),
    ] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    store: StoreOpt = "embedded",
    uri: UriOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Run a Cypher query on the graph; print the rows as a table, or --json."""
    from kgrec.graph.queries import load_query
    from kgrec.graph.stores import get_store

    params = _parse_params(param)
    kw = _store_kw(store, uri, user, password, database)
    if store == "embedded":
        kw = {"workspace": workspace, "read_only": True}
    with get_store(store, **kw) as st:
        q = load_query(query, st.dialect)
        bound = _visit_ids(q.bind(params), workspace)
        rows = q.run(st, bound)
    if json_out:
        emit_json({"query": q.name, "file": str(q.path), "params": bound, "rows": rows})
        return
    if not rows:
        console.print(f"{q.name}: no rows")
        return
    table = Table(title=f"{q.name} ({len(rows)} rows)", show_lines=any(_is_path(v) for v in rows[0].values()))
    cols = list(dict.fromkeys(c for r in rows for c in r))
    cols = [c for c in cols if not _is_path(rows[0].get(c))] + [c for c in cols if _is_path(rows[0].get(c))]
    for c in cols:
        wide = _is_path(rows[0].get(c))
        table.add_column(c, overflow="fold", ratio=4 if wide else 1, min_width=30 if wide else None)
    for r in rows:
        table.add_row(*(render(r.get(c)) for c in cols))
    show(table)


__all__ = ["load_graph_cmd", "query_cmd", "render"]
