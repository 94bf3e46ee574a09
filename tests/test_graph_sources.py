"""Graph sources -> normalised node/edge tables: exact output on tiny fixtures in the real formats,
licence/source on everything, --exclude-nc, corrupt rows, and one build on the real open data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from kgrec.errors import InputError, KgrecError, WorkspaceError
from kgrec.graph.build import build_graph, select_sources
from kgrec.graph.schema import load_schema
from kgrec.graph.sources import REGISTRY, Context, is_nc
from kgrec.graph.sources.bc5cdr import parse_pubtator
from kgrec.graph.sources.disease_ontology import xref_to_code
from kgrec.graph.sources.ehr import cohort_licence
from kgrec.graph.sources.icd import icd_category
from tests import graph_fixtures as fx


def pairs(df: pd.DataFrame, *cols: str) -> set[tuple]:
    cols = ("src", "dst", *cols)
    return {tuple(None if pd.isna(x) else x for x in row) for row in df[list(cols)].itertuples(index=False)}


def ids(df: pd.DataFrame) -> set[str]:
    return set(df["id"])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return fx.write_sources(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    return fx.write_workspace(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="module")
def full(data, ws):
    return build_graph(data, workspace=ws, progress=False)


@pytest.fixture(scope="module")
def open_only(data, ws):
    return build_graph(data, workspace=ws, exclude_nc=True, progress=False)


def run(name: str, data: Path, ws: Path | None = None, exclude_nc: bool = False):
    ctx = Context(data, ws, exclude_nc)
    return REGISTRY[name].create().build(ctx, [])


# ---------------------------------------------------------------- per source


def test_atc_nodes_and_hierarchy(data):
    out = run("atc", data)
    drug = out.nodes["Drug"].set_index("id")
    assert set(drug.index) == {"A02B", "C09A", "N02B", "R06A"}
    assert drug.loc["C09A", "name"] == "ace inhibitors, plain"
    cls = out.nodes["ATCClass"].set_index("id")
    assert dict(cls["level"]) == {"A": 1, "C": 1, "N": 1, "R": 1, "A02": 2, "C09": 2, "N02": 2, "R06": 2}
    assert cls.loc["A02", "name"] == "drugs for acid related disorders"  # first name of a repeated code
    assert pairs(out.edges["DRUG_PARENT"]) == {("A02B", "A02"), ("C09A", "C09"), ("N02B", "N02"), ("R06A", "R06")}
    assert pairs(out.edges["ATC_PARENT"]) == {("A02", "A"), ("C09", "C"), ("N02", "N"), ("R06", "R")}
    assert set(out.edges["ATC_PARENT"]["licence"]) == {"WHO ATC names"}


def test_drugbank_ingredients_and_cross_checked_classes(data):
    out = run("drugbank", data)
    ing = out.nodes["Ingredient"].set_index("id")
    assert set(ing.index) == {"DB00316", "DB00338", "DB00455", "DB00722", "DB00945", "DB09999"}
    assert ing.loc["DB00722", "groups"] == "approved|investigational"
    assert ing.loc["DB00316", "unii"] == "362O9ITL9D"
    assert ing.loc["DB00316", "inchikey"] == "RZVAJINKPMORJF-UHFFFAOYSA-N"
    assert ing.loc["DB00316", "source"] == "drugbank_vocabulary"
    assert ing.loc["DB09999", "source"] == "drugbank_slim"
    e = out.edges["IN_CLASS"]
    # loratadine's C09AA03 (lisinopril's code) is dropped as a conflict; N02BG99 is unknown to WHO: kept
    assert pairs(e[e["source"] == "drugbank_slim"], "atc_code", "licence") == {
        ("DB00338", "A02B", "A02BC01", "CC BY-NC 4.0"),
        ("DB00455", "R06A", "R06AX13", "CC BY-NC 4.0"),
        ("DB09999", "N02B", "N02BG99", "CC BY-NC 4.0"),
    }
    # the open name match reaches acetaminophen (paracetamol) and lisinopril, which the slim table lacks
    assert pairs(e[e["source"] == "atc_name_match"], "atc_code") == {
        ("DB00316", "N02B", "N02BE01"),
        ("DB00338", "A02B", "A02BC01"),
        ("DB00455", "R06A", "R06AX13"),
        ("DB00722", "C09A", "C09AA03"),
    }
    assert set(e.loc[e["source"] == "atc_name_match", "licence"]) == {"CC0 1.0 + WHO ATC names"}
    assert out.report["slim_atc_conflict_dropped"] == 1
    assert out.report["slim_atc_unverified"] == 1


def test_drugbank_exclude_nc_keeps_cc0_ingredients(data):
    out = run("drugbank", data, exclude_nc=True)
    ing = out.nodes["Ingredient"]
    assert ids(ing) == {"DB00316", "DB00338", "DB00455", "DB00722", "DB00945"}
    assert "groups" not in ing or ing["groups"].isna().all()
    assert set(out.edges["IN_CLASS"]["source"]) == {"atc_name_match"}


def test_disease_ontology(data):
    out = run("disease_ontology", data)
    dis = out.nodes["Disease"].set_index("id")
    assert set(dis.index) == {"DOID:7", "DOID:1287", "DOID:10763", "DOID:2841", "DOID:4"}
    assert dis.loc["DOID:4", "name"] == "disease"  # the root, named only as a parent label
    assert pairs(out.edges["DISEASE_PARENT"]) == {
        ("DOID:7", "DOID:4"),
        ("DOID:1287", "DOID:7"),
        ("DOID:10763", "DOID:1287"),
        ("DOID:2841", "DOID:7"),
        ("DOID:2841", "DOID:1287"),
    }
    assert pairs(out.edges["MAPS_TO"]) == {
        ("ICD10CM:I10", "DOID:10763"),
        ("SNOMED:38341003", "DOID:10763"),
        ("ICD9CM:4939", "DOID:2841"),
        ("ICD10CM:J45909", "DOID:2841"),
        ("ICD10CM:J459", "DOID:2841"),
    }
    assert pairs(out.nodes["DiagnosisCode"].rename(columns={"id": "src", "system": "dst"})) == {("SNOMED:38341003", "SNOMED")}
    assert out.report["xrefs_range_skipped"] == 1
    assert out.report["xrefs_of_obsolete_terms_skipped"] == 2


def test_xref_to_code():
    assert xref_to_code("ICD10CM:E88.9") == ("ICD10CM:E889", "ok")
    assert xref_to_code("ICD9CM:401.9") == ("ICD9CM:4019", "ok")
    assert xref_to_code("ICD9CM:E879.1") == ("ICD9CM:E8791", "ok")
    assert xref_to_code("SNOMEDCT_US_2021_09_01:64572001") == ("SNOMED:64572001", "ok")
    assert xref_to_code("ICD9CM:410-414.99") == (None, "range")
    assert xref_to_code("MESH:D004194") == (None, "other")


def test_gems(data):
    out = run("gems", data)
    assert pairs(out.edges["GEM"], "approximate") == {
        ("ICD9CM:4019", "ICD10CM:I10", False),
        ("ICD9CM:4939", "ICD10CM:J45909", False),  # exact in one of its two rows
        ("ICD9CM:4930", "ICD10CM:J45901", True),
    }
    assert out.report["no_map_skipped"] == 1


def test_indications(data):
    p = run("pharmacotherapydb", data).edges["INDICATION"]
    assert pairs(p, "kind") == {
        ("DB00722", "DOID:10763", "treats"),
        ("DB00316", "DOID:2841", "non_indication"),
        ("DB09999", "DOID:10763", "palliates"),
        ("DB00722", "DOID:9999999", "treats"),  # dropped by the build (no such DOID)
    }
    d = run("drugcentral", data).edges["INDICATION"]
    assert pairs(d, "kind", "licence") == {
        ("DB00722", "DOID:10763", "treats", "CC BY 4.0"),
        ("DB00455", "DOID:2841", "indication", "CC BY 4.0"),
    }


def test_medi(data):
    out = run("medi", data)
    assert pairs(out.edges["INDICATION_ICD"], "high_precision", "licence") == {
        ("DB00722", "ICD9CM:4019", True, "CC BY-NC-SA 3.0"),
        ("DB00316", "ICD9CM:7806", False, "CC BY-NC-SA 3.0"),
        ("DB00316", "ICD9CM:33819", False, "CC BY-NC-SA 3.0"),
    }
    assert out.report["range_rows_skipped"] == 1
    assert out.report["rows_rxnorm_unmapped"] == 1


def test_trials(data):
    out = run("trials", data)
    assert ids(out.nodes["Trial"]) == {"NCT00000001", "NCT00000002", "NCT00000003"}
    assert pairs(out.edges["STUDIES"]) == {
        ("NCT00000001", "DB00722"),
        ("NCT00000001", "DB00316"),
        ("NCT00000002", "DB00455"),
        ("NCT00000003", "DB08866"),
    }
    assert pairs(out.edges["TARGETS"]) == {("NCT00000001", "DOID:10763"), ("NCT00000002", "DOID:2841"), ("NCT00000003", "DOID:2841")}


def test_pubtator_parser(data):
    docs = parse_pubtator(data / "literature/bc5cdr/CDR_TrainingSet.PubTator.txt")
    assert [d.pmid for d in docs] == ["100", "200"]
    d = docs[0]
    assert d.title == "Lisinopril-induced hypertension."
    assert d.mentions[-1][:3] == ("Disease", ["D006973", "D007022"], ["hypertension", "hypotension"])
    assert [r[:3] for r in d.relations] == [("CID", "D017706", "D006973"), ("CID", "D000082", "D007022")]


def test_bc5cdr(data):
    out = run("bc5cdr", data)
    pub = out.nodes["Publication"].set_index("id")
    assert dict(pub["title"]) == {"100": "Lisinopril-induced hypertension.", "200": "Asthma after acetaminophen."}
    chem = out.nodes["Chemical"].set_index("id")
    assert dict(chem["name"]) == {"MESH:D017706": "Lisinopril", "MESH:D000082": "Acetaminophen", "MESH:D003907": "DEX"}
    assert pairs(out.edges["MENTIONS_CHEMICAL"], "count") == {
        ("100", "MESH:D017706", 2),
        ("100", "MESH:D000082", 1),
        ("100", "MESH:D003907", 1),
        ("200", "MESH:D000082", 2),  # the abstract repeated in a second file is read once
    }
    assert pairs(out.edges["MENTIONS_DISEASE"], "count") == {("100", "DOID:10763", 2), ("100", "DOID:2841", 1), ("200", "DOID:2841", 1)}
    assert pairs(out.edges["INDUCES"], "pmid") == {("MESH:D017706", "DOID:10763", "100"), ("MESH:D000082", "DOID:2841", "200")}
    # "DEX" is an abbreviation: no SAME_AS (it would hit other drugs' synonyms)
    assert pairs(out.edges["SAME_AS"]) == {("MESH:D017706", "DB00722"), ("MESH:D000082", "DB00316")}
    r = out.report
    assert (r["abstracts"], r["duplicate_abstracts_skipped"]) == (2, 1)
    assert (r["chemical_mentions_without_id"], r["disease_mentions_without_doid"], r["cid_relations_without_doid"]) == (1, 1, 1)


def test_ddi(data):
    out = run("ddi", data)
    assert pairs(out.edges["INTERACTS"], "source", "licence") == {
        ("C09A", "N02B", "safedrug", "no licence stated"),
        ("A02B", "Z99Z", "safedrug", "no licence stated"),
    }
    assert pairs(out.edges["INGREDIENT_INTERACTS"], "source") == {
        ("DB00316", "DB00722", "chch_miner"),
        ("DB00338", "DB00455", "chch_miner"),
        ("DB00455", "DB08866", "chch_miner"),
    }
    assert "INGREDIENT_INTERACTS" not in run("ddi", data, exclude_nc=True).edges


def test_icd_category():
    assert icd_category("ICD9CM:4019") == "ICD9CM:401"
    assert icd_category("ICD9CM:E8791") == "ICD9CM:E879"
    assert icd_category("ICD9CM:V5867") == "ICD9CM:V58"
    assert icd_category("ICD10CM:E889") == "ICD10CM:E88"
    assert icd_category("SNOMED:38341003") is None


def test_cohort_licence():
    assert cohort_licence("mimic3", {"tables": {"A": "/d/mimic-iii-demo/ADMISSIONS.csv"}}) == "ODbL 1.0"
    assert cohort_licence("mimic4", {"tables": {"A": "/physionet/mimiciv/2.2/hosp/admissions.csv.gz"}}).startswith("PhysioNet")
    assert cohort_licence("synthea", {}) == "MIT"
    assert cohort_licence("eicu", {"licence": "custom"}) == "custom"


# ---------------------------------------------------------------- the merged build


def test_build_merges_and_conforms(full):
    t = full.tables
    schema = load_schema()
    t.conform(schema)  # idempotent: the result already conforms
    # every node has a source, every edge a source and a licence
    for label, df in t.nodes.items():
        assert df["source"].notna().all() and (df["source"] != "").all(), label
    for rel, df in t.edges.items():
        for col in ("source", "licence"):
            assert df[col].notna().all() and (df[col] != "").all(), (rel, col)
    drug = t.nodes["Drug"].set_index("id")
    assert set(drug.index) == {"A02B", "C09A", "N02B", "R06A", "L01F"}
    assert drug.loc["C09A", "name"] == "ace inhibitors, plain"  # WHO name wins over the cohort's
    assert drug.loc["C09A", "source"] == "atc"
    assert drug.loc["L01F", "source"] == "mimic3" and pd.isna(drug.loc["L01F", "name"])  # only the cohort knows it
    dx = t.nodes["DiagnosisCode"].set_index("id")
    assert set(dx.index) == {
        "ICD10CM:I10", "ICD9CM:4939", "ICD10CM:J45909", "ICD10CM:J459", "ICD9CM:4019", "ICD9CM:4930",
        "ICD10CM:J45901", "ICD9CM:7806", "ICD9CM:33819", "ICD9CM:E8791", "ICD9CM:493", "ICD10CM:J45",
        "ICD9CM:401", "ICD9CM:780", "ICD9CM:338", "ICD9CM:E879", "SNOMED:38341003", "ICD10CM:J4590",
        "ICD10CM:J40-J4A", "ICD10CM:I10-I1A", "ICD10CM:9", "ICD10CM:10",
    }  # fmt: skip (ICD-10-CM codes placed in the tabular list: J45909 -> J4590 -> J459 -> J45 -> J40-J4A -> 10)
    assert dx.loc["ICD9CM:4019", "name"] == "Unspecified essential hypertension"
    # ICD-10-CM codes no source names: named from CMS's tabular list (kgrec.cohort.icd10cm)
    assert dx.loc["ICD10CM:J45909", "name"] == "Unspecified asthma, uncomplicated"
    assert dx.loc["ICD10CM:J45", "name"] == "Asthma" and dx.loc["ICD10CM:I10", "name"] == "Essential (primary) hypertension"
    assert dx.loc["ICD9CM:4019", "source"] == "icd" and dx.loc["ICD9CM:4019", "system"] == "ICD9CM"
    assert dx.loc["SNOMED:38341003", "source"] == "disease_ontology"
    assert pairs(t.edges["CODE_PARENT"]) == {
        ("ICD9CM:4939", "ICD9CM:493"), ("ICD10CM:J45909", "ICD10CM:J45"), ("ICD10CM:J459", "ICD10CM:J45"),
        ("ICD9CM:4019", "ICD9CM:401"), ("ICD9CM:4930", "ICD9CM:493"), ("ICD10CM:J45901", "ICD10CM:J45"),
        ("ICD9CM:7806", "ICD9CM:780"), ("ICD9CM:33819", "ICD9CM:338"), ("ICD9CM:E8791", "ICD9CM:E879"),
    }  # fmt: skip
    assert set(t.edges["CODE_PARENT"]["licence"]) == {"public domain"}
    # the ICD-10-CM tabular list's own hierarchy, one level up at a time, every ancestor a named node
    assert pairs(t.edges["CODE_BROADER"]) == {
        ("ICD10CM:J45909", "ICD10CM:J4590"), ("ICD10CM:J45901", "ICD10CM:J4590"), ("ICD10CM:J4590", "ICD10CM:J459"),
        ("ICD10CM:J459", "ICD10CM:J45"), ("ICD10CM:J45", "ICD10CM:J40-J4A"), ("ICD10CM:J40-J4A", "ICD10CM:10"),
        ("ICD10CM:I10", "ICD10CM:I10-I1A"), ("ICD10CM:I10-I1A", "ICD10CM:9"),
    }  # fmt: skip
    assert set(t.edges["CODE_BROADER"]["licence"]) == {"public domain"}
    assert dx.loc["ICD10CM:J4590", "name"] == "Unspecified asthma"
    assert dx.loc["ICD10CM:9", "name"].startswith("Diseases of the circulatory system")
    proc = t.nodes["ProcedureCode"].set_index("id")
    assert dict(proc["system"]) == {"ICD9PROC:3605": "ICD9PROC"} and proc.loc["ICD9PROC:3605", "source"] == "mimic3"
    # dangling edges the issue allows are dropped and counted
    d = full.report["dropped_edges"]
    assert d["INDICATION"]["pharmacotherapydb"]["dropped"] == 1  # DOID:9999999
    assert d["STUDIES"]["trials"]["dropped"] == 1  # DB08866
    assert d["INTERACTS"]["safedrug"]["dropped"] == 1  # Z99Z
    assert d["INGREDIENT_INTERACTS"]["chch_miner"]["dropped"] == 1
    assert pairs(t.edges["INDICATION"], "kind", "source") == {
        ("DB00722", "DOID:10763", "treats", "pharmacotherapydb"),
        ("DB00316", "DOID:2841", "non_indication", "pharmacotherapydb"),
        ("DB09999", "DOID:10763", "palliates", "pharmacotherapydb"),
        ("DB00722", "DOID:10763", "treats", "drugcentral"),  # same pair, second source: a second edge
        ("DB00455", "DOID:2841", "indication", "drugcentral"),
    }
    assert full.report["counts"] == t.counts()
    assert full.report["by_source"]["edges"]["IN_CLASS"] == {"atc_name_match": 4, "drugbank_slim": 3}


def test_build_ehr(full):
    t = full.tables
    assert dict(t.nodes["Patient"].set_index("id")["split"]) == {"mimic3:1": "train", "mimic3:2": "test"}
    assert dict(t.nodes["Visit"].set_index("id")["visit_order"]) == {"mimic3:10": 0, "mimic3:11": 1, "mimic3:20": 0}
    assert pairs(t.edges["HAS_VISIT"]) == {("mimic3:1", "mimic3:10"), ("mimic3:1", "mimic3:11"), ("mimic3:2", "mimic3:20")}
    assert pairs(t.edges["HAS_DIAGNOSIS"]) == {
        ("mimic3:10", "ICD9CM:4019"),
        ("mimic3:10", "ICD9CM:E8791"),
        ("mimic3:11", "ICD9CM:4939"),
        ("mimic3:20", "ICD9CM:4019"),
    }
    assert pairs(t.edges["HAS_PROCEDURE"]) == {("mimic3:10", "ICD9PROC:3605")}
    assert pairs(t.edges["HAS_PRESCRIPTION"]) == {("mimic3:10", "C09A"), ("mimic3:10", "N02B"), ("mimic3:11", "L01F")}
    for rel in ("HAS_VISIT", "HAS_DIAGNOSIS", "HAS_PROCEDURE", "HAS_PRESCRIPTION"):
        assert set(zip(t.edges[rel]["source"], t.edges[rel]["licence"])) == {("mimic3", "ODbL 1.0")}


def test_ehr_without_split(tmp_path, data):
    ws = fx.write_workspace(tmp_path, split=False)
    out = run("ehr", data, ws)
    assert out.nodes["Patient"]["split"].isna().all()


def test_exclude_nc_drops_every_nc_part(open_only, full):
    t = open_only.tables
    for rel, df in t.edges.items():
        assert not df["licence"].map(is_nc).any(), rel
    assert "INDICATION_ICD" not in t.edges and "INGREDIENT_INTERACTS" not in t.edges
    assert set(t.edges["IN_CLASS"]["source"]) == {"atc_name_match"}
    assert "DB09999" not in ids(t.nodes["Ingredient"]) and len(t.nodes["Ingredient"]) == 5
    assert t.nodes["Ingredient"]["groups"].isna().all()
    assert "ICD9CM:7806" not in ids(t.nodes["DiagnosisCode"])  # referenced only by MEDI
    assert open_only.report["selection"]["skipped"]["medi"].startswith("non-commercial")
    assert open_only.report["dropped_edges"]["INDICATION"]["pharmacotherapydb"]["dropped"] == 2  # + DB09999
    # with NC allowed, NC licences are present
    assert any(full.tables.edges[r]["licence"].map(is_nc).any() for r in full.tables.edges)


def test_build_is_deterministic(data, ws, full):
    again = build_graph(data, workspace=ws, progress=False)
    for kind in ("nodes", "edges"):
        a, b = getattr(full.tables, kind), getattr(again.tables, kind)
        assert a.keys() == b.keys()
        for k in a:
            pd.testing.assert_frame_equal(a[k], b[k])


def test_select_sources():
    run_, notes = select_sources(["pharmacotherapydb"], None, False)
    assert set(run_) == {"pharmacotherapydb", "drugbank", "disease_ontology", "atc", "icd"}
    assert run_[-1] == "icd"  # derived sources run last
    assert set(notes["added_as_dependency"]) == {"drugbank", "disease_ontology", "atc", "icd"}
    all_, notes = select_sources(None, None, True)
    assert "ehr" not in all_ and "medi" not in all_
    with pytest.raises(KgrecError, match="unknown graph source"):
        select_sources(["nope"], None, False)
    with pytest.raises(WorkspaceError):
        select_sources(["ehr"], None, False)


def test_workspace_without_cohort(tmp_path, data):
    empty = tmp_path / "ws"
    empty.mkdir()
    run_, notes = select_sources(None, empty, False)
    assert "ehr" not in run_ and "no cohort" in notes["skipped"]["ehr"]
    with pytest.raises(WorkspaceError, match="kgrec prepare"):
        select_sources(["ehr"], empty, False)
    r = build_graph(data, workspace=empty, sources=["gems"], progress=False)  # icd does without names
    assert "Patient" not in r.tables.nodes and len(r.tables.edges["GEM"]) == 3


def test_the_build_reports_each_source_as_done_of_total(data):
    """Without a terminal `kgrec load-graph` prints these messages (kgrec.progress) between its stage lines:
    at 100k visits the build takes ~25 s."""
    from kgrec.progress import reporting_to

    said: list[str] = []
    with reporting_to(said.append):
        r = build_graph(data, sources=["trials", "gems"], progress=False)  # and the sources they need
    built = list(r.report["sources"])
    assert {"trials", "gems"} <= set(built) and len(built) > 2
    assert said == [f"load-graph: building source {n} ({k}/{len(built)})" for k, n in enumerate(built, 1)] + \
        ["load-graph: merging and checking the sources"], said


def test_subset_build(data):
    r = build_graph(data, sources=["trials"], progress=False)
    assert set(r.tables.edges) >= {"STUDIES", "TARGETS"}
    assert "GEM" not in r.tables.edges and "INDICATION" not in r.tables.edges


# ---------------------------------------------------------------- corrupt rows


CORRUPT = [
    ("kg/disease-ontology/HumanDO.tsv", fx.HUMANDO + '"DOID-12"\t"bad"\t"disease"\n', 7, "bad DOID"),
    ("kg/disease-ontology/HumanDO.tsv", fx.HUMANDO.replace('"DOID:1287"\t', '"DOID:1287"'), 3, "expected 3 fields"),
    ("trials/DrugBank-DO-slim.tsv", fx.TRIALS + "NCT00000004\tDB00722\tLisinopril\tDOID:10763\thypertension\textra\n", 7, "expected 5 fields"),
    ("trials/DrugBank-DO-slim.tsv", fx.TRIALS + "NCT4\tDB00722\tLisinopril\tDOID:10763\thypertension\n", 7, "bad NCT id"),
    ("kg/drugbank/drugbank.tsv", fx.SLIM + "DBX0001\tBad\tsmall molecule\t\t\t\t\t\tx\n", 8, "bad DrugBank id"),
    ("kg/drugbank/drugbank.tsv", fx.SLIM + "DB00001\tBad\tsmall molecule\t\tB01AE02|zz\t\t\t\tx\n", 8, "bad ATC code"),
    ("kg/drugbank/drugbank_vocabulary.csv", fx.VOCAB + "DB00002,X,Cetuximab,1,2,3\n", 7, "expected 7 fields"),
    ("kg/medi/MEDI_01212013_0.csv.gz", fx.MEDI.replace("780.6|338.19", "78O.6"), 4, "bad ICD-9 code"),
    ("mappings/icd_cm_9_to_10_mapping.csv.gz", fx.GEMS + "4010,I10,1x000\n", 7, "bad GEM flags"),
    ("kg/pharmacotherapydb/indications.tsv", fx.PHARMACO.replace("\tNOT\t", "\tMAYBE\t"), 3, "unknown category"),
    ("ddi/safedrug-atc3/ddi_atc3_pairs.tsv", fx.SAFEDRUG + "N2B\tC09A\n", 5, "ATC level-3"),
    ("ddi/chch-miner/ChChMiner_valid.csv", fx.CHCH["valid"] + "DB00455,DB00338,C,N,2.0\n", 4, "label must be 0 or 1"),
    ("mappings/atc_coding.csv.gz", fx.ATC + "1AB,bad\n", 19, "bad ATC code"),
    ("literature/bc5cdr/CDR_TestSet.PubTator.txt", fx.DOC_200.replace("\tD001249\n", "\tX001249\n"), 3, "bad MeSH id"),
    ("literature/bc5cdr/CDR_TestSet.PubTator.txt", fx.DOC_200.replace("200\t0\t6\tAsthma\tDisease", "200\t0\t6\tAsthma"), 3, "expected 4"),
    ("literature/bc5cdr/CDR_TestSet.PubTator.txt", "200|a|abstract before its title\n", 1, "outside its document"),
]


@pytest.mark.parametrize("rel,text,line,message", CORRUPT, ids=[f"{c[0].split('/')[-1]}:{c[3]}" for c in CORRUPT])
def test_corrupt_row_names_file_and_line(tmp_path, rel, text, line, message):
    data = fx.write_sources(tmp_path / "data", {rel: text})
    with pytest.raises(InputError) as err:
        build_graph(data, progress=False)
    msg = str(err.value)
    assert Path(rel).name in msg and f"line {line}" in msg and message in msg, msg
    assert err.value.line == line


def test_missing_file_is_named(tmp_path):
    data = fx.write_sources(tmp_path / "data")
    (data / "kg/drugcentral/indications.tsv").unlink()
    with pytest.raises(InputError, match="drugcentral/indications.tsv"):
        build_graph(data, progress=False)


# ---------------------------------------------------------------- the real open data


def _real_data() -> Path | None:
    for p in (os.environ.get("KGREC_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if p and (Path(p) / "kg").is_dir():
            return Path(p)
    return None


REAL = _real_data()


@pytest.mark.skipif(REAL is None, reason="no open data (../shared/data beside the repo, or KGREC_DATA)")
def test_real_open_graph(tmp_path):
    from kgrec.cohort import Mappings, get_loader

    cohort = get_loader("mimic3")(REAL / "mimic-iii-demo", Mappings(REAL)).load()
    cohort.save(tmp_path / "ws" / "cohort")
    t0 = time.perf_counter()
    res = build_graph(REAL, workspace=tmp_path / "ws", progress=False)
    seconds = time.perf_counter() - t0
    assert seconds < 60
    t = res.tables
    # build_graph ends with GraphTables.conform(schema): the tables have exactly the schema's columns
    schema = load_schema()
    assert set(t.nodes) == set(schema.nodes) and set(t.edges) == set(schema.relationships)
    for label, df in t.nodes.items():
        assert list(df.columns) == list(schema.nodes[label].properties), label
    for rel, df in t.edges.items():
        assert list(df.columns) == ["src", "dst", *schema.relationships[rel].properties], rel
    n, e = t.counts()["nodes"], t.counts()["edges"]
    ranges = {
        "Drug": (250, 300), "ATCClass": (100, 120), "Ingredient": (19_000, 21_000), "Disease": (11_000, 13_500),
        "DiagnosisCode": (45_000, 60_000), "ProcedureCode": (100, 300), "Trial": (25_000, 30_000),
        "Publication": (1_500, 1_500), "Chemical": (1_000, 1_500), "Patient": (100, 100), "Visit": (129, 129),
    }  # fmt: skip
    for label, (lo, hi) in ranges.items():
        assert lo <= n[label] <= hi, (label, n[label])
    edge_ranges = {
        "INDICATION": (1_900, 2_100), "INDICATION_ICD": (30_000, 45_000), "INTERACTS": (300, 337),
        "INGREDIENT_INTERACTS": (20_000, 21_486), "IN_CLASS": (4_000, 7_000), "DRUG_PARENT": (250, 300),
        "DISEASE_PARENT": (11_000, 14_000), "CODE_PARENT": (25_000, 40_000), "MAPS_TO": (9_000, 13_000),
        "GEM": (24_000, 25_342), "STUDIES": (40_000, 50_000), "TARGETS": (28_000, 35_000),
        "MENTIONS_CHEMICAL": (4_000, 5_000), "MENTIONS_DISEASE": (3_000, 4_500), "INDUCES": (1_000, 3_000),
        "SAME_AS": (600, 1_000), "HAS_VISIT": (129, 129), "HAS_DIAGNOSIS": (1_700, 1_800),
        "HAS_PROCEDURE": (400, 600), "HAS_PRESCRIPTION": (2_500, 3_000), "CODE_BROADER": (20_000, 40_000),
    }  # fmt: skip
    for rel, (lo, hi) in edge_ranges.items():
        assert lo <= e[rel] <= hi, (rel, e[rel])
    # every ICD-10-CM code of the tabular list sits in its hierarchy, up to a chapter
    from kgrec.cohort import icd10cm

    up = dict(zip(t.edges["CODE_BROADER"]["src"], t.edges["CODE_BROADER"]["dst"]))
    icd10 = [c for c in t.nodes["DiagnosisCode"]["id"] if c.startswith("ICD10CM:") and icd10cm.is_code(c)]
    assert len(icd10) > 15_000 and [c for c in icd10 if c not in up] == []
    for c in icd10[::500]:
        for _ in range(8):
            c = up.get(c, c)
        assert c.removeprefix("ICD10CM:").isdigit(), c  # a chapter, within 8 steps (no cycle)
    for rel, df in t.edges.items():
        assert df["source"].notna().all() and df["licence"].notna().all(), rel
    # the README quirk: loratadine does not land in ACE inhibitors; acetaminophen and lisinopril get classes
    ic = pairs(t.edges["IN_CLASS"])
    assert ("DB00455", "C09A") not in ic and ("DB00455", "R06A") in ic
    assert ("DB00316", "N02B") in ic and ("DB00722", "C09A") in ic
    assert set(t.edges["HAS_VISIT"]["licence"]) == {"ODbL 1.0"}
