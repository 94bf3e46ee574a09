"""MIMIC-III and MIMIC-IV loaders on fixtures in the public schemas, and on the real demo when present."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import kgrec
from kgrec.cohort import Cohort, Mappings, get_loader
from kgrec.errors import InputError
from tests.conftest import MIMIC3_TABLES, make_mimic3, real_data_dir, requires_real_data, write


def visits_by_id(cohort: Cohort) -> dict[str, dict]:
    return {r["visit_id"]: r for r in cohort.visits.to_dict("records")}


def test_mimic3_fixture_visits_codes_and_mapping(mini_data):
    c = get_loader("mimic3")(mini_data / "mimic-iii-demo", Mappings(mini_data)).load()
    v = visits_by_id(c)
    assert set(v) == {"100", "101", "200", "300"}
    # diagnoses keep SEQ_NUM order, version in the id
    assert v["100"]["diagnoses"] == ["ICD9CM:99591", "ICD9CM:4019"]
    assert v["100"]["procedures"] == ["ICD9PROC:3605"]
    # duplicate rows collapse; GSN route
    assert v["100"]["drugs"] == ["A06A", "B01A"]
    # NDC route (C09A) and NDC -> RxNorm -> UNII -> DrugBank route (aspirin, first ATC B01AC06)
    assert v["101"]["drugs"] == ["B01A", "C09A"]
    # placeholder NDC and a level-1 ATC code stay unmapped
    assert v["200"]["drugs"] == ["N02B"]
    assert v["300"]["drugs"] == []
    # two-digit years are 21YY: 10/23/64 -> 2164, before 2/3/65 -> 2165
    assert v["100"]["time"] == pd.Timestamp("2164-10-23 21:09")
    assert (v["100"]["visit_order"], v["101"]["visit_order"]) == (0, 1)
    r = c.report
    assert r["prescription_rows"] == 8
    assert r["prescription_rows_mapped"] == 6
    assert r["drug_mapping_coverage"] == pytest.approx(0.75)
    assert r["mapping_routes"] == {"gsn": 4, "ndc": 1, "ndc-rxnorm": 1, "unmapped": 2}
    names = c.names()
    assert names["ICD9CM:4019"] == "Unspecified essential hypertension"
    assert names["ICD9PROC:3605"] == "Insertion of coronary artery stent"
    assert names["B01A"] == "antithrombotic agents"
    s = c.stats()
    assert (s["n_patients"], s["n_visits"], s["n_eval_visits"], s["n_single_visit_patients"]) == (3, 4, 3, 2)


def test_mimic3_lf_and_gzip_and_header_case(tmp_path, mini_data):
    src = tmp_path / "lf"
    for name, text in MIMIC3_TABLES.items():
        header, rest = text.split("\n", 1)
        write(src / (name.lower() + ".gz"), header.lower() + "\n" + rest, gz=True)
    c = get_loader("mimic3")(src, Mappings(mini_data)).load()
    assert visits_by_id(c)["101"]["drugs"] == ["B01A", "C09A"]


def test_mimic4_fixture_keeps_icd_version(mini_data):
    c = get_loader("mimic4")(mini_data / "mimic-iv-demo", Mappings(mini_data)).load()
    v = visits_by_id(c)
    assert v["5000"]["diagnoses"] == ["ICD9CM:4019"]
    assert v["5001"]["diagnoses"] == ["ICD10CM:I10", "ICD10CM:E119"]
    assert v["5001"]["procedures"] == ["ICD10PCS:0DTJ4ZZ"]
    # several space-separated GSNs: the first placeholder is skipped, the second maps
    assert v["5001"]["drugs"] == ["B01A"]
    assert c.names()["ICD10CM:I10"] == "Essential (primary) hypertension"
    assert c.names()["ICD9CM:4019"] == "Unspecified essential hypertension"
    assert c.report["drug_mapping_coverage"] == 1.0


def test_safedrug_protocol_keeps_multi_visit_patients(mini_data):
    c = get_loader("mimic3")(mini_data / "mimic-iii-demo", Mappings(mini_data)).load(protocol="safedrug")
    # patient 10's second visit has no procedure, so no patient keeps two full visits
    assert c.visits.empty


def test_safedrug_protocol_non_empty_case(tmp_path, mini_data):
    """With a procedure on patient 10's second visit, both of its full visits stay, in order and untouched;
    patient 20 (one full visit) and patient 30 (no drug) go."""
    src = make_mimic3(tmp_path / "m3", crlf=False)
    write(src / "PROCEDURES_ICD.csv", MIMIC3_TABLES["PROCEDURES_ICD.csv"] + "3,10,101,1,3605\n")
    loader = get_loader("mimic3")(src, Mappings(mini_data))
    every = visits_by_id(loader.load())
    c = loader.load(protocol="safedrug")
    assert c.visits["visit_id"].tolist() == ["100", "101"] and set(c.visits["patient_id"]) == {"10"}
    assert c.visits["visit_order"].tolist() == [0, 1] and c.report["protocol"] == "safedrug"
    for v in c.visits.to_dict("records"):
        assert v["diagnoses"] and v["procedures"] and v["drugs"]
        assert (v["diagnoses"], v["procedures"], v["drugs"]) == tuple(every[v["visit_id"]][k] for k in ("diagnoses", "procedures", "drugs"))
    assert every["101"]["procedures"] == ["ICD9PROC:3605"] and len(every) == 4  # protocol "all" keeps every visit


@pytest.mark.parametrize(
    "table, edit, message",
    [
        ("PRESCRIPTIONS.csv", lambda t: t.replace("HADM_ID", "HADMID", 1), "column 'hadm_id'"),
        ("DIAGNOSES_ICD.csv", lambda t: "", "file is empty"),
    ],
)
def test_bad_input_names_file_and_column(tmp_path, mini_data, table, edit, message):
    src = make_mimic3(tmp_path / "bad", crlf=False)
    write(src / table, edit(MIMIC3_TABLES[table]))
    with pytest.raises(InputError) as err:
        get_loader("mimic3")(src, Mappings(mini_data)).load()
    assert table in str(err.value) and message in str(err.value)


def test_unreadable_admission_time_is_missing_and_counted(tmp_path, mini_data):
    """Before: one unreadable ADMITTIME stopped the whole prepare. Now that visit's time is missing and
    counted in the report (never a guessed date), and it is ordered after the patient's dated visits."""
    src = make_mimic3(tmp_path / "bad", crlf=False)
    write(src / "ADMISSIONS.csv", MIMIC3_TABLES["ADMISSIONS.csv"].replace("10/23/64 21:09", "yesterday"))
    cohort = get_loader("mimic3")(src, Mappings(mini_data)).load()
    v = cohort.visits.set_index("visit_id")
    assert pd.isna(v.loc["100", "time"]) and cohort.report["visits_with_unreadable_admittime"] == 1
    assert v.loc["100", "visit_order"] > v.loc["101", "visit_order"]  # the dated visit of patient 10 comes first


