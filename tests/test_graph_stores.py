"""One suite for both graph stores: schema, load, counts, idempotency, all-or-nothing/resumable
loads, the rationale queries, DDI, parameters as data.

The embedded store (Ladybug) runs in this process. The Neo4j store runs against a real Neo4j 5
Community server (the session fixture ``neo4j_server`` in ``tests/conftest.py``: Maven Central, Bolt
on 127.0.0.1, authentication on), with the store's defaults: uniqueness constraints, explicit
transactions. Every shared test runs on both; a few checks are Neo4j's own (constraints on the
server, rollback of a failed batch, a load killed with SIGKILL and resumed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from kgrec.errors import KgrecError, WorkspaceError
from kgrec.graph.queries import load_query, run_query, split_statements
from kgrec.graph.schema import load_schema
from kgrec.graph.stores import GraphLoadError, get_store
from kgrec.graph.tables import GraphTables
from tests.graph_tiny import tiny_tables

STORES = ["embedded", "neo4j"]
SCHEMA = load_schema()
REPO = Path(__file__).resolve().parents[1]


def neo4j_store(server: dict, **kw):
    return get_store("neo4j", uri=server["uri"], user=server["user"], password=server["password"], **kw)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    if request.param == "embedded":
        st = get_store("embedded", workspace=tmp_path / "ws")
    else:
        st = neo4j_store(request.getfixturevalue("neo4j_server"), batch_size=5)  # constraints="unique"
        st.clear()
    yield st
    st.close()


# ---------------------------------------------------------------- helpers
def expected_counts(tables: GraphTables) -> dict:
    c = tables.counts()
    return {
        "nodes": {label: c["nodes"].get(label, 0) for label in SCHEMA.nodes},
        "edges": {name: c["edges"].get(name, 0) for name in SCHEMA.relationships},
    }


def counts(store) -> dict:
    s = store.stats()
    return {"nodes": s["nodes"], "edges": s["edges"]}


def check_path(path: dict, first: tuple[str, str], last: tuple[str, str], types: list[str]) -> None:
    """A path in path order: the given ends and relationship types, consecutive relationships joining
    consecutive nodes, every step with its source and licence."""
    nodes, rels = path["nodes"], path["relationships"]
    assert (nodes[0]["_label"], nodes[0]["id"]) == first
    assert (nodes[-1]["_label"], nodes[-1]["id"]) == last
    assert [r["_type"] for r in rels] == types
    assert len(nodes) == len(rels) + 1
    for i, r in enumerate(rels):
        assert {r["_start"], r["_end"]} == {nodes[i]["id"], nodes[i + 1]["id"]}, (i, r)
        assert r["source"] and r["licence"], r
        assert not any(k.startswith("_kgrec") for k in r), r


def variant(tables: GraphTables) -> GraphTables:
    """The tiny graph, changed: no trial, one more drug class prescribed to visit mimic3:100."""
    nodes = {k: v.copy() for k, v in tables.nodes.items() if k != "Trial"}
    edges = {k: v.copy() for k, v in tables.edges.items() if k not in ("STUDIES", "TARGETS")}
    nodes["Drug"] = pd.concat([nodes["Drug"], pd.DataFrame([{"id": "A06A", "name": "DRUGS FOR CONSTIPATION", "source": "atc"}])])
    edges["HAS_PRESCRIPTION"] = pd.concat(
        [edges["HAS_PRESCRIPTION"], pd.DataFrame([{"src": "mimic3:100", "dst": "A06A", "source": "mimic3", "licence": "ODbL 1.0"}])]
    )
    return GraphTables(nodes, edges)


# ---------------------------------------------------------------- the suite (both stores)
def test_create_schema(store):
    store.create_schema(SCHEMA)
    store.create_schema(SCHEMA)  # idempotent
    s = store.stats()
    assert set(s["nodes"]) == set(SCHEMA.nodes) and set(s["edges"]) == set(SCHEMA.relationships)
    assert s["n_nodes"] == 0 and s["n_edges"] == 0


def test_load_counts_per_label_type_and_source(store):
    tables = tiny_tables()
    loaded = store.load(tables, SCHEMA)
    assert loaded.n_nodes == 29 and loaded.n_edges == 41
    assert counts(store) == expected_counts(tables)
    s = store.stats()
    assert s["edges_by_source"]["INDICATION"] == {"drugcentral": 2, "pharmacotherapydb": 2}  # parallel edges kept
    assert s["nodes_by_source"]["DiagnosisCode"] == {"gems": 1, "icd": 5}
    assert s["edges_by_source"]["HAS_DIAGNOSIS"] == {"mimic3": 6}


def test_second_load_is_idempotent_and_replaces(store):
    tables = tiny_tables()
    store.load(tables)
    first = store.stats()
    store.load(tables)
    assert store.stats() == first
    # exact duplicate edge rows are one edge in both stores
    dup = tiny_tables()
    dup.edges["MAPS_TO"] = pd.concat([dup.edges["MAPS_TO"], dup.edges["MAPS_TO"].iloc[:2]])
    assert store.load(dup).duplicate_edges_dropped["MAPS_TO"] == 2
    assert store.stats() == first
    # a different graph replaces the previous one: nothing stale stays behind
    changed = variant(tables)
    store.load(changed)
    assert counts(store) == expected_counts(changed)


def test_rationale_indication(store):
    store.load(tiny_tables())
    rows = run_query(store, "rationale_indication", {"visit_id": "mimic3:100", "drug": "B01A"})
    json.dumps(rows)  # plain data, no driver objects
    got = sorted((r["route"], r["ingredient"], r["evidence_source"]) for r in rows)
    assert got == [
        ("code indication", "DB00945", "medi"),
        ("indication", "DB00682", "pharmacotherapydb"),
        ("indication", "DB00945", "drugcentral"),
    ]
    for r in rows:
        types = (
            ["HAS_DIAGNOSIS", "INDICATION_ICD", "IN_CLASS"]
            if r["route"] == "code indication"
            else ["HAS_DIAGNOSIS", "MAPS_TO", "INDICATION", "IN_CLASS"]
        )
        check_path(r["path"], ("Visit", "mimic3:100"), ("Drug", "B01A"), types)
    warfarin = next(r for r in rows if r["ingredient"] == "DB00682")
    steps = [(x["_type"], x["source"], x["licence"]) for x in warfarin["path"]["relationships"]]
    assert steps == [
        ("HAS_DIAGNOSIS", "mimic3", "ODbL 1.0"),
        ("MAPS_TO", "disease_ontology", "CC0 1.0"),
        ("INDICATION", "pharmacotherapydb", "CC0 1.0"),
        ("IN_CLASS", "drugbank", "CC BY-NC 4.0"),
    ]
    assert warfarin["path"]["relationships"][2]["kind"] == "treats"
    assert [n.get("name") for n in warfarin["path"]["nodes"]][1:4] == ["Atrial fibrillation", "atrial fibrillation", "Warfarin"]
    # hypertension 4019 reaches lisinopril through its category 401 and through ICD-10 I10: two sources each
    rows = run_query(store, "rationale_indication", {"visit_id": "mimic3:100", "drug": "C09A"})
    assert sorted((r["route"], r["code"], r["evidence_source"]) for r in rows) == [
        ("indication (related code)", "ICD10CM:I10", "drugcentral"),
        ("indication (related code)", "ICD10CM:I10", "pharmacotherapydb"),
        ("indication (related code)", "ICD9CM:401", "drugcentral"),
        ("indication (related code)", "ICD9CM:401", "pharmacotherapydb"),
    ]
    for r in rows:
        mid = "CODE_PARENT" if r["code"] == "ICD9CM:401" else "GEM"
        check_path(r["path"], ("Visit", "mimic3:100"), ("Drug", "C09A"), ["HAS_DIAGNOSIS", mid, "MAPS_TO", "INDICATION", "IN_CLASS"])
    assert run_query(store, "rationale_indication", {"visit_id": "mimic3:101", "drug": "B01A"}) == []


def test_rationale_trial_literature_similar(store):
    store.load(tiny_tables())
    p = {"visit_id": "mimic3:100", "drug": "B01A"}
    rows = run_query(store, "rationale_trial", p)
    assert [(r["trial"], r["ingredient"]) for r in rows] == [("NCT00000620", "DB00682")]
    check_path(rows[0]["path"], ("Visit", "mimic3:100"), ("Drug", "B01A"), ["HAS_DIAGNOSIS", "MAPS_TO", "TARGETS", "STUDIES", "IN_CLASS"])

    rows = run_query(store, "rationale_literature", p)
    assert sorted((r["relation"], r["pmid"], r["disease"]) for r in rows) == [
        ("co-mention", "2234567", "DOID:0060224"),
        ("induces", "2234567", "DOID:9588"),
    ]
    for r in rows:
        types = (
            ["HAS_DIAGNOSIS", "MAPS_TO", "MENTIONS_DISEASE", "MENTIONS_CHEMICAL", "SAME_AS", "IN_CLASS"]
            if r["relation"] == "co-mention"
            else ["HAS_DIAGNOSIS", "MAPS_TO", "INDUCES", "SAME_AS", "IN_CLASS"]
        )
        check_path(r["path"], ("Visit", "mimic3:100"), ("Drug", "B01A"), types)

    rows = run_query(store, "rationale_similar_patients", p)
    # mimic3:101 (same patient) also received B01A but is left out
    assert [(r["similar_visit"], r["similar_patient"], r["shared_code"]) for r in rows] == [
        ("mimic3:200", "mimic3:20", "ICD9CM:4019"),
        ("mimic3:200", "mimic3:20", "ICD9CM:42731"),
    ]
    for r in rows:
        check_path(r["path"], ("Visit", "mimic3:100"), ("Drug", "B01A"), ["HAS_DIAGNOSIS", "HAS_DIAGNOSIS", "HAS_PRESCRIPTION"])


def test_ddi_check_neighbourhood_and_stats_queries(store):
    store.load(tiny_tables())
    rows = run_query(store, "ddi_check", {"drugs": ["N02B", "C09A", "B01A"]})
    assert [(r["drug_a"], r["drug_b"], r["source"], r["licence"]) for r in rows] == [
        ("B01A", "N02B", "ddi_safedrug", "no licence stated")
    ]
    assert rows[0]["path"]["relationships"][0]["_type"] == "INTERACTS"
    assert run_query(store, "ddi_check", {"drugs": "C09A,B01A"}) == []  # command-line style list

    rows = run_query(store, "drug_neighbourhood", {"drug": "B01A"})
    assert sorted(r["neighbour"] for r in rows) == ["B01", "DB00682", "DB00945", "N02B", "mimic3:101", "mimic3:200"]
    for r in rows:
        assert r["path"]["nodes"][0]["id"] == "B01A" and r["path"]["relationships"][0]["source"]

    rows = run_query(store, "graph_stats")
    nodes = {}
    for r in rows:
        if r["kind"] == "node":
            nodes[r["name"]] = nodes.get(r["name"], 0) + r["count"]
    assert nodes == {k: v for k, v in store.stats()["nodes"].items() if v}
    assert sum(r["count"] for r in rows if r["kind"] == "relationship") == 41


def test_corrupt_row_fails_before_writing(store):
    tables = tiny_tables()
    store.load(tables)
    before = store.stats()
    bad = tiny_tables()
    bad.edges["INDICATION"] = pd.concat(
        [bad.edges["INDICATION"], pd.DataFrame([{"src": "DB00682", "dst": "DOID:404", "kind": "treats", "source": "pharmacotherapydb", "licence": "CC0 1.0"}])],
        ignore_index=True,
    )
    with pytest.raises(GraphLoadError, match=r"INDICATION: row 4 \(source 'pharmacotherapydb'\): dst 'DOID:404' is not a Disease"):
        store.load(bad)
    assert store.stats() == before
    dup = tiny_tables()
    dup.nodes["Drug"] = pd.concat([dup.nodes["Drug"], dup.nodes["Drug"].iloc[[0]]], ignore_index=True)
    with pytest.raises(GraphLoadError, match=r"Drug: row 3 \(source 'atc'\) repeats id 'B01A'"):
        store.load(dup)
    assert store.stats() == before


def test_failure_mid_load_leaves_previous_graph(store, monkeypatch):
    tables = tiny_tables()
    store.load(tables)
    before = store.stats()
    before_rows = run_query(store, "rationale_indication", {"visit_id": "mimic3:100", "drug": "B01A"})
    changed = variant(tables)
    real = type(store)._load_edges
    calls = []

    def failing(self, name, frame, rel, progress):
        calls.append(name)
        if len(calls) == 5:
            raise OSError("disk full (injected)")
        return real(self, name, frame, rel, progress)

    monkeypatch.setattr(type(store), "_load_edges", failing)
    with pytest.raises(OSError, match="injected"):
        store.load(changed)
    monkeypatch.setattr(type(store), "_load_edges", real)
    after = store.stats()
    if store.atomic_load:
        assert after == before
    else:  # resumable: every element of the previous graph is still there
        for kind in ("nodes", "edges"):
            for name, n in before[kind].items():
                if name not in ("Trial", "STUDIES", "TARGETS"):
                    assert after[kind][name] >= n, (name, after[kind][name], n)
        assert after["nodes"]["Trial"] == 1
    assert run_query(store, "rationale_indication", {"visit_id": "mimic3:100", "drug": "B01A"}) == before_rows
    store.load(changed)  # running it again completes it
    assert counts(store) == expected_counts(changed)
    if store.name == "embedded":
        assert sorted(p.name for p in store.path.parent.iterdir()) == ["embedded.lbug"]


def test_parameters_are_data(store):
    store.load(tiny_tables())
    before = store.stats()
    evil = 'B01A"}) MATCH (n) DETACH DELETE n //'
    for quoted in ("B01A' OR 1=1 //", "B01A\\' }) DETACH DELETE n //", "x\\u0027) MATCH (n) DELETE n"):
        assert store.query("MATCH (d:Drug) WHERE d.id = $id RETURN d.id AS id", {"id": quoted}) == []
        assert store.query("RETURN $x AS echo", {"x": quoted}) == [{"echo": quoted}]
    assert store.query("MATCH (d:Drug) WHERE d.id = $id RETURN d.id AS id", {"id": evil}) == []
    assert store.query("MATCH (d:Drug {id: $id}) RETURN d.id AS id", {"id": "B01A"}) == [{"id": "B01A"}]
    assert store.query("RETURN $x AS echo", {"x": evil}) == [{"echo": evil}]
    assert run_query(store, "rationale_indication", {"visit_id": "mimic3:100", "drug": evil}) == []
    assert run_query(store, "ddi_check", {"drugs": ["B01A", 'N02B" OR 1=1 //', "$drugs"]}) == []
    assert store.stats() == before
    with pytest.raises(TypeError):
        store.query("RETURN 1 AS x", [("x", 1)])
    with pytest.raises(ValueError):
        store.query("RETURN 1 AS x", {"x y": 1})
    with pytest.raises(KgrecError, match="needs parameter drug"):
        run_query(store, "rationale_indication", {"visit_id": "mimic3:100"})


def test_quotes_backslashes_and_long_values_round_trip(store):
    """Data with quotes, backslashes, newlines, non-ASCII and a 64 KB property loads and reads back
    byte for byte; a 256 KB parameter is data, not a problem."""
    tables = tiny_tables()
    odd = "O'Brien \"quoted\" C:\\path\\ \\' -- ; // \n newline, naïve café 中文 ✓"
    long_title = ("Warfarin vs aspirin, a 'long' abstract title \\ " * 1400)[:65536]
    tables.nodes["Drug"].loc[tables.nodes["Drug"]["id"] == "B01A", "name"] = odd
    tables.nodes["Publication"].loc[:, "title"] = long_title
    store.load(tables)
    assert store.query("MATCH (d:Drug {id: $id}) RETURN d.name AS name", {"id": "B01A"}) == [{"name": odd}]
    assert store.query("MATCH (d:Drug) WHERE d.name = $n RETURN d.id AS id", {"n": odd}) == [{"id": "B01A"}]
    got = store.query("MATCH (p:Publication {id: $id}) RETURN p.title AS t", {"id": "2234567"})
    assert got == [{"t": long_title}] and len(long_title) == 65536
    big = "x'\\" * 87382
    assert store.query("RETURN size($x) AS n", {"x": big}) == [{"n": len(big)}]
    assert counts(store) == expected_counts(tables)


def test_load_killed_with_sigkill_resumes(store, tmp_path):
    """A load killed (SIGKILL) in the middle of writing edges: the embedded store still holds the
    previous graph (all or nothing); Neo4j holds the previous graph plus what was merged. Loading
    again gives exactly the counts of a clean load."""
    tables = tiny_tables()
    store.load(tables)
    before = store.stats()
    if store.name == "embedded":
        make = f"get_store('embedded', workspace={str(store.path.parent.parent)!r})"
        store.close()
    else:
        srv = {"uri": store.uri, "user": store.user, "password": store._auth[1]}
        make = f"get_store('neo4j', uri={srv['uri']!r}, user={srv['user']!r}, password=os.environ['PW'], batch_size=2)"
    child = textwrap.dedent(f"""
        import os, signal
        from kgrec.graph.stores import get_store
        from tests.test_graph_stores import variant
        from tests.graph_tiny import tiny_tables
        st = {make}
        seen = []
        def progress(table, done, total):
            seen.append(table)
            if table == "HAS_PRESCRIPTION" and done > 0:
                os.kill(os.getpid(), signal.SIGKILL)
        st.load(variant(tiny_tables()), progress=progress)
    """)
    env = {**os.environ, "PW": store._auth[1] if store.name == "neo4j" else ""}
    proc = subprocess.run([sys.executable, "-c", child], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    if store.name == "embedded":
        store = get_store("embedded", workspace=store.path.parent.parent)
        assert store.stats() == before  # the killed load left nothing behind
    else:
        after = store.stats()
        assert after["edges"]["HAS_PRESCRIPTION"] >= before["edges"]["HAS_PRESCRIPTION"]
        assert after["nodes"]["Trial"] == 1  # the previous graph is still complete
    changed = variant(tables)
    store.load(changed)
    assert counts(store) == expected_counts(changed)
    store.close()


# ---------------------------------------------------------------- Neo4j's own
def test_neo4j_constraints_exist_on_the_server(neo4j_server):
    st = neo4j_store(neo4j_server)
    st.clear()
    st.create_schema()
    rows = st.query("SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties RETURN name, type, labelsOrTypes, properties")
    kgrec = {r["labelsOrTypes"][0]: (r["type"], r["properties"]) for r in rows if r["name"].startswith("kgrec_")}
    assert kgrec == {label: ("UNIQUENESS", ["id"]) for label in SCHEMA.nodes}
    # the server enforces it: a second node with the same id is refused
    st.query("CREATE (:Drug {id: 'ZZZZ'})")
    with pytest.raises(KgrecError, match="ConstraintValidationFailed"):
        st.query("CREATE (:Drug {id: 'ZZZZ'})")
    st.clear()
    # --constraints index on a server that has them: the constraints stay, no error
    neo4j_store(neo4j_server, constraints="index").create_schema()


def test_neo4j_failed_batch_rolls_back(neo4j_server):
    """A batch the server rejects part-way (a map is not a property value) is rolled back whole: none
    of its rows, and nothing of the batches after it, is written."""
    st = neo4j_store(neo4j_server, batch_size=3)
    st.clear()
    st.create_schema()
    st._stamp = "test"
    rows = [{"id": f"T{i}", "props": {"name": f"drug {i}"}} for i in range(5)]
    rows[4]["props"]["name"] = {"not": "a property value"}  # in the second batch, after T3
    cypher = "UNWIND $rows AS row MERGE (n:Drug {id: row.id}) SET n += row.props, n._kgrec_load = $stamp RETURN count(n) AS n"
    with pytest.raises(GraphLoadError, match=r"table Drug, rows 3-4: Neo4j: Neo\.ClientError"):
        st._batches(rows, "Drug", cypher, None)
    got = sorted(r["id"] for r in st.query("MATCH (d:Drug) RETURN d.id AS id"))
    assert got == ["T0", "T1", "T2"]  # the first batch committed; T3 (same transaction as T4) rolled back
    st.clear()


def test_neo4j_wrong_password_is_one_clear_error(neo4j_server):
    st = get_store("neo4j", uri=neo4j_server["uri"], user=neo4j_server["user"], password="not-the-password")
    with pytest.raises(KgrecError, match="refused the credentials") as err:
        st.stats()
    assert "not-the-password" not in str(err.value)


def test_cli_on_the_neo4j_store(neo4j_server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import kgrec.graph.load as gl
    from kgrec.cli import app
    from kgrec.graph.build import BuildResult

    tables = tiny_tables()
    monkeypatch.setattr(gl, "_build_graph", lambda data_dir, **kw: BuildResult(tables, {}))
    monkeypatch.setenv("NEO4J_URI", neo4j_server["uri"])
    monkeypatch.setenv("NEO4J_USER", neo4j_server["user"])
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    run = CliRunner().invoke
    r = run(app, ["load-graph", "--store", "neo4j", "-w", str(tmp_path), "--data-dir", str(tmp_path), "--batch-size", "5", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["store"] == "neo4j" and out["counts"]["n_edges"] == 41 and out["load"]["n_edges"] == 41
    assert neo4j_server["password"] not in r.output
    r = run(app, ["query", "rationale_similar_patients", "--store", "neo4j", "-p", "visit_id=mimic3:100", "-p", "drug=B01A", "--json"])
    assert r.exit_code == 0, r.output
    assert [row["similar_visit"] for row in json.loads(r.stdout)["rows"]] == ["mimic3:200", "mimic3:200"]


# ---------------------------------------------------------------- store-independent checks
def test_embedded_store_files(tmp_path):
    ws = tmp_path / "ws"
    with pytest.raises(WorkspaceError, match="load-graph"):
        get_store("embedded", workspace=ws, read_only=True).query("RETURN 1 AS x")
    assert get_store("embedded", workspace=ws, read_only=True).stats()["n_nodes"] == 0
    with get_store("embedded", workspace=ws) as st:
        st.load(tiny_tables())
    assert sorted(p.name for p in (ws / "graph").iterdir()) == ["embedded.lbug"]
    with get_store("embedded", workspace=ws, read_only=True) as ro:  # survives reopening
        assert ro.stats()["n_edges"] == 41
        with pytest.raises(Exception, match="read-only"):
            ro.load(tiny_tables())

def test_query_files_and_dialects(tmp_path):
    q = load_query("graph_stats", "neo4j")
    assert q.path.name == "graph_stats.neo4j.cypher" and q.dialect == "neo4j"
    assert load_query("graph_stats", "embedded").path.name == "graph_stats.cypher"
    assert load_query("rationale_indication", "neo4j").path.name == "rationale_indication.cypher"
    q = load_query("ddi_check")
    assert q.bind({"drugs": "B01A, N02B"}) == {"drugs": ["B01A", "N02B"]}
    assert q.bind({"drugs": '["B01A"]'}) == {"drugs": ["B01A"]}
    with pytest.raises(KgrecError, match="no parameter"):
        q.bind({"drugs": "B01A", "other": 1})
    assert len(load_query("rationale_indication").statements) == 4
    assert split_statements("RETURN ';' AS x; // a;b\nRETURN 2 AS y;") == ["RETURN ';' AS x", "RETURN 2 AS y"]
    user = tmp_path / "mine.cypher"
    user.write_text("// @param n INT64 = 3  how many\nRETURN $n AS n\n")
    assert load_query(str(user)).bind({}) == {"n": 3}
    assert load_query(str(user)).bind({"n": "7"}) == {"n": 7}
    with pytest.raises(KgrecError, match="not found"):
        load_query(str(tmp_path / "nope.cypher"))
    with pytest.raises(KgrecError, match="no query named"):
        load_query("nope")
    # every shipped query declares what it uses
    for name in ("rationale_indication", "rationale_trial", "rationale_literature", "rationale_similar_patients",
                 "ddi_check", "drug_neighbourhood", "graph_stats"):
        query = load_query(name)
        assert set(query.params) == {p for s in query.statements for p in __import__("re").findall(r"\$(\w+)", s)}

def test_neo4j_store_settings(monkeypatch):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    with pytest.raises(KgrecError, match="NEO4J_URI"):
        get_store("neo4j")
    monkeypatch.setenv("NEO4J_URI", "bolt://db.example:7687")
    monkeypatch.setenv("NEO4J_USER", "alice")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret-pw")
    st = get_store("neo4j", batch_size=50)
    assert st.uri == "bolt://db.example:7687" and st.user == "alice" and st.batch_size == 50
    assert "s3cret-pw" not in repr(st) and "s3cret-pw" not in st.describe()
    with pytest.raises(ValueError):
        get_store("neo4j", constraints="maybe")
    with pytest.raises(KgrecError, match="unknown graph store"):
        get_store("sqlite")


# ---------------------------------------------------------------- the commands (embedded store)
def _cli(*args: str):
    from typer.testing import CliRunner

    from kgrec.cli import app

    return CliRunner().invoke(app, list(args))

def test_cli_load_graph_and_query(tmp_path, monkeypatch):
    """`kgrec load-graph` with the real builder on the fixture sources, twice; then `kgrec query`."""
    from tests.graph_fixtures import write_sources, write_workspace

    data, ws = write_sources(tmp_path / "data"), write_workspace(tmp_path / "ws")
    monkeypatch.delenv("KGREC_DATA", raising=False)
    r = _cli("load-graph", "-w", str(ws), "--data-dir", str(data), "--json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["store"] == "embedded" and first["counts"]["nodes"]["Visit"] == 3
    assert first["counts"]["n_edges"] == sum(first["counts"]["edges"].values()) > 0
    assert first["by_source"]["edges"]["HAS_DIAGNOSIS"] == {"mimic3": 4}
    assert first["build"]["counts"]["edges"]["INDICATION"] == first["counts"]["edges"]["INDICATION"]
    r = _cli("load-graph", "-w", str(ws), "--data-dir", str(data), "--json")
    again = json.loads(r.stdout)
    assert (again["counts"], again["by_source"]) == (first["counts"], first["by_source"])

    r = _cli("query", "rationale_indication", "-w", str(ws), "--param", "visit_id=mimic3:10", "--param", "drug=C09A", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["params"] == {"visit_id": "mimic3:10", "drug": "C09A"} and out["rows"]
    for row in out["rows"]:
        path = row["path"]
        assert path["nodes"][0]["id"] == "mimic3:10" and path["nodes"][-1]["id"] == "C09A"
        assert all(rel["source"] and rel["licence"] for rel in path["relationships"])
    assert any(row["ingredient"] == "DB00722" and row["evidence_source"] == "pharmacotherapydb" for row in out["rows"])

    # one visit-id form everywhere: the cohort's own id works as the graph's prefixed one
    r = _cli("query", "rationale_indication", "-w", str(ws), "--param", "visit_id=10", "--param", "drug=C09A", "--json")
    assert json.loads(r.stdout)["params"]["visit_id"] == "mimic3:10" and json.loads(r.stdout)["rows"] == out["rows"]
    r = _cli("query", "ddi_check", "-w", str(ws), "-p", "drugs=C09A,N02B")
    assert r.exit_code == 0, r.output
    from kgrec.cli.common import console

    monkeypatch.setattr(console, "_width", 300)
    r = _cli("query", "rationale_indication", "-w", str(ws), "-p", "visit_id=mimic3:10", "-p", "drug=C09A")
    assert r.exit_code == 0 and "HAS_DIAGNOSIS" in r.output and "(Drug C09A)" in r.output, r.output
    r = _cli("query", "rationale_indication", "-w", str(ws), "-p", "visit_id=mimic3:10")
    assert r.exit_code == 2 and "needs parameter drug" in r.output
    r = _cli("query", "rationale_indication", "-w", str(ws), "-p", "visit_id")
    assert r.exit_code != 0 and "name=value" in r.output

    # a corrupt source row: a clear error naming the file and line, the previous graph intact
    bad = (data / "kg/pharmacotherapydb/indications.tsv").read_text() + "DOID:10763\tDBX\thypertension\tBad\tDM\t1\t1\n"
    (data / "kg/pharmacotherapydb/indications.tsv").write_text(bad)
    r = _cli("load-graph", "-w", str(ws), "--data-dir", str(data), "--json")
    assert r.exit_code == 2, r.output
    assert "indications.tsv" in r.output and "line" in r.output, r.output
    r = _cli("query", "graph_stats", "-w", str(ws), "--json")
    rows = json.loads(r.stdout)["rows"]
    assert sum(x["count"] for x in rows if x["kind"] == "relationship") == first["counts"]["n_edges"]

def test_cli_load_graph_human_output_and_store_errors(tmp_path, monkeypatch):
    """Human output (summary table); a store-side failure (a dangling edge) names table, row and source."""
    import kgrec.graph.load as gl
    from kgrec.graph.build import BuildResult

    tables = tiny_tables()
    monkeypatch.setattr(gl, "_build_graph", lambda data_dir, **kw: BuildResult(tables, {"counts": tables.counts()}))
    ws = tmp_path / "ws"
    (ws / "cohort").mkdir(parents=True)
    r = _cli("load-graph", "-w", str(ws), "--data-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "-[INDICATION]->" in r.output and "pharmacotherapydb 2" in r.output and "edges/s" in r.output
    bad = tiny_tables()
    bad.edges["HAS_DIAGNOSIS"].loc[2, "dst"] = "ICD9CM:0000"
    monkeypatch.setattr(gl, "_build_graph", lambda data_dir, **kw: BuildResult(bad, {}))
    r = _cli("load-graph", "-w", str(ws), "--data-dir", str(tmp_path), "--json")
    assert r.exit_code == 2
    assert "HAS_DIAGNOSIS: row 2 (source 'mimic3'): dst 'ICD9CM:0000' is not a DiagnosisCode" in r.output
    r = _cli("query", "rationale_indication", "-w", str(ws), "-p", "visit_id=mimic3:100", "-p", "drug=B01A", "--json")
    assert len(json.loads(r.stdout)["rows"]) == 3  # the previous graph
    r = _cli("load-graph", "-w", str(ws), "--store", "sqlite")
    assert r.exit_code != 0


# ---------------------------------------------------------------- neo4j-admin import files
def test_neo4j_admin_export_imports_with_neo4j_own_tool(neo4j_server, neo4j_tools, tmp_path):
    """`kgrec export-graph --format neo4j-admin` files, imported by Neo4j's own importer (the AdminTool of
    the Maven Central artefacts) into a new database, give the same graph as a Bolt load: the same counts
    per label, type and source, the same properties (quotes, newlines, booleans, integers), and the same
    relationship keys, so a later Bolt load over the imported database updates it in place."""
    from kgrec.graph.stores.neo4j_admin import write_neo4j_admin

    server = neo4j_tools
    tables = tiny_tables()
    odd = 'O\'Brien "quoted", C:\\path\nsecond line, café'
    tables.nodes["Drug"].loc[tables.nodes["Drug"]["id"] == "B01A", "name"] = odd
    export = write_neo4j_admin(tables, tmp_path / "export")
    assert export.to_dict()["n_edges"] == 41 and (tmp_path / "export" / "import.sh").stat().st_mode & 0o111
    header = (tmp_path / "export" / "relationships" / "INDICATION_ICD.csv").read_text().splitlines()[0]
    assert header == ":START_ID(Ingredient),:END_ID(DiagnosisCode),high_precision:boolean,source,licence,_kgrec_key,:TYPE"
    home = tmp_path / "home"
    server.admin_import(tmp_path / "export", home)
    bolt = neo4j_store(neo4j_server)
    bolt.clear()
    bolt.load(tables)
    q_drug = "MATCH (d:Drug {id: 'B01A'}) RETURN d.name AS name"
    q_rel = ("MATCH (i:Ingredient)-[r:INDICATION_ICD]->(c) RETURN i.id AS i, c.id AS c, r.high_precision AS hp, "
             "r._kgrec_key AS k ORDER BY i, c, k")
    q_int = "MATCH (a:ATCClass) RETURN a.id AS id, a.level AS level ORDER BY id"
    with server.neo4j_server(home=home) as srv:
        imported = get_store("neo4j", uri=srv.uri, user=srv.user, password=srv.password)
        assert imported.stats() == bolt.stats()
        for q in (q_drug, q_rel, q_int):
            assert imported.query(q) == bolt.query(q), q
        assert imported.query(q_drug) == [{"name": odd}]
        for stmt in (tmp_path / "export" / "constraints.cypher").read_text().split(";\n"):
            body = "\n".join(line for line in stmt.splitlines() if not line.startswith("//")).strip()
            if body:
                imported.query(body)
        imported.load(tables)  # a Bolt load over the imported graph: an update in place, not a second copy
        assert imported.stats() == bolt.stats()
    bolt.clear()


def test_neo4j_admin_export_refuses_bad_tables(tmp_path):
    from kgrec.graph.stores.neo4j_admin import write_neo4j_admin

    bad = tiny_tables()
    bad.edges["HAS_DIAGNOSIS"].loc[2, "dst"] = "ICD9CM:0000"
    with pytest.raises(GraphLoadError, match=r"HAS_DIAGNOSIS: row 2 \(source 'mimic3'\): dst 'ICD9CM:0000' is not a DiagnosisCode"):
        write_neo4j_admin(bad, tmp_path / "export")
    assert not (tmp_path / "export").exists() and list(tmp_path.iterdir()) == []


def _tiny_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_embedded_load_on_a_full_disk_is_one_line_and_keeps_the_previous_graph(tmp_path, monkeypatch):
    """A disk that fills during a load (Ladybug says "IO exception: Cannot read from file ...build-...")
    is the ENOSPC error every command words the same way, and the previous graph stays whole: on a
    real, small tmpfs where this machine allows mounting one, and with the failure injected everywhere."""
    from kgrec.errors import describe
    from kgrec.graph.stores import embedded

    # injected: Ladybug's own words for a short write, on a disk with 1 MiB left
    store = get_store("embedded", workspace=tmp_path / "inj")
    store.load(tiny_tables())
    before = store.stats()
    monkeypatch.setattr(embedded.shutil, "disk_usage", lambda p: type("U", (), {"free": 1 << 20})())
    real_copy = type(store)._copy

    def short_write(self, table, frame, types, progress):
        if table == "INDICATION":
            raise embedded._load_failure(f"loading table {table}", RuntimeError(
                "IO exception: Cannot read from file: /x/.embedded.lbug.build-1-2 fileDescriptor: 3 numBytesRead: 0"), self.path.parent)
        return real_copy(self, table, frame, types, progress)

    monkeypatch.setattr(type(store), "_copy", short_write)
    with pytest.raises(OSError) as err:
        store.load(variant(tiny_tables()))
    line = describe(err.value)
    assert err.value.errno == 28 and line.startswith("No space left on device while loading table INDICATION (1 MiB free)"), line
    assert "free some space" in line and "\n" not in line
    monkeypatch.undo()
    assert store.stats() == before and sorted(p.name for p in store.path.parent.iterdir()) == ["embedded.lbug"]
    store.close()
    # another failure on a disk with room stays what it is
    assert isinstance(embedded._load_failure("x", RuntimeError("Binder exception: y"), tmp_path), GraphLoadError)

    # real: a graph that fits once and not twice (the new database is built beside the old one)
    mnt = tmp_path / "small"
    if not _tiny_tmpfs(mnt, "12m"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the injected case above ran")
    try:
        ws = mnt / "ws"
        small = get_store("embedded", workspace=ws)
        small.load(tiny_tables())
        kept = small.stats()
        size = small.path.stat().st_size
        filler = mnt / "filler"
        with open(filler, "wb") as fh:  # leave less room than one more database needs
            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            fh.write(b"\0" * max(0, free - size // 2))
        with pytest.raises(OSError) as err:
            small.load(variant(tiny_tables()))
        assert err.value.errno == 28, err.value
        assert small.stats() == kept
        assert sorted(p.name for p in small.path.parent.iterdir()) == ["embedded.lbug"]
        small.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)  # lazy: Ladybug may hold a file a moment longer
