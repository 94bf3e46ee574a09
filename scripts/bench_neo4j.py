"""Neo4j for real: bulk-load throughput and differential checks, embedded store vs a Neo4j 5 server.

    python scripts/bench_neo4j.py --workspace WS [--synth-workspace WS50K] [--json]

``WS``: a workspace with a cohort, a loaded embedded graph and a trained student (after ``kgrec run``);
Neo4j: the server of ``NEO4J_URI``/``NEO4J_USER``/``NEO4J_PASSWORD`` (its default database is
replaced), else one started here (``scripts/neo4j_server.py``: Neo4j 5.26 Community from Maven
Central, cold and warm start times reported).

1. Builds the full open graph plus the cohort of ``WS``; loads it into a fresh embedded store and into
   Neo4j (an empty database: the CREATE path), then again into Neo4j (the MERGE path over a full
   graph); edges/s over the whole ``load()`` call. Counts per label, type and source must be equal.
2. ``kgrec export-graph --format neo4j-admin`` files of the same graph, imported with Neo4j's own
   importer (AdminTool from the Maven artefacts) when the server is started here: import time and
   equal counts.
3. Every query in ``cypher/`` on both stores, for several parameter sets each (visits with their
   prescribed drugs and diagnosis codes): rows equal (order-insensitive unless the query orders).
4. ``recommend`` (visits and a new patient by codes), ``explain`` (named drugs) and ``POST
   /recommend`` of ``kgrec serve`` on both stores: the same drugs, rationale paths, sources and
   licences, DDI warnings and texts.
5. With ``--synth-workspace``: the graph with that (e.g. 50k-visit ``kgrec synth``) cohort, loaded
   into an empty Neo4j database; edges/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_graph import visit_drugs  # noqa: E402


def canon(rows: list[dict], ordered: bool) -> list[str]:
    out = [json.dumps(r, sort_keys=True, default=str) for r in rows]
    return out if ordered else sorted(out)


def param_sets(tables, n: int) -> list[dict]:
    """Per visit: its id, first prescribed drug, all its drugs and diagnosis codes."""
    pres = tables.edges["HAS_PRESCRIPTION"]
    diag = tables.edges["HAS_DIAGNOSIS"]
    out = []
    for visit, drug in visit_drugs(tables, n):
        out.append({
            "visit_id": visit, "drug": drug,
            "drugs": sorted(pres.loc[pres["src"] == visit, "dst"].astype(str).unique().tolist()),
            "codes": sorted(diag.loc[diag["src"] == visit, "dst"].astype(str).unique().tolist()),
            "own": [visit],
        })
    return out


def query_diff(emb, neo, psets: list[dict]) -> dict:
    from kgrec.graph.queries import load_query

    names = sorted({p.name.split(".")[0] for p in (REPO / "cypher").glob("*.cypher")})
    res = {}
    for name in names:
        qe, qn = load_query(name, emb.dialect), load_query(name, neo.dialect)
        # as multisets: queries that order have ties, which the two engines break differently
        ordered = False
        sets = [{}] if not qe.params else [{k: p[k] for k in qe.params} for p in psets]
        equal, rows, t_e, t_n = 0, 0, 0.0, 0.0
        mismatches = []
        for params in sets:
            t0 = time.perf_counter()
            a = qe.run(emb, params)
            t_e += time.perf_counter() - t0
            t0 = time.perf_counter()
            b = qn.run(neo, params)
            t_n += time.perf_counter() - t0
            rows += len(a)
            if name == "graph_stats":  # per-store dialect files: compare the counts they report
                a = [r for r in a if r.get("count")]
                b = [r for r in b if r.get("count")]
            if canon(a, ordered) == canon(b, ordered):
                equal += 1
            else:
                mismatches.append({"params": params, "embedded_rows": len(a), "neo4j_rows": len(b)})
        res[name] = {"param_sets": len(sets), "equal": equal, "rows_embedded": rows, "ordered": ordered,
                     "ms_embedded": round(1000 * t_e / len(sets), 1), "ms_neo4j": round(1000 * t_n / len(sets), 1),
                     "mismatches": mismatches[:3]}
    return res


def strip(d: dict) -> dict:
    d = dict(d)
    d.pop("timings_ms", None)
    return d


def service_diff(ws: Path, neo_kw: dict, psets: list[dict]) -> dict:
    from fastapi.testclient import TestClient

    from kgrec.explain.recommend import RecommendService
    from kgrec.serve.app import create_app

    out = {"visits": 0, "visits_equal": 0, "patients": 0, "patients_equal": 0, "explain": 0, "explain_equal": 0,
           "serve": 0, "serve_equal": 0, "paths_compared": 0, "mismatches": []}
    with ExitStack() as stack:
        emb = stack.enter_context(RecommendService(ws, store="embedded"))
        neo = stack.enter_context(RecommendService(ws, store="neo4j", store_kw=neo_kw))
        ce, cn = TestClient(create_app(service=emb)), TestClient(create_app(service=neo))
        for p in psets:
            vid = p["visit_id"].split(":", 1)[1]
            for kind, kw in (("visits", {"visit_id": vid, "top_k": 5}),
                             ("explain", {"visit_id": vid, "drugs": p["drugs"][:3]}),
                             ("patients", {"patient": {"diagnoses": p["codes"][:6]}, "top_k": 5})):
                a, b = strip(emb.recommend(**kw).to_dict()), strip(neo.recommend(**kw).to_dict())
                out[kind] += 1
                out["paths_compared"] += sum(len(d["paths"]) + len(d["cautions"]) for d in a["drugs"])
                if a == b:
                    out[f"{kind}_equal"] += 1
                else:
                    out["mismatches"].append({"kind": kind, "visit": p["visit_id"]})
            body = {"visit_id": vid, "top_k": 5}
            ra, rb = ce.post("/recommend", json=body), cn.post("/recommend", json=body)
            out["serve"] += 1
            if ra.status_code == rb.status_code == 200 and strip(ra.json()) == strip(rb.json()):
                out["serve_equal"] += 1
            else:
                out["mismatches"].append({"kind": "serve", "visit": p["visit_id"], "status": [ra.status_code, rb.status_code]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KGREC_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--workspace", type=Path, required=True, help="a workspace after `kgrec run` (cohort, graph, student)")
    ap.add_argument("--synth-workspace", type=Path, help="a prepared workspace with a large synthetic cohort")
    ap.add_argument("--visits", type=int, default=6, help="parameter sets (visits) per query / service check")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    from neo4j_server import admin_import, neo4j_server

    from kgrec.graph.build import build_graph
    from kgrec.graph.stores import get_store
    from kgrec.graph.stores.neo4j_admin import write_neo4j_admin

    res: dict = {"machine": {"cpus": os.cpu_count()}}
    scratch = Path(tempfile.mkdtemp(prefix="bench-neo4j-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, True)
        if os.environ.get("NEO4J_URI"):
            neo_kw = {"uri": os.environ["NEO4J_URI"], "user": os.environ.get("NEO4J_USER", "neo4j"),
                      "password": os.environ.get("NEO4J_PASSWORD")}
        else:
            srv = stack.enter_context(neo4j_server(heap_mb=2048, pagecache_mb=512))
            neo_kw = {"uri": srv.uri, "user": srv.user, "password": srv.password}
            res["server"] = {"started_s": round(srv.started_s, 1), "prepared_s": round(srv.prepared_s, 1)}
            log(f"Neo4j started in {srv.started_s:.1f} s (prepare {srv.prepared_s:.1f} s)")
        log("building the graph ...")
        t0 = time.perf_counter()
        tables = build_graph(args.data_dir, workspace=args.workspace, progress=False).tables
        res["graph"] = {"build_s": round(time.perf_counter() - t0, 1), **{k: sum(v.values()) for k, v in tables.counts().items()}}
        n_edges = res["graph"]["edges"]

        emb = stack.enter_context(get_store("embedded", workspace=scratch / "emb"))
        le = emb.load(tables)
        neo = get_store("neo4j", **neo_kw)
        neo.clear()
        log("loading into Neo4j (empty database) ...")
        l1 = neo.load(tables)
        s1 = neo.stats()
        log("loading again (MERGE over the full graph) ...")
        l2 = neo.load(tables)
        s2 = neo.stats()
        se = emb.stats()
        res["load"] = {
            "embedded": {"seconds": round(le.seconds, 1), "edges_per_s": round(n_edges / le.seconds)},
            "neo4j_empty": {"seconds": round(l1.seconds, 1), "edges_per_s": round(n_edges / l1.seconds),
                            "phases": {k: round(v, 1) for k, v in l1.phases.items()}},
            "neo4j_again": {"seconds": round(l2.seconds, 1), "edges_per_s": round(n_edges / l2.seconds)},
            "counts_equal_embedded": s1 == se, "counts_equal_after_reload": s2 == s1,
        }
        log(json.dumps(res["load"]))

        if "NEO4J_URI" not in os.environ:
            log("neo4j-admin export + import ...")
            t0 = time.perf_counter()
            write_neo4j_admin(tables, scratch / "export")
            t_write = time.perf_counter() - t0
            t_import = admin_import(scratch / "export", scratch / "admin-home")
            with neo4j_server(home=scratch / "admin-home") as s_adm:
                imported = get_store("neo4j", uri=s_adm.uri, user=s_adm.user, password=s_adm.password).stats()
            res["neo4j_admin"] = {"write_s": round(t_write, 1), "import_s": round(t_import, 1),
                                  "edges_per_s_import": round(n_edges / t_import), "counts_equal": imported == s1}
            log(json.dumps(res["neo4j_admin"]))

        psets = param_sets(tables, args.visits)
        log(f"queries on both stores, {len(psets)} parameter sets ...")
        res["queries"] = query_diff(emb, neo, psets)
        emb.close()
        log("recommend / explain / serve on both stores ...")
        res["service"] = service_diff(args.workspace, neo_kw, psets)
        log(json.dumps(res["service"]))

        if args.synth_workspace:
            log("building the graph with the synthetic cohort ...")
            big = build_graph(args.data_dir, workspace=args.synth_workspace, progress=False).tables
            nb = sum(big.counts()["edges"].values())
            neo.clear()
            lb = neo.load(big)
            res["synth"] = {"visits": big.counts()["nodes"].get("Visit", 0), "edges": nb, "seconds": round(lb.seconds, 1),
                            "edges_per_s": round(nb / lb.seconds), "phases": {k: round(v, 1) for k, v in lb.phases.items()}}
            log(json.dumps(res["synth"]))
        neo.clear()

    if args.json:
        print(json.dumps(res, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"graph loads ({res['machine']['cpus']} CPUs; {res['graph']['nodes']:,} nodes, {n_edges:,} edges)")
    for c in ("load", "seconds", "edges/s"):
        t.add_column(c, justify="left" if c == "load" else "right")
    for k, v in res["load"].items():
        if isinstance(v, dict):
            t.add_row(k, str(v["seconds"]), f"{v['edges_per_s']:,}")
    if "neo4j_admin" in res:
        a = res["neo4j_admin"]
        t.add_row("neo4j-admin import", str(a["import_s"]), f"{a['edges_per_s_import']:,}")
    if "synth" in res:
        t.add_row(f"neo4j, synth cohort ({res['synth']['visits']:,} visits, {res['synth']['edges']:,} edges)",
                  str(res["synth"]["seconds"]), f"{res['synth']['edges_per_s']:,}")
    con.print(t)
    q = Table(title="queries: embedded vs Neo4j")
    for c in ("query", "param sets equal", "rows (embedded)", "ms embedded", "ms neo4j"):
        q.add_column(c, justify="left" if c == "query" else "right")
    for name, v in res["queries"].items():
        q.add_row(name, f"{v['equal']}/{v['param_sets']}", str(v["rows_embedded"]), str(v["ms_embedded"]), str(v["ms_neo4j"]))
    con.print(q)
    con.print(json.dumps(res["service"]))


if __name__ == "__main__":
    main()
