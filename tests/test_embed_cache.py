"""The shared cache of cohort-free graph vectors (kgrec.embed.cache): one graph, many cohorts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kgrec.embed.cache import (
    Entry,
    canonical_export,
    entry_key,
    export_key,
    fetch_or_build,
    open_tables,
)
from kgrec.embed.export import export_graph
from kgrec.errors import WorkspaceError
from kgrec.graph.tables import GraphTables
from tests.test_embed import structured_graph

KGE = dict(dim=4, epochs=2, batch_size=512, progress=False)
GNN = dict(dim=8, epochs=2, progress=False)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache folder (never the user's ~/.cache/kgrec)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("KGREC_CACHE", str(root))
    return root


def _edges(rows, source, **kw) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["src", "dst"]).assign(source=source, licence="CC0", **kw)


def cohort_graph(cohort: str) -> GraphTables:
    """The structured open graph (sources marked) plus one cohort, laid out as `kgrec load-graph` does:
    Patient/Visit/HAS_* and cohort-only codes carry the cohort's source; the icd source adds every ICD
    code any source references (the cohort's too) and its category.

    Cohort "a": an ICD code only it references (ICD9CM:2500, category ICD9CM:250): both leave the open graph.
    Cohort "b": ICD9CM:4011 (its category ICD9CM:401 is in the open graph: 1 hop), a cohort-only Drug
    Z98Z that an open IN_CLASS edge reaches (1 hop), a cohort-only Drug Z99Z that only Z98Z reaches
    (2 hops), and an isolated ProcedureCode (missing)."""
    g = structured_graph()
    nodes = {k: v.assign(source="open") for k, v in g.nodes.items() if k not in ("Patient", "Visit")}
    edges = {k: v for k, v in g.edges.items() if k not in ("HAS_VISIT", "HAS_PRESCRIPTION")}
    # the open graph's ICD part: DOID:000 is mapped from ICD9CM:4019, whose category the icd source adds
    codes = [("ICD9CM:4019", "icd"), ("ICD9CM:401", "icd")]
    code_parent = [("ICD9CM:4019", "ICD9CM:401")]
    edges["MAPS_TO"] = _edges([("ICD9CM:4019", "DOID:000")], "disease_ontology")
    p, v = f"{cohort}:1", f"{cohort}:10"
    nodes["Patient"] = pd.DataFrame({"id": [p], "split": ["train"], "source": cohort})
    nodes["Visit"] = pd.DataFrame({"id": [v], "source": cohort})
    edges["HAS_VISIT"] = _edges([(p, v)], cohort)
    edges["HAS_PRESCRIPTION"] = _edges([(v, "A00A")], cohort)
    if cohort == "a":
        codes += [("ICD9CM:2500", "icd"), ("ICD9CM:250", "icd")]
        code_parent += [("ICD9CM:2500", "ICD9CM:250")]
        edges["HAS_DIAGNOSIS"] = _edges([(v, "ICD9CM:2500")], cohort)
    else:
        codes += [("ICD9CM:4011", "icd")]
        code_parent += [("ICD9CM:4011", "ICD9CM:401")]
        edges["HAS_DIAGNOSIS"] = _edges([(v, "ICD9CM:4011")], cohort)
        nodes["Drug"] = pd.concat([nodes["Drug"], pd.DataFrame({"id": ["Z98Z", "Z99Z"], "name": ["z98", "z99"], "source": cohort})], ignore_index=True)
        edges["IN_CLASS"] = pd.concat([edges["IN_CLASS"], _edges([("DB000", "Z98Z")], "atc_name_match")], ignore_index=True)
        edges["INTERACTS"] = _edges([("Z98Z", "Z99Z")], "ddi")
        nodes["ProcedureCode"] = pd.DataFrame({"id": ["ICD9PROC:3605"], "name": ["stent"], "system": ["ICD9PROC"], "source": cohort})
        edges["HAS_PROCEDURE"] = _edges([(v, "ICD9PROC:3605")], cohort)
    nodes["DiagnosisCode"] = pd.DataFrame({"id": [c for c, _ in codes], "system": "ICD9CM", "source": [s for _, s in codes]})
    edges["CODE_PARENT"] = _edges(code_parent, "icd")
    return GraphTables(nodes, edges)


def make_ws(tmp_path, cohort: str):
    ws = tmp_path / f"ws-{cohort}"
    cohort_graph(cohort).save(ws / "graph" / "tables")
    return ws


def test_two_cohorts_give_one_cohort_free_export():
    a, b = cohort_graph("a"), cohort_graph("b")
    (oa, ra), (ob, rb) = open_tables(a), open_tables(b)
    assert ra["cohort_sources"] == ["a"] and rb["cohort_sources"] == ["b"]
    assert ra["icd_codes_only_the_cohort_referenced"] == 2 and rb["icd_codes_only_the_cohort_referenced"] == 1
    ka = export_key(canonical_export(export_graph(oa, patients="none")))
    assert ka == export_key(canonical_export(export_graph(ob, patients="none")))
    # the workspace exports themselves differ (cohort-only codes), so hashing them would never share
    assert export_key(canonical_export(export_graph(a, patients="none"))) != export_key(canonical_export(export_graph(b, patients="none")))
    # the same graph read in another row order gives the same key
    shuffled = GraphTables(dict(oa.nodes), {k: v.sample(frac=1.0, random_state=1) for k, v in reversed(list(oa.edges.items()))})
    assert export_key(canonical_export(export_graph(shuffled, patients="none"))) == ka
    # another split seed is another graph
    assert export_key(canonical_export(export_graph(oa, patients="none", seed=7))) != ka


def test_second_cohort_reuses_the_vectors_without_training(tmp_path, cache_dir, monkeypatch, capsys):
    import kgrec.api as api
    import kgrec.embed.gnn as gnn_mod
    import kgrec.embed.kge as kge_mod
    from kgrec.embed.vectors import load_entity_vectors

    wa, wb = make_ws(tmp_path, "a"), make_ws(tmp_path, "b")
    ka = api.train_kge(wa, patients="none", **KGE)
    ga = api.train_gnn(wa, patients="none", **GNN)
    assert ka.cache["used"] and not ka.cache["hit"] and not ga.cache["hit"]
    assert ka.cache["entry"].startswith(str(cache_dir)) and (cache_dir / "embed").is_dir()
    assert ka.cache["missing"] == 2  # ICD9CM:2500 and its category: only each other as neighbours

    def no_training(*a, **k):
        raise AssertionError("trained although the cache holds the vectors")

    monkeypatch.setattr(kge_mod, "train_kge", no_training)
    monkeypatch.setattr(gnn_mod, "train_gnn", no_training)
    capsys.readouterr()
    kb = api.train_kge(wb, patients="none", **KGE)
    gb = api.train_gnn(wb, patients="none", **GNN)
    assert "kge: cache hit" in capsys.readouterr().err
    for a, b in ((ka, kb), (ga, gb)):
        assert b.cache["hit"] and b.cache["key"] == a.cache["key"] and b.metrics == a.metrics and b.seconds == 0.0
        assert b.cache["filled_by_hops"] == {"1": 2, "2": 1} and b.cache["filled_from_neighbours"] == 3
        assert b.cache["missing"] == 1 and b.cache["missing_examples"] == ["ProcedureCode:ICD9PROC:3605"]
        assert json.loads((b.path / "metrics.json").read_text())["cache"]["hit"] is True
    ea, eb = load_entity_vectors(wa), load_entity_vectors(wb)
    shared, _ = ea.get(["Disease:DOID:000", "Ingredient:DB000"])
    assert np.allclose(eb.get(["Disease:DOID:000", "Ingredient:DB000"])[0], shared)
    # filled from neighbours: Z98Z's only trained neighbour is DB000 (1 hop), Z99Z reaches it in 2; the procedure is missing
    vecs, found = eb.get(["Drug:Z98Z", "Drug:Z99Z", "ProcedureCode:ICD9PROC:3605"])
    assert found.tolist() == [True, True, False]
    assert np.allclose(vecs[0], shared[1], atol=1e-5) and np.allclose(vecs[1], shared[1], atol=1e-5)
    # the CLI reports the hit
    from typer.testing import CliRunner

    from kgrec.cli import app

    r = CliRunner().invoke(app, ["train", "--stage", "kge", "-w", str(wb), "--patients", "none", "--dim", "4", "--epochs", "2", "--batch-size", "512", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["cache"]["hit"] is True
    # the GNN cannot leave the cache while the KGE vectors come from it (they would cover other entities)
    with pytest.raises(WorkspaceError, match="shared cache"):
        api.train_gnn(wb, patients="none", cache=False, **GNN)


def test_other_settings_miss(tmp_path):
    import kgrec.api as api

    ws = make_ws(tmp_path, "a")
    first = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    again = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    other = api.train_gnn(ws, patients="none", init_from_kge=False, **{**GNN, "lr": 0.02})
    assert again.cache["hit"] and again.cache["key"] == first.cache["key"]
    assert not other.cache["hit"] and other.cache["key"] != first.cache["key"]
    assert first.cache["init"].startswith("random")


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest"])
def test_a_damaged_entry_is_reported_and_retrained(tmp_path, capsys, damage):
    import kgrec.api as api

    ws = make_ws(tmp_path, "a")
    first = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    entry = first.cache["entry"]
    vec = tmp_path / "cache" / "embed" / entry.rsplit("/", 1)[1] / "vectors.safetensors"
    data = vec.read_bytes()
    if damage == "truncate":
        vec.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        vec.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        (vec.parent / "manifest.json").unlink()
    capsys.readouterr()
    again = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    err = capsys.readouterr().err
    assert "is unusable" in err and "training it again" in err
    assert not again.cache["hit"] and again.cache["replaced_corrupt_entry"]
    assert again.metrics == first.metrics  # same seed, same numbers: the retrained entry is whole again
    assert api.train_gnn(ws, patients="none", init_from_kge=False, **GNN).cache["hit"]


def test_cache_folder_from_the_environment_or_off(tmp_path, monkeypatch):
    import kgrec.api as api

    ws = make_ws(tmp_path, "a")
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("KGREC_CACHE", str(other))
    res = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    assert res.cache["entry"].startswith(str(other)) and Entry(other, "gnn", res.cache["key"]).problem() is None
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("KGREC_CACHE", "off")
    res = api.train_gnn(ws, patients="none", init_from_kge=False, **GNN)
    assert res.cache == {"used": False, "reason": "disabled (KGREC_CACHE=off)"}
    monkeypatch.setenv("KGREC_CACHE", str(other))
    assert api.train_gnn(ws, patients="none", init_from_kge=False, cache=False, **GNN).cache["reason"].startswith("disabled (cache=False")


def test_patients_train_is_not_cached_and_says_why(tmp_path, cache_dir):
    import kgrec.api as api

    ws = make_ws(tmp_path, "a")
    res = api.train_gnn(ws, patients="train", init_from_kge=False, **GNN)
    assert res.cache["used"] is False and "depend on the cohort" in res.cache["reason"]
    assert json.loads((res.path / "metrics.json").read_text())["cache"] == res.cache
    assert not cache_dir.exists()


def test_the_key_covers_every_argument():
    code = {"module": "m", "source_sha256": "x"}
    base = dict(dim=8, epochs=2, init_vectors=np.zeros((3, 2), dtype=np.float32), progress=True, device="cpu")
    k0, inputs = entry_key("gnn", "e", base, code)
    assert "progress" not in inputs["settings"] and "device" not in inputs["settings"]
    assert entry_key("gnn", "e", {**base, "progress": False, "device": "cuda"}, code)[0] == k0  # display and device: same key
    assert entry_key("gnn", "e", {**base, "init_vectors": np.ones((3, 2), dtype=np.float32)}, code)[0] != k0  # arrays by content
    assert entry_key("gnn", "e", {**base, "new_option": 1}, code)[0] != k0  # an argument added later is keyed too
    assert entry_key("gnn", "e", base, {**code, "source_sha256": "y"})[0] != k0  # the trainer's code
    assert entry_key("gnn", "f", base, code)[0] != k0  # the graph
    with pytest.raises(TypeError, match="cannot key"):
        entry_key("gnn", "e", {**base, "odd": object()}, code)


def test_concurrent_writer_wins_the_rename(tmp_path):
    entry = Entry(tmp_path / "c", "gnn", "ab" * 32)

    def build(folder):
        (folder / "x.bin").write_bytes(b"ours")
        # another host (no shared lock) finishes the same entry first
        def theirs(f):
            (f / "x.bin").write_bytes(b"theirs")
            return {}

        other = tmp_path / "other"
        other.mkdir()
        from kgrec.embed.cache import write_manifest

        theirs(other)
        write_manifest(other, entry.key, "gnn", {}, {})
        other.rename(entry.path)
        return {}

    got = fetch_or_build(entry, {}, build, print)
    assert got.notes.get("lost_race") and (entry.path / "x.bin").read_bytes() == b"theirs"
    assert not [p for p in entry.path.parent.iterdir() if ".tmp-" in p.name]


def test_stage_figure_says_where_the_vectors_came_from():
    from kgrec.stages import key_figure

    out = {"metrics": {"mrr": 0.3}, "cache": {"used": True, "hit": True, "filled_from_neighbours": 5, "missing": 2}}
    assert key_figure("kge", out) == "held-out MRR 0.300, from the shared cache (5 filled from neighbours, 2 missing)"
    assert key_figure("gnn", {"metrics": {"mrr": 0.3}, "cache": {"used": False}}) == "held-out MRR 0.300"


@pytest.mark.parametrize("flags,expected", [([], None), (["--no-cache"], False), (["--no-cache", "--kge-epochs", "3"], False)])
def test_run_no_cache_reaches_both_embedding_stages(monkeypatch, tmp_path, flags, expected):
    """`kgrec run --no-cache` trains the KGE and the GNN in the workspace; without it their settings stay the defaults."""
    import kgrec.api
    from typer.testing import CliRunner

    from kgrec.cli import app

    seen = {}

    def fake_run(*args, **kw):
        seen.update(kw)
        raise SystemExit(0)  # stop before any work: only the settings are under test

    monkeypatch.setattr(kgrec.api, "run", fake_run)
    (tmp_path / "data").mkdir()
    r = CliRunner().invoke(app, ["run", "-w", str(tmp_path / "ws"), "--data-dir", str(tmp_path / "data"), *flags])
    assert r.exit_code == 0, r.output
    for stage in ("kge", "gnn"):
        got = (seen[stage] or {}).get("cache")
        assert got is expected, (stage, seen[stage])
    if "--kge-epochs" in flags:
        assert seen["kge"]["epochs"] == 3
