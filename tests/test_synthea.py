"""Synthea loader on a fixture in the public CSV schema, and on the shared 111-patient export when present."""

from __future__ import annotations

import pandas as pd
import pytest

from kgrec.cohort import Mappings, get_loader
from kgrec.cohort.synthea import SyntheaLoader, local_offset
from kgrec.errors import InputError
from tests.fixtures_ehr import make_drug_mappings, make_synthea, real_data_dir, real_mappings, requires_real_data


@pytest.fixture
def data(tmp_path):
    make_drug_mappings(tmp_path)
    return tmp_path


def load(data, **kw):
    folder = make_synthea(data, **kw)
    return get_loader("synthea")(folder, Mappings(data)).load()


def by_id(cohort):
    return {r["visit_id"]: r for r in cohort.visits.to_dict("records")}


def test_visits_conditions_drugs(data):
    c = load(data)
    assert c.source == "synthea"
    v = by_id(c)
    # encounters with neither a medication nor a condition (eA4, eC1) are not visits
    assert set(v) == {"eA1", "eA2", "eA5", "eA3", "eB0", "eB1"}
    order = c.visits.sort_values(["patient_id", "visit_order"]).groupby("patient_id")["visit_id"].agg(list).to_dict()
    assert order == {"pat-a": ["eA1", "eA2", "eA5", "eA3"], "pat-b": ["eB0", "eB1"]}
    assert v["eA2"]["time"] == pd.Timestamp("2019-03-01 10:00:00")
    # conditions active at the encounter's start day (STOP inclusive), ordered by onset
    assert v["eA1"]["diagnoses"] == ["SNOMED:59621000"]
    assert v["eA2"]["diagnoses"] == ["SNOMED:59621000", "SNOMED:10509002"]
    assert v["eA5"]["diagnoses"] == ["SNOMED:59621000", "SNOMED:10509002", "SNOMED:314529007"]
    assert v["eA3"]["diagnoses"] == ["SNOMED:59621000"]  # bronchitis stopped on the 15th
    assert v["eB0"]["diagnoses"] == ["SNOMED:15777000"]
    assert v["eB1"]["diagnoses"] == ["SNOMED:44054006"]  # prediabetes over by then
    # drugs of the encounter only; the combination maps to its WHO code's class
    assert v["eA1"]["drugs"] == ["C09A"]
    assert v["eA2"]["drugs"] == ["J01C", "N02A"]
    assert v["eA3"]["drugs"] == []  # brand-only contraceptive pack: unmapped
    assert v["eA5"]["drugs"] == [] and v["eB0"]["drugs"] == []
    assert v["eB1"]["drugs"] == ["A10B"]
    assert all(p == [] for p in c.visits["procedures"])
    names = c.names()
    assert names["SNOMED:10509002"] == "Acute bronchitis (disorder)"


def test_report_coverage_and_per_patient_figures(data):
    r = load(data).report
    assert (r["prescription_rows"], r["prescription_rows_mapped"]) == (5, 4)
    assert r["drug_mapping_coverage"] == pytest.approx(0.8)
    assert r["top_unmapped_drugs"] == [["jolivette 28 day pack", 1]]
    assert r["mapping_routes"] == {"who": 3, "who-combination": 1, "none": 1}
    assert (r["encounters"], r["encounters_kept"], r["encounters_dropped_no_medication_no_condition"]) == (8, 6, 2)
    assert r["visits_per_patient"] == {"mean": 3.0, "median": 3.0, "max": 4, "top3_share": 1.0}
    assert r["medication_visits_per_patient"] == {"mean": 2.0, "median": 2.0, "max": 3, "top3_share": 1.0}
    assert r["medication_visits"] == 4 and r["medication_visits_without_active_condition"] == 0
    assert r["medication_rows_per_medication_visit"] == {"mean": 1.25, "median": 1.0}
    assert (r["patients"], r["patients_with_visits"], r["patients_with_mapped_drug"]) == (3, 2, 2)
    assert r["visits_with_mapped_drug"] == 3
    assert r["condition_date_utc_offset_hours"] == 0 and r["condition_date_agreement"] is None  # too few links
    assert r["procedure_rows"] is None


def test_optional_procedures_table(data):
    c = load(data, procedures=True)
    v = by_id(c)
    assert v["eA2"]["procedures"] == ["SNOMEDPROC:23426006"]
    assert c.names()["SNOMEDPROC:23426006"] == "Measurement of respiratory function (procedure)"
    assert c.report["procedure_rows"] == 1


def test_without_patients_table(data):
    c = load(data, skip=("patients",))
    assert len(c.visits) == 6 and "patients" not in c.report


def test_local_offset_from_linked_conditions():
    # condition dates written in UTC-5: an encounter at 02:00Z belongs to the previous local day
    times = pd.to_datetime([f"2020-01-{d:02d}T02:00:00" for d in range(2, 27)])
    enc = pd.DataFrame({"id": [f"e{i}" for i in range(25)], "time": times})
    cond = pd.DataFrame({"encounter": enc["id"], "t0": (times - pd.Timedelta(days=1)).normalize()})
    assert local_offset(enc, cond) == (-3, 1.0)  # the smallest shift that moves 02:00 to the previous day
    cond["t0"] = times.normalize()
    assert local_offset(enc, cond) == (0, 1.0)
    assert local_offset(enc.head(5), cond.head(5)) == (0, None)


@pytest.mark.parametrize("table, column", [("medications", "description"), ("encounters", "start"), ("conditions", "stop")])
def test_missing_column_names_file_and_column(data, table, column):
    with pytest.raises(InputError) as e:
        load(data, drop={table: column.upper()})
    assert f"{table}.csv" in str(e.value) and e.value.column == column


@pytest.mark.parametrize("table", ["encounters", "conditions", "medications"])
def test_missing_table_names_it(data, table):
    with pytest.raises(InputError, match=f"'{table}' not found"):
        load(data, skip=(table,))


def test_bad_date_names_file_and_line(data):
    with pytest.raises(InputError) as e:
        load(data, bad_date=True)
    assert "encounters.csv" in str(e.value) and e.value.line == 4 and e.value.column == "start"


@requires_real_data
def test_real_export():
    root = real_data_dir()
    if not (root / "synthea-111").is_dir():
        pytest.skip("synthea-111 not present")
    c = SyntheaLoader(root / "synthea-111", real_mappings()).load()
    r, s = c.report, c.stats()
    assert r["prescription_rows"] == 6124
    assert r["drug_mapping_coverage"] >= 0.97  # measured 0.9812
    assert s["n_patients"] == 111 and s["n_visits"] == 5081
    assert r["medication_visits"] == 3387 and r["medication_visits_without_active_condition"] == 77
    assert r["visits_with_mapped_drug"] >= 3200  # measured 3,273
    assert r["medication_visits_per_patient"]["top3_share"] > 0.4  # three patients hold about half
    assert r["condition_date_utc_offset_hours"] == -5 and r["condition_date_agreement"] > 0.9
