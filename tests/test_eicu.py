"""eICU loader on a fixture in the public schema, and on the real demo when present."""

from __future__ import annotations

import pytest

from kgrec.cohort import Mappings, get_loader
from kgrec.cohort.eicu import EicuLoader, diagnosis_codes, split_icd
from kgrec.errors import InputError
from tests.fixtures_ehr import make_drug_mappings, make_eicu, real_data_dir, real_mappings, requires_real_data


@pytest.fixture
def data(tmp_path):
    make_drug_mappings(tmp_path)
    return tmp_path


def load(data, **kw):
    folder = make_eicu(data, **kw)
    return get_loader("eicu")(folder, Mappings(data)).load()


def by_id(cohort):
    return {r["visit_id"]: r for r in cohort.visits.to_dict("records")}


def test_split_icd_by_shape():
    assert split_icd("401.9, I10") == (["401.9"], ["I10"])
    assert split_icd("E980.2, 965.00, T40.60") == (["E980.2", "965.00"], ["T40.60"])  # ICD-9 E code: 3 digits
    assert split_icd("276.1, E87.0, E87.1") == (["276.1"], ["E87.0", "E87.1"])  # ICD-10 E code: 2 digits
    assert split_icd("V45.81, Z95.1") == (["V45.81"], ["Z95.1"])
    assert split_icd("965.4, E980.0, T39.1X") == (["965.4", "E980.0"], ["T39.1X"])
    assert split_icd("31.1") == ([], [])
    assert diagnosis_codes("401.9, I10") == ["ICD9CM:4019"]
    assert diagnosis_codes("K61.1") == ["ICD10CM:K611"]
    assert diagnosis_codes("486, 486, J18.9") == ["ICD9CM:486"]
    assert diagnosis_codes("") == []


def test_visits_order_and_codes(data):
    c = load(data)
    assert c.source == "eicu"
    v = by_id(c)
    assert set(v) == {"101", "102", "103", "201", "202", "301"}
    # patient 002-1: 2014 stay first, then hospital stay 10's unit stays by unitvisitnumber (102 before 101)
    order = c.visits.sort_values(["patient_id", "visit_order"]).groupby("patient_id")["visit_id"].agg(list).to_dict()
    assert order == {"002-1": ["103", "102", "101"], "002-2": ["202", "201"], "002-3": ["301"]}
    assert str(v["103"]["time"])[:10] == "2014-01-01"
    # diagnoses: priority then offset; ICD-9 kept over ICD-10; no code -> path id; unrecognised code -> path id
    assert v["101"]["diagnoses"] == [
        "ICD9CM:0389", "ICD9CM:5849", "EICUDX:endocrine|glucose metabolism|diabetes mellitus", "ICD9CM:4019",
    ]
    assert v["102"]["diagnoses"] == [
        "ICD9CM:E9802", "ICD9CM:96500", "ICD10CM:K611",
        "EICUDX:pulmonary|respiratory failure|Tracheostomy performed during this admission for ventilatory support",
    ]
    assert v["103"]["diagnoses"] == ["ICD9CM:2761", "ICD9CM:V4581"]
    # treatments by offset
    assert v["101"]["procedures"] == [
        "EICUTX:pulmonary|vascular disorders|VTE prophylaxis|low molecular weight heparin|enoxaparin",
        "EICUTX:cardiovascular|consultations|Cardiology consultation",
    ]
    assert v["301"]["procedures"] == [] and v["301"]["diagnoses"] == [] and v["301"]["drugs"] == []
    # drugs: cancelled aspirin gone; HICL name fill (warfarin, metoprolol from admissiondrug); brand via HICL class
    assert v["101"]["drugs"] == ["B01A"]
    assert v["102"]["drugs"] == ["C03C", "C05A"]
    assert v["103"]["drugs"] == ["C03C"]
    assert v["201"]["drugs"] == ["C07A", "N02B"]
    assert v["202"]["drugs"] == ["A01A"]
    names = c.names()
    assert names["ICD9CM:4019"] == "cardiovascular|ventricular disorders|hypertension"
    assert names["EICUTX:cardiovascular|consultations|Cardiology consultation"] == "cardiovascular|consultations|Cardiology consultation"


def test_report_coverage_and_routes(data):
    r = load(data).report
    assert r["medication_rows"] == 11
    assert r["medication_rows_cancelled"] == 1
    assert r["prescription_rows"] == 10
    assert r["prescription_rows_mapped"] == 8
    assert r["drug_mapping_coverage"] == pytest.approx(0.8)
    assert r["mapping_routes"] == {"name": 5, "hicl-name": 2, "hicl": 1, "unmapped": 2}
    assert r["prescription_rows_without_drugname"] == 3
    assert r["prescription_rows_named_by_hicl"] == 2
    assert r["top_unmapped_drugs"] == [["<no drugname, no hicl name>", 1], ["tylenol", 1]]
    assert r["hicl_name_source"] == "medication, then admissiondrug"
    assert (r["diagnosis_rows"], r["diagnosis_rows_icd9"], r["diagnosis_rows_icd10_only"]) == (9, 6, 1)
    assert (r["diagnosis_rows_without_code"], r["diagnosis_rows_unrecognised_code"]) == (1, 1)
    assert r["patient_years_with_several_hospital_stays"] == 1
    assert (r["visits_with_mapped_drug"], r["patients_with_mapped_drug"]) == (5, 2)
    assert r["protocol"] == "all"


def test_without_admissiondrug_the_hicl_has_no_name(data):
    c = load(data, admissiondrug=False)
    assert by_id(c)["201"]["drugs"] == ["N02B"]
    assert c.report["hicl_name_source"] == "medication"
    assert c.report["prescription_rows_mapped"] == 7


@pytest.mark.parametrize(
    "table, column",
    [("medication", "drughiclseqno"), ("diagnosis", "icd9code"), ("patient", "uniquepid"), ("treatment", "treatmentstring")],
)
def test_missing_column_names_file_and_column(data, table, column):
    with pytest.raises(InputError) as e:
        load(data, drop={table: column})
    assert table in str(e.value) and repr(column) in str(e.value)
    assert e.value.column == column


def test_missing_table_names_it(data):
    with pytest.raises(InputError, match="'diagnosis' not found"):
        load(data, skip=("diagnosis",))


def test_bad_integer_names_line(data):
    folder = make_eicu(data)
    p = folder / "patient.csv"
    p.write_bytes(p.read_bytes().replace(b",2014,", b",20x4,", 1))
    with pytest.raises(InputError) as e:
        EicuLoader(folder, Mappings(data)).load()
    assert e.value.column == "hospitaldischargeyear" and e.value.line == 4


@requires_real_data
def test_real_demo():
    root = real_data_dir()
    if not (root / "eicu-demo").is_dir():
        pytest.skip("eicu-demo not present")
    c = EicuLoader(root / "eicu-demo", real_mappings()).load()
    s, r = c.stats(), c.report
    assert s["n_visits"] == 2520 and s["n_patients"] == 1841
    assert r["prescription_rows"] == 72968  # 75,604 orders less 2,636 cancelled
    assert r["drug_mapping_coverage"] >= 0.88  # measured 0.8954
    assert r["visits_with_mapped_drug"] >= 1800  # measured 1,849
    assert r["diagnosis_rows_icd9"] >= 20000 and r["diagnosis_rows_without_code"] == 3772
    assert 100 <= s["n_drugs"] <= 200
