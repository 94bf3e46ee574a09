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
4. The Neo4j store: ``scripts/bench_neo4j.py`` (a real Neo4j 5 server; loads, neo4j-admin import,
   every query and the services compared with the embedded store).

Targets (issue): whole open graph < 60 s and >= 100k edges/s on the embedded store; rationale p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGREC_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--workspace", type=Path, help="a MIMIC-III demo workspace (default: prepared in a temporary folder)")
    ap.add_argument("--visits", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args()

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
    con = Console()
    con.print(t)
    con.print(f"build (all sources + cohort) {res['graph']['build_s']} s; build + embedded load {e['whole_graph_s']} s")
    con.print(f"embedded phases (s): {e['phases']}; edge COPY alone {e['edge_copy_per_s']:,} edges/s")
    lt = Table(title=f"rationale queries, {len(pairs)} visits (warm; cold = first run)")
    for c in ("store", "query", "with paths", "cold", "p50 ms", "p95 ms", "max"):
        lt.add_column(c, justify="left" if c in ("store", "query") else "right")
    for store_name, block in (("embedded", e),):
        for q, v in block["latency"].items():
            lt.add_row(store_name, q.removeprefix("rationale_"), f"{v['visits_with_paths']}/{v['visits']}", str(v["cold_ms"]),
                       str(v["p50_ms"]), str(v["p95_ms"]), str(v["max_ms"]))
    con.print(lt)


if __name__ == "__main__":
    main()
