"""Embedding stage on a small structured graph: export, KGE, GNN, popularity baseline, fused vectors."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from kgrec.embed.export import GraphExport, export_graph
from kgrec.errors import WorkspaceError
from kgrec.graph.tables import GraphTables


def structured_graph(n_groups: int = 6, per_group: int = 8, seed: int = 0) -> GraphTables:
    """Ingredients of ATC class g treat diseases of group g (and a few others): learnable structure.
    Diseases of a group share a parent; ingredients of a group share a class; patients link visits."""
    rng = np.random.default_rng(seed)
    ing = [f"DB{g}{i:02d}" for g in range(n_groups) for i in range(per_group)]
    dis = [f"DOID:{g}{i:02d}" for g in range(n_groups) for i in range(per_group)]
    parents = [f"DOID:P{g}" for g in range(n_groups)]
    drugs = [f"A{g:02d}A" for g in range(n_groups)]
    e = lambda rows, **kw: pd.DataFrame(rows, columns=["src", "dst"]).assign(source="test", licence="CC0", **kw)  # noqa: E731
    ind = []
    for g in range(n_groups):
        for i in range(per_group):
            for j in rng.choice(per_group, 3, replace=False):
                ind.append((f"DB{g}{i:02d}", f"DOID:{g}{j:02d}"))
    nodes = {
        "Ingredient": pd.DataFrame({"id": ing, "name": ing}),
        "Disease": pd.DataFrame({"id": dis + parents, "name": dis + parents}),
        "Drug": pd.DataFrame({"id": drugs, "name": drugs}),
        "Patient": pd.DataFrame({"id": ["p1", "p2"], "split": ["train", "test"]}),
        "Visit": pd.DataFrame({"id": ["v1", "v2"]}),
    }
    edges = {
        "INDICATION": e(ind, kind="treats"),
        "IN_CLASS": e([(x, f"A{int(x[2]):02d}A") for x in ing]),
        "DISEASE_PARENT": e([(d, f"DOID:P{d[5]}") for d in dis]),
        "HAS_VISIT": e([("p1", "v1"), ("p2", "v2")]),
        "HAS_PRESCRIPTION": e([("v1", "A00A"), ("v2", "A01A")]),
    }
    return GraphTables(nodes, edges)


def test_export_shared_index_and_no_test_patients(tmp_path):
    ex = export_graph(structured_graph(), seed=1)
    assert "Patient:p1" in ex.entities and "Patient:p2" not in ex.entities and "Visit:v2" not in ex.entities
    assert set(ex.info["target_split"].values()) and sum(ex.info["target_split"].values()) == ex.info["relations_used"]["INDICATION"]
    # held-out pairs are not in training
    tr = {tuple(x) for x in ex.train.tolist()}
    assert not any(tuple(x) in tr for x in ex.test.tolist())
    tf = ex.triples_factory()
    assert tf.num_entities == len(ex.entities) and tf.num_triples == len(ex.train)
    data = ex.hetero_data()
    assert data["Ingredient"].num_nodes == 48
    assert int(data["Ingredient", "IN_CLASS", "Drug"].edge_index.shape[1]) == 48
    ex.save(tmp_path / "exp")
    back = GraphExport.load(tmp_path / "exp")
    assert back.entities == ex.entities and np.array_equal(back.test, ex.test)


def test_the_icd10_tabular_chain_is_not_embedded():
    """CODE_BROADER (and the blocks/chapters only it reaches) leave the export unchanged: the same
    entities and triples, so the shared vector cache keeps its key (kgrec.embed.export.NOT_EMBEDDED)."""
    from kgrec.embed.cache import canonical_export, export_key

    base = structured_graph()
    base.nodes["DiagnosisCode"] = pd.DataFrame({"id": ["ICD10CM:I509", "ICD10CM:I50"], "name": ["hf", "HF"]})
    base.edges["CODE_PARENT"] = pd.DataFrame({"src": ["ICD10CM:I509"], "dst": ["ICD10CM:I50"], "source": "icd", "licence": "public domain"})
    base.edges["MAPS_TO"] = pd.DataFrame({"src": ["ICD10CM:I50"], "dst": ["DOID:000"], "source": "test", "licence": "CC0"})
    placed = GraphTables({**base.nodes, "DiagnosisCode": pd.concat([base.nodes["DiagnosisCode"], pd.DataFrame(
        {"id": ["ICD10CM:I30-I5A", "ICD10CM:9"], "name": ["block", "chapter"]})], ignore_index=True)}, {**base.edges, "CODE_BROADER": pd.DataFrame(
        {"src": ["ICD10CM:I509", "ICD10CM:I50", "ICD10CM:I30-I5A"], "dst": ["ICD10CM:I50", "ICD10CM:I30-I5A", "ICD10CM:9"], "source": "icd", "licence": "public domain"})})
    a, b = (canonical_export(export_graph(t, patients="none", seed=1)) for t in (base, placed))
    assert "DiagnosisCode:ICD10CM:I509" in b.entities and "DiagnosisCode:ICD10CM:9" not in b.entities
    assert "CODE_BROADER" not in b.relations and export_key(a) == export_key(b)


def test_export_errors():
    g = structured_graph()
    del g.edges["INDICATION"]
    with pytest.raises(WorkspaceError, match="no INDICATION"):
        export_graph(g, patients="none")
    g = structured_graph()
    g.nodes["Patient"] = g.nodes["Patient"].drop(columns="split")
    with pytest.raises(WorkspaceError, match="split"):
        export_graph(g, patients="train")


@pytest.fixture
def embed_ws(tmp_path):
    """A workspace with graph tables (patients carry their split)."""
    ws = tmp_path / "ws"
    structured_graph().save(ws / "graph" / "tables")
    return ws


def test_the_export_is_built_once_per_process_for_the_same_tables(embed_ws):
    """The KGE and GNN stages of one `kgrec run` read the same export (kgrec.graph.tables.per_tables);
    a new load of the graph tables gives a new one, and an edge whose end is not an entity is dropped."""
    from kgrec.embed.train import prepare_export

    a = prepare_export(embed_ws, patients="train")
    assert prepare_export(embed_ws, patients="train") is a
    none = prepare_export(embed_ws, patients="none")
    assert none is not a and not any(e.startswith(("Patient:", "Visit:")) for e in none.entities)
    assert prepare_export(embed_ws, patients="train") is a  # one slot per patients mode
    t = GraphTables.load(embed_ws / "graph" / "tables")
    gone = t.nodes["Drug"]["id"].iloc[0]
    t.nodes["Drug"] = t.nodes["Drug"].iloc[1:]
    t.save(embed_ws / "graph" / "tables")
    b = prepare_export(embed_ws, patients="train")
    assert b is not a and len(b.entities) == len(a.entities) - 1 and f"Drug:{gone}" not in b.entities
    n_in_class = int((t.edges["IN_CLASS"]["dst"] != gone).sum())
    assert b.info["relations_used"]["IN_CLASS"] == n_in_class < a.info["relations_used"]["IN_CLASS"]


def test_kge_then_gnn_beat_popularity_and_fuse(embed_ws):
    import kgrec.api as api
    from kgrec.embed.vectors import entity_vectors, load_entity_vectors

    from kgrec.progress import reporting_to

    said: list[str] = []
    with reporting_to(said.append):  # each epoch is a progress message (kgrec run's stage lines show them)
        kge = api.train_kge(embed_ws, dim=16, epochs=40, batch_size=256, lr=0.02, progress=False)
        assert (embed_ws / "embed" / "kge" / "vectors.safetensors").exists()
        gnn = api.train_gnn(embed_ws, dim=32, epochs=60, progress=False)
    assert [m.split(",")[0] for m in said if m.startswith("kge:")] == [f"kge: epoch {e}/40" for e in range(1, 41)]
    gnn_said = [m.split(",")[0] for m in said if m.startswith("gnn:")]  # epochs 1, 2, ... (early stopping may end it before 60)
    assert gnn_said == [f"gnn: epoch {e}/60" for e in range(1, len(gnn_said) + 1)] and len(gnn_said) >= gnn.metrics["best_epoch"]
    # the structure is learnable: both beat the degree baseline on held-out indications
    assert kge.metrics["mrr"] > kge.baseline["mrr"] + 0.05
    assert gnn.metrics["mrr"] > gnn.baseline["mrr"] + 0.05
    assert gnn.export_info["patient_nodes_dropped"] == {"Patient": 1, "Visit": 1}
    ev = load_entity_vectors(embed_ws)
    assert ev.parts == ("kge", "gnn") and ev.dim == 2 * 16 + 32
    v = entity_vectors(embed_ws, ["Drug:A00A", "Disease:nope"])
    assert v.shape == (2, ev.dim) and np.linalg.norm(v[0]) == pytest.approx(np.sqrt(2), rel=1e-4)
    assert not v[1].any()


def test_gnn_same_seed_same_numbers(embed_ws):
    import kgrec.api as api

    a = api.train_gnn(embed_ws, dim=8, epochs=5, init_from_kge=False, progress=False)
    b = api.train_gnn(embed_ws, dim=8, epochs=5, init_from_kge=False, progress=False)
    assert a.metrics == b.metrics


def test_cli_train_errors_without_graph(tmp_path):
    import json

    from typer.testing import CliRunner

    from kgrec.cli import app

    r = CliRunner().invoke(app, ["train", "--stage", "kge", "-w", str(tmp_path / "empty"), "--json"])
    assert r.exit_code == 2 and "kgrec load-graph" in r.output
    ws = tmp_path / "ws2"
    g = structured_graph()
    g.save(ws / "graph" / "tables")
    r = CliRunner().invoke(app, ["train", "--stage", "gnn", "-w", str(ws), "--patients", "none", "--epochs", "3", "--dim", "8", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["stage"] == "gnn" and 0 <= out["metrics"]["mrr"] <= 1 and "mrr" in out["popularity_baseline"]


def test_gnn_supervision_edges_leave_the_message_graph_and_validation_picks_the_epoch(embed_ws):
    import torch

    import kgrec.api as api
    from kgrec.embed.gnn import _drop_edges, _message_graph
    from kgrec.embed.train import prepare_export

    ex = prepare_export(embed_ws, reuse=False)
    _, edges = _message_graph(ex)
    et = next(e for e in edges if e[1] == "INDICATION")
    drop = torch.zeros(edges[et].shape[1], dtype=torch.bool)
    drop[:5] = True
    msg = _drop_edges(edges, et, drop)
    rev = (et[2], "rev_INDICATION", et[0])
    assert msg[et].shape[1] == edges[et].shape[1] - 5 and msg[rev].shape[1] == edges[rev].shape[1] - 5
    kept = {tuple(c) for c in msg[et].T.tolist()}
    assert not any(tuple(c) in kept for c in edges[et][:, :5].T.tolist())
    assert edges[et].shape[1] == int((ex.train[:, 1] == ex.target_relation).sum())  # column j = training edge j
    res = api.train_gnn(embed_ws, dim=8, epochs=10, init_from_kge=False, progress=False)
    cfg = __import__("json").loads((embed_ws / "embed" / "gnn" / "metrics.json").read_text())["config"]
    assert [h["epoch"] for h in cfg["validation"]] == [5, 10] and res.metrics["best_epoch"] in (5, 10)
    assert abs(res.metrics["valid_mrr"] - max(h["valid_mrr"] for h in cfg["validation"])) < 1e-4


@pytest.mark.parametrize("stage", ["kge", "gnn"])
def test_embedding_saves_are_atomic(embed_ws, monkeypatch, stage):
    """A stage killed while it writes its vectors (here: after vectors.safetensors, before the rest) leaves
    the previous vectors whole and no temporary folder behind."""
    from kgrec.embed.gnn import GNNResult
    from kgrec.embed.kge import KGEResult
    from kgrec.embed.train import run_gnn, run_kge

    run_kge(embed_ws, dim=8, epochs=2, progress=False, cache=False)
    if stage == "gnn":
        run_gnn(embed_ws, dim=8, epochs=5, progress=False, cache=False)
    folder = embed_ws / "embed" / stage
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cls = KGEResult if stage == "kge" else GNNResult

    def killed(self, out):
        (out / "vectors.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        (run_kge if stage == "kge" else run_gnn)(embed_ws, dim=8, epochs=2 if stage == "kge" else 5, progress=False, cache=False, seed=7)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_kge_batch_grows_with_the_graph_so_an_epoch_is_at_most_32_steps():
    """A fixed batch made each epoch cost (triples / batch) × entities (dense Adam over the entity table): superlinear in visits."""
    from kgrec.embed.kge import STEPS_PER_EPOCH, auto_batch_size

    assert auto_batch_size(1_000) == 8192  # small graphs, the open graph with a demo cohort included: unchanged
    assert auto_batch_size(262_144) == 8192
    assert auto_batch_size(262_145) == 8193
    for n in (476_978, 965_199, 3_100_000):
        b = auto_batch_size(n)
        assert -(-n // b) <= STEPS_PER_EPOCH < -(-n // (b - 1)) or b == 8192


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only (elsewhere the context is a no-op)")
def test_large_training_tensors_come_from_the_heap_not_fresh_pages_each_step():
    """At 100k visits the KGE's batch tensors (> 32 MB) were mmapped and page-faulted in again every step:
    30 s of system time per 38 s epoch (22 s per epoch with the heap; docs/reports/scale.md). Inside
    large_blocks_from_heap a 64 MB tensor comes from glibc's heap, not from its own mmap; after it, from
    mmap again.

    What is checked is where glibc puts the block (``mallinfo2().hblkhd``: bytes in mmapped blocks), which
    is deterministic. How often a freed block is then reused is not: torch allocates with
    ``posix_memalign``, and counting page faults per step varied from run to run (it failed in CI twice)."""
    import ctypes

    import torch

    from kgrec.embed.device import large_blocks_from_heap

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33: no mallinfo2")
    libc.mallinfo2.restype = Mallinfo2

    def mmapped_by_one_tensor() -> int:
        before = libc.mallinfo2().hblkhd
        x = torch.ones(16 << 20)  # 64 MB
        during = libc.mallinfo2().hblkhd
        del x
        return during - before

    assert mmapped_by_one_tensor() >= 64 << 20  # glibc's default: a block this large gets its own mmap
    with large_blocks_from_heap("cpu") as applied:
        assert applied
        assert mmapped_by_one_tensor() == 0, "inside the context a 64 MB block must come from the heap"
    assert mmapped_by_one_tensor() >= 64 << 20  # the threshold is restored afterwards

    with large_blocks_from_heap("cuda:0") as applied:
        assert not applied  # the GPU's memory is not glibc's
