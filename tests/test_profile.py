"""Patient profiles in the cohort: age at the visit, sex, admission fields, per source's public schema."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import kgrec
from kgrec.cohort import Cohort, Mappings, get_loader
from kgrec.cohort.base import AGE_CAP, PROFILE_COLUMNS, cap_age, norm_sex
from kgrec.cohort.eicu import parse_age
from kgrec.errors import InputError
from tests.fixtures_ehr import (
    MIMIC4_PATIENTS,
    add_mimic3_profile,
    add_mimic4_profile,
    make_drug_mappings,
    make_eicu,
    make_synthea,
    real_data_dir,
    real_mappings,
    requires_real_data,
)


def by_visit(cohort: Cohort) -> dict[str, dict]:
    return {r["visit_id"]: r for r in cohort.visits.to_dict("records")}


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def test_cap_age_and_sex_normalisation():
    a = cap_age(pd.Series([17.24, 89.9, 90.0, 300.2, -1.0, None]))
    assert a.iloc[:4].tolist() == [17.2, 89.9, AGE_CAP, AGE_CAP]
    assert a.iloc[4:].isna().all()  # a birth after the visit is missing, not 0
    assert norm_sex(pd.Series(["F", "male", " Female ", "Unknown", "", None])).tolist() == ["F", "M", "F", None, None, None]
    assert parse_age(pd.Series(["> 89", "45", "", "0"])).tolist()[:2] == [AGE_CAP, 45.0]
    assert parse_age(pd.Series(["", "0"])).iloc[0] != parse_age(pd.Series(["", "0"])).iloc[0]  # NaN
    assert parse_age(pd.Series(["0"])).iloc[0] == 0.0


def test_mimic3_profile_from_patients_and_admissions(mini_data):
    add_mimic3_profile(mini_data / "mimic-iii-demo")
    c = get_loader("mimic3")(mini_data / "mimic-iii-demo", Mappings(mini_data)).load()
    v = by_visit(c)
    # DOB 3/5/94 (two-digit year: 2094) -> 70.6 at 10/23/2164, 70.9 at 2/3/2165
    assert (v["100"]["age"], v["101"]["age"]) == (70.6, 70.9)
    assert v["200"]["age"] == AGE_CAP  # DOB 1850: older than 89
    assert missing(v["300"]["age"]) and v["300"]["sex"] is None  # empty DOB and GENDER stay missing
    assert (v["100"]["sex"], v["200"]["sex"]) == ("F", "M")
    assert (v["101"]["admission_type"], v["101"]["admission_location"], v["101"]["insurance"]) == (
        "EMERGENCY", "TRANSFER FROM HOSP/EXTRAM", "Medicare")
    assert v["300"]["admission_type"] == "ELECTIVE" and v["300"]["insurance"] is None
    assert v["100"]["unit_type"] is None and v["100"]["encounter_class"] is None  # not MIMIC fields
    assert c.report["ages_capped_at_90"] == 1
    assert c.profile_fields() == ["age", "sex", "admission_type", "admission_location", "insurance"]
    assert c.stats()["profile_coverage"]["age"] == 0.75


def test_mimic3_without_patients_table_says_profile_missing(mini_data):
    # the conftest fixture has no PATIENTS table and an ADMISSIONS with only ADMISSION_TYPE
    c = get_loader("mimic3")(mini_data / "mimic-iii-demo", Mappings(mini_data)).load()
    assert c.visits["age"].isna().all() and c.visits["sex"].isna().all()
    assert "PATIENTS" in c.report["profile_missing"]
    assert c.visits["admission_type"].tolist() == ["EMERGENCY", "EMERGENCY", "ELECTIVE", "ELECTIVE"]
    assert c.visits["insurance"].isna().all()


def test_mimic3_duplicate_patient_is_an_error(mini_data):
    folder = add_mimic3_profile(mini_data / "mimic-iii-demo")
    text = (folder / "PATIENTS.csv").read_text()
    (folder / "PATIENTS.csv").write_text(text + "4,10,F,3/5/94 0:00,,,,0\n")
    with pytest.raises(InputError, match="subject_id '10' appears twice") as e:
        get_loader("mimic3")(folder, Mappings(mini_data)).load()
    assert "PATIENTS.csv" in str(e.value)


def test_mimic4_age_from_anchor_year(mini_data):
    add_mimic4_profile(mini_data / "mimic-iv-demo")
    c = get_loader("mimic4")(mini_data / "mimic-iv-demo", Mappings(mini_data)).load()
    v = by_visit(c)
    assert (v["5000"]["age"], v["5001"]["age"]) == (60.0, 61.0)  # anchor_age 60 in 2180; admitted 2180, 2181
    assert v["6000"]["age"] == AGE_CAP  # anchor_age 91 = over 89
    assert (v["5000"]["sex"], v["6000"]["sex"]) == ("F", "M")
    assert (v["5001"]["admission_type"], v["5001"]["admission_location"], v["6000"]["insurance"]) == ("EW EMER.", "EMERGENCY", "Medicare")


def test_eicu_profile_from_patient_table(tmp_path):
    root = make_drug_mappings(tmp_path / "data")
    c = get_loader("eicu")(make_eicu(root), Mappings(root)).load()
    v = by_visit(c)
    assert v["101"]["age"] == AGE_CAP and v["101"]["sex"] == "M"  # "> 89"
    assert missing(v["102"]["age"]) and v["102"]["sex"] is None  # "" and "Unknown"
    assert v["201"]["age"] == 0.0 and v["201"]["sex"] is None  # a newborn is 0, not missing
    assert v["103"]["age"] == 70.0 and v["103"]["sex"] == "F"
    assert (v["102"]["unit_type"], v["102"]["unit_admit_source"], v["102"]["hospital_admit_source"]) == ("CCU-CTICU", "Floor", None)
    assert v["201"]["hospital_admit_source"] == "Operating Room"
    assert v["101"]["admission_type"] is None  # a MIMIC field
    assert c.report["ages_capped_at_90"] == 1


def test_eicu_bad_age_names_file_column_line(tmp_path):
    root = make_drug_mappings(tmp_path / "data")
    folder = make_eicu(root)
    p = folder / "patient.csv"
    p.write_bytes(p.read_bytes().replace(b",70,", b",seventy,", 1))
    with pytest.raises(InputError, match="age must be whole years") as e:
        get_loader("eicu")(folder, Mappings(root)).load()
    assert "patient.csv" in str(e.value) and "line 4" in str(e.value)  # stay 103: the first row aged "70"


def test_eicu_without_profile_columns_is_missing_not_invented(tmp_path):
    root = make_drug_mappings(tmp_path / "data")
    c = get_loader("eicu")(make_eicu(root, drop={"patient": "age"}), Mappings(root)).load()
    assert c.visits["age"].isna().all() and c.visits["sex"].notna().any()
    assert "age" in c.report["profile_missing"]


def test_synthea_profile_from_patients_and_encounter_class(tmp_path):
    root = make_drug_mappings(tmp_path / "data")
    c = get_loader("synthea")(make_synthea(root), Mappings(root)).load()
    v = by_visit(c)
    assert v["eA1"]["age"] == 59.0 and v["eA1"]["sex"] == "F"  # born 1960-01-01, seen 2019-01-10
    assert v["eB1"]["age"] == AGE_CAP and v["eB1"]["sex"] == "M"  # 99.9 in 2020
    assert (v["eA1"]["encounter_class"], v["eA2"]["encounter_class"]) == ("wellness", "ambulatory")
    c2 = get_loader("synthea")(make_synthea(tmp_path / "d2", skip=("patients",)), Mappings(root)).load()
    assert c2.visits["age"].isna().all() and c2.visits["encounter_class"].notna().all()
    assert "no patients table" in c2.report["profile_missing"]


def test_profile_survives_save_and_old_workspace_loads(tmp_path, mini_data):
    add_mimic3_profile(mini_data / "mimic-iii-demo")
    ws = tmp_path / "ws"
    res = kgrec.prepare("mimic3", ws, data_dir=mini_data, seed=3)
    c = kgrec.load_cohort(ws)
    pd.testing.assert_frame_equal(c.visits, res.cohort.visits)
    assert "profile_missing" not in c.report
    assert json.loads((ws / "cohort" / "meta.json").read_text())["stats"]["profile_coverage"]["sex"] == 0.75
    # a workspace written before profiles: visits.parquet without the profile columns
    old = pd.read_parquet(ws / "cohort" / "visits.parquet").drop(columns=PROFILE_COLUMNS)
    old.to_parquet(ws / "cohort" / "visits.parquet", index=False)
    c = kgrec.load_cohort(ws)
    assert list(c.visits.columns[-len(PROFILE_COLUMNS):]) == PROFILE_COLUMNS
    assert c.visits[PROFILE_COLUMNS].isna().all().all()
    assert "prepared before patient profiles" in c.report["profile_missing"]
    assert c.profile_fields() == []


# ---- the real demos (share of visits with age and sex) ----
@requires_real_data
@pytest.mark.parametrize(
    "source, folder, floor",
    [("mimic3", "mimic-iii-demo", 1.0), ("eicu", "eicu-demo", 0.998), ("synthea", "synthea-111", 1.0)],
)
def test_real_demo_profile_coverage(source, folder, floor):
    c = get_loader(source)(real_data_dir() / folder, real_mappings()).load()
    cov = c.profile_coverage()
    # measured: mimic3 1.0 / 1.0 (129 admissions), eicu 0.9984 / 0.9984 (2,520 stays), synthea 1.0 / 1.0
    assert cov["age"] >= floor and cov["sex"] >= floor
    ages = c.visits["age"].dropna()
    assert ages.between(0, AGE_CAP).all()
    if source == "mimic3":
        assert c.report["ages_capped_at_90"] == 9 and ages.min() == pytest.approx(17.2)
        assert cov["admission_type"] == cov["insurance"] == 1.0
    if source == "eicu":
        assert c.report["ages_capped_at_90"] == 98 and cov["unit_type"] == 1.0
    if source == "synthea":
        assert cov["encounter_class"] == 1.0


@pytest.mark.parametrize("anchor_age", ["", "abc", "  "])
def test_mimic4_empty_or_text_anchor_age_is_missing_never_90(mini_data, anchor_age):
    """An empty or unreadable anchor_age is a missing age, counted in the report, never 90 ("over 89")."""
    folder = add_mimic4_profile(mini_data / "mimic-iv-demo")
    from tests.fixtures_ehr import write

    write(folder / "hosp" / "patients.csv.gz", MIMIC4_PATIENTS.replace("1000,F,60,2180", f"1000,F,{anchor_age},2180"), gz=True)
    c = get_loader("mimic4")(folder, Mappings(mini_data)).load()
    v = by_visit(c)
    assert missing(v["5000"]["age"]) and missing(v["5001"]["age"]) and v["6000"]["age"] == AGE_CAP
    assert c.report["visits_without_age"] >= 2
    assert c.report["visits_with_unreadable_anchor_age"] == (2 if anchor_age.strip() else 0)
    assert c.stats()["profile_coverage"]["age"] < 1.0


@pytest.mark.parametrize("born, age", [("11/15/17", 1.2), ("2/29/00", 18.9), ("1960-01-01", 59.0), ("5/7/60", 58.7), ("not a date", None), ("2/30/00", None)])
def test_synthea_two_digit_birth_years_and_unreadable_dates(tmp_path, born, age):
    """Synthea's dates are real calendar dates: a two-digit year is the latest such year not in the future
    (11/15/17 is 2017, never 2117; 2/29/00 is 2000-02-29, a real day); an unreadable birth date is a
    missing age, counted, never a crash or a guess."""
    import tests.fixtures_ehr as fx

    root = make_drug_mappings(tmp_path / "data")
    pats = [(p, born if i == 0 else b, s) for i, (p, b, s) in enumerate(fx.SYNTHEA_PATIENTS)]
    old = fx.SYNTHEA_PATIENTS
    fx.SYNTHEA_PATIENTS = pats
    try:
        c = get_loader("synthea")(make_synthea(root), Mappings(root)).load()
    finally:
        fx.SYNTHEA_PATIENTS = old
    a = by_visit(c)["eA1"]["age"]  # seen 2019-01-10
    assert (missing(a) if age is None else a == age), a
    assert c.report["patients_with_unreadable_birthdate"] == (1 if age is None else 0)
