"""`kgrec synth`: a synthetic MIMIC-III cohort built from the open graph, read back by the real loader.

The graph is built once for the module from the shared open data (``../shared/data``); the tests skip
without it. The enrichment test is a real statistic: it fails when prescriptions ignore diagnoses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgrec.cohort import Mappings
from kgrec.cohort.mimic import Mimic3Loader
from kgrec.errors import InputError, KgrecError
from tests.conftest import real_data_dir, requires_real_data

pytestmark = requires_real_data

CSV_TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")


@pytest.fixture(scope="module")
def data() -> Path:
    return real_data_dir()


@pytest.fixture(scope="module")
def graph(data):
    from kgrec.cohort.synth import GRAPH_SOURCES
    from kgrec.graph.build import build_graph

    return build_graph(data, sources=list(GRAPH_SOURCES), progress=False).tables


@pytest.fixture(scope="module")
def knowledge(data, graph):
    from kgrec.cohort.synth import build_knowledge

    return build_knowledge(data, graph=graph)


@pytest.fixture(scope="module")
def cohort300(tmp_path_factory, data, knowledge):
    from kgrec.cohort.synth import synthesize_mimic3

    out = tmp_path_factory.mktemp("synth") / "s300"
    summary = synthesize_mimic3(out, 300, seed=7, knowledge=knowledge)
    cohort = Mimic3Loader(out, Mappings(data)).load()
    return out, summary, cohort


def test_tables_have_mimic3_headers(cohort300, data):
    out, summary, _ = cohort300
    for name in CSV_TABLES:
        ours = pd.read_csv(out / f"{name}.csv", nrows=0).columns.tolist()
        demo = pd.read_csv(data / "mimic-iii-demo" / f"{name}.csv", nrows=0).columns.tolist()
        assert ours == demo, name
    for name, n in summary["rows"].items():
        assert len(pd.read_csv(out / f"{name}.csv", dtype=str)) == n, name
    # codes keep their leading zeros; GSNs are six digits
    rx = pd.read_csv(out / "PRESCRIPTIONS.csv", dtype=str, keep_default_na=False)
    gsn = rx["GSN"][rx["GSN"] != ""]
    assert gsn.str.fullmatch(r"\d{6}").all()


def test_loads_through_the_mimic3_loader(cohort300):
    _, summary, cohort = cohort300
    v = cohort.visits
    stats = cohort.stats()
    assert stats["n_visits"] == 300 == summary["visits"]
    assert stats["n_patients"] == summary["patients"] == 150
    assert stats["n_single_visit_patients"] < stats["n_patients"]  # history: most patients come back
    assert stats["max_visits_per_patient"] >= 3
    # the loader orders a patient's visits by time; our admissions are written in that order
    assert (v.groupby("patient_id")["time"].apply(lambda t: t.is_monotonic_increasing)).all()
    assert v["time"].between(pd.Timestamp("2100-01-01"), pd.Timestamp("2230-01-01")).all()
    # most drug rows map to ATC3 (the unmapped ones are fluids, as in MIMIC)
    rep = cohort.report
    assert rep["drug_mapping_coverage"] >= 0.85
    assert rep["drug_mapping_coverage"] == pytest.approx(summary["drug_rows_with_mappable_gsn"], abs=0.01)
    assert set(rep["mapping_routes"]) <= {"gsn", "unmapped"}
    assert stats["n_eval_visits"] >= 0.9 * 300
    assert 8 <= stats["avg_drugs_per_eval_visit"] <= 25
    assert 5 <= stats["avg_diagnoses_per_eval_visit"] <= 20
    assert stats["n_drugs"] >= 60
    assert stats["n_procedure_codes"] > 0


def _explained(dx: list[list[str]], drugs: list[list[str]], pairs: set[tuple[str, str]]) -> float:
    """Share of (visit, drug) entries that some diagnosis of the same visit indicates."""
    hit = tot = 0
    for d, r in zip(dx, drugs):
        for b in r:
            hit += any((a, b) in pairs for a in d)
            tot += 1
    return hit / tot


def _enrichment(cohort, pairs: set[tuple[str, str]], n_perm: int = 30) -> tuple[float, np.ndarray]:
    v = cohort.visits[cohort.eval_mask()].reset_index(drop=True)
    dx, drugs = v["diagnoses"].tolist(), v["drugs"].tolist()
    rng = np.random.default_rng(0)
    perm = np.array([_explained(dx, [drugs[i] for i in rng.permutation(len(drugs))], pairs) for _ in range(n_perm)])
    return _explained(dx, drugs, pairs), perm


def test_diagnosis_drug_pairs_are_enriched_for_graph_indications(cohort300, graph, knowledge):
    """Observed visits against the same visits with their drug lists shuffled between visits (which
    keeps every marginal): the share of drugs indicated by a diagnosis of their own visit must be
    clearly higher. Random prescribing gives a ratio near 1 and fails."""
    from kgrec.graph.neighbourhood import code_drug_evidence

    _, _, cohort = cohort300
    # (1) independent of the generator's code: the curated indication path as kgrec's graph prior sees it
    ev = code_drug_evidence(graph)
    curated = set(zip(ev.loc[ev["path"] == "indication", "code"], ev.loc[ev["path"] == "indication", "drug"]))
    obs, perm = _enrichment(cohort, curated)
    assert obs > perm.max()
    assert obs / perm.mean() > 1.15, (obs, perm.mean())
    # (2) every graph pair the generator can draw from (indications, MEDI, subtypes), at (ICD-9, ATC3)
    atc = knowledge.products["atc3"].to_numpy()
    t = knowledge.treat
    allpairs = set(zip("ICD9CM:" + t["code"].astype(str), atc[t["product"].to_numpy()]))
    obs2, perm2 = _enrichment(cohort, allpairs)
    assert obs2 > perm2.max()
    assert obs2 / perm2.mean() > 1.1, (obs2, perm2.mean())


def test_negative_control_fails_the_statistic(cohort300, knowledge):
    """The statistic can fail: a cohort whose drug lists are shuffled between visits shows no enrichment."""
    _, _, cohort = cohort300
    shuffled = cohort.visits.copy()
    rng = np.random.default_rng(1)
    shuffled["drugs"] = shuffled["drugs"].iloc[rng.permutation(len(shuffled))].to_numpy()
    control = type(cohort)(shuffled, cohort.codes, cohort.source)
    atc = knowledge.products["atc3"].to_numpy()
    t = knowledge.treat
    allpairs = set(zip("ICD9CM:" + t["code"].astype(str), atc[t["product"].to_numpy()]))
    obs, perm = _enrichment(control, allpairs, n_perm=10)
    assert obs / perm.mean() < 1.1


def test_indication_file_lists_graph_pairs(cohort300, knowledge):
    out, _, _ = cohort300
    used = pd.read_csv(out / "SYNTH_INDICATIONS.csv", dtype=str)
    assert len(used) > 50
    atc = knowledge.products["atc3"].to_numpy()
    t = knowledge.treat
    allpairs = set(zip(t["code"].astype(str), atc[t["product"].to_numpy()]))
    assert all((c, a) in allpairs for c, a in zip(used["ICD9_CODE"], used["ATC3"]))


def test_same_seed_same_bytes_other_seed_differs(tmp_path, knowledge):
    from kgrec.cohort.synth import synthesize_mimic3

    a = synthesize_mimic3(tmp_path / "a", 120, seed=3, knowledge=knowledge)
    b = synthesize_mimic3(tmp_path / "b", 120, seed=3, knowledge=knowledge)
    c = synthesize_mimic3(tmp_path / "c", 120, seed=4, knowledge=knowledge)
    assert a["files"] == b["files"]
    for name in a["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "PRESCRIPTIONS.csv").read_bytes() != (tmp_path / "c" / "PRESCRIPTIONS.csv").read_bytes()
    assert c["visits"] == 120
    # a second run into the same folder replaces the earlier cohort
    d = synthesize_mimic3(tmp_path / "a", 40, seed=3, knowledge=knowledge, patients=40)
    assert d["patients"] == 40 and d["visits_per_patient"]["max"] == 1
    assert len(pd.read_csv(tmp_path / "a" / "ADMISSIONS.csv")) == 40
    assert json.loads((tmp_path / "a" / "synth.json").read_text())["visits"] == 40


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"visits": 0}, "--visits must be a positive"),
        ({"visits": -5}, "--visits must be a positive"),
        ({"visits": 2.5}, "--visits must be a positive"),
        ({"visits": 10, "patients": 11}, "cannot exceed --visits"),
        ({"visits": 10, "patients": 0}, "--patients must be a positive"),
        ({"visits": 10, "visits_per_patient": 0.5}, "at least 1"),
    ],
)
def test_bad_sizes(tmp_path, knowledge, kw, message):
    from kgrec.cohort.synth import synthesize_mimic3

    with pytest.raises(KgrecError, match=message):
        synthesize_mimic3(tmp_path / "out", knowledge=knowledge, **kw)
    assert not (tmp_path / "out").exists()


def test_missing_graph_files_and_folders(tmp_path, data):
    from kgrec.cohort.synth import synthesize_mimic3

    empty = tmp_path / "data"
    (empty / "mappings").mkdir(parents=True)
    with pytest.raises(InputError, match=r"graph source file\(s\) missing: .*kg/pharmacotherapydb/indications.tsv"):
        synthesize_mimic3(tmp_path / "out", 10, data_dir=empty)
    with pytest.raises(InputError, match="open-data folder not found"):
        synthesize_mimic3(tmp_path / "out", 10, data_dir=tmp_path / "nowhere")
    # an unrelated non-empty folder is never overwritten
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        synthesize_mimic3(busy, 10, data_dir=data)
    assert (busy / "notes.txt").read_text() == "mine"


def test_without_the_mimic_demo_folder(tmp_path, data, graph):
    """The demo only lends realism (dictionaries, background formulary); the GSN map stands in without it."""
    from kgrec.cohort.synth import build_knowledge, synthesize_mimic3

    root = tmp_path / "open"
    root.mkdir()
    for sub in ("mappings", "kg", "trials", "ddi"):
        (root / sub).symlink_to(data / sub)
    k = build_knowledge(root, graph=graph)
    assert k.report["background_from"].startswith("GSN map")
    synthesize_mimic3(tmp_path / "s", 80, seed=1, knowledge=k)
    cohort = Mimic3Loader(tmp_path / "s", Mappings(root)).load()
    assert cohort.stats()["n_visits"] == 80
    assert 0.7 <= cohort.report["drug_mapping_coverage"] < 1.0  # the built-in fluids stay unmapped


def test_cli_synth_then_prepare(tmp_path, data, knowledge, monkeypatch):
    import kgrec.cohort.synth.generate as synth_mod  # where synthesize_mimic3 looks build_knowledge up
    from kgrec.cli import app

    monkeypatch.setattr(synth_mod, "build_knowledge", lambda *a, **k: knowledge)  # the graph is built once per module
    runner = CliRunner()
    out = tmp_path / "synth"
    r = runner.invoke(app, ["synth", "--visits", "60", "-o", str(out), "--seed", "5", "--data-dir", str(data), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["visits"] == 60 and summary["patients"] == 30
    assert "--source-dir" in summary["prepare_command"]
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["prepare", "-s", "mimic3", "--source-dir", str(out), "--data-dir", str(data), "-w", str(ws), "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert stats["n_visits"] == 60 and stats["n_patients"] == 30
    assert stats["drug_mapping_coverage"] >= 0.85

    bad = runner.invoke(app, ["synth", "--visits", "0", "-o", str(tmp_path / "x"), "--data-dir", str(data)])
    assert bad.exit_code == 2
    assert "--visits must be a positive" in bad.output
    missing = runner.invoke(app, ["synth", "--visits", "5", "-o", str(tmp_path / "x"), "--data-dir", str(tmp_path / "nodata")])
    assert missing.exit_code == 2 and "open-data folder not found" in missing.output
    assert "--visits" in runner.invoke(app, ["synth", "--help"]).output