def test_non_utf8_and_missing_table(tmp_path, mini_data):
    src = make_mimic3(tmp_path / "enc", crlf=False)
    (src / "D_ICD_DIAGNOSES.csv").write_bytes(MIMIC3_TABLES["D_ICD_DIAGNOSES.csv"].encode() + b"6,1234,Caf\xe9,Caf\xe9\n")
    with pytest.raises(InputError, match=r"D_ICD_DIAGNOSES.csv, line 7: bytes that are not UTF-8"):
        get_loader("mimic3")(src, Mappings(mini_data)).load()
    (src / "D_ICD_DIAGNOSES.csv").unlink()
    with pytest.raises(InputError, match="table 'D_ICD_DIAGNOSES' not found"):
        get_loader("mimic3")(src, Mappings(mini_data)).load()


def test_failed_prepare_keeps_previous_workspace(tmp_path, mini_data):
    ws = tmp_path / "ws"
    kgrec.prepare("mimic3", ws, data_dir=mini_data)
    before = (ws / "cohort" / "visits.parquet").read_bytes()
    write(mini_data / "mimic-iii-demo" / "PRESCRIPTIONS.csv", "ROW_ID,SUBJECT_ID\n1,10\n")
    with pytest.raises(InputError):
        kgrec.prepare("mimic3", ws, data_dir=mini_data)
    assert (ws / "cohort" / "visits.parquet").read_bytes() == before
    assert sorted(p.name for p in ws.iterdir()) == ["cohort"]  # no temp folders left behind


def test_prepare_saves_split_and_ddi_and_reloads(tmp_path, mini_data):
    ws = tmp_path / "ws"
    res = kgrec.prepare("mimic3", ws, data_dir=mini_data, seed=3)
    c = kgrec.load_cohort(ws)
    pd.testing.assert_frame_equal(c.visits, res.cohort.visits)
    parts = [set(c.split[k]) for k in ("train", "val", "test")]
    assert set().union(*parts) == {"10", "20", "30"} and sum(map(len, parts)) == 3
    assert set(map(tuple, c.ddi[["atc3_a", "atc3_b"]].values)) == {("B01A", "N02B"), ("A06A", "B01A")}
    meta = json.loads((ws / "cohort" / "meta.json").read_text())
    assert meta["stats"]["n_visits"] == 4


@requires_real_data
def test_real_mimic3_demo(tmp_path):
    data = real_data_dir()
    res = kgrec.prepare("mimic3", tmp_path / "ws", data_dir=data)
    s = res.stats
    assert s["n_visits"] == 129 and s["n_patients"] == 100
    assert s["drug_mapping_coverage"] >= 0.80
    assert s["n_eval_visits"] == 122
    assert s["split"]["train"] + s["split"]["val"] + s["split"]["test"] == 100
