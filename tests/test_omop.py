"""OMOP CDM loader (issue 27) on fixtures written from the public DDL, v5.3 and v5.4: every form a site
hands its CDM over gives the same cohort; the protocol's branches; the optional parts; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cohort import Mappings, get_loader
from kgrec.errors import InputError
from tests import omop_fixture as F
from tests.conftest import make_mappings, make_mimic3, write
from tests.fixtures_ehr import make_drug_mappings


@pytest.fixture
def data(tmp_path):
    make_drug_mappings(tmp_path / "data")
    F.drug_mappings_extra(tmp_path / "data")
    write(tmp_path / "data/ddi/safedrug-atc3/ddi_atc3_pairs.tsv", "atc3_a\tatc3_b\nB01A\tN02B\n")
    return tmp_path / "data"


def load(data, folder=None, **kw):
    return get_loader("omop")(folder, Mappings(data), **kw).load()


def by_id(cohort):
    return {r["visit_id"]: r for r in cohort.visits.to_dict("records")}


def comparable(report: dict) -> dict:
    """The report without where it was read from."""
    return {k: v for k, v in report.items() if k not in ("reader", "location", "tables")}


def test_protocol_visits_codes_drugs_profile(data, tmp_path):
    c = load(data, F.write_folder(tmp_path / "cdm", "5.4"))
    v = by_id(c)
    # 103 (pharmacy visit: another setting) and 202 (no record) are not visits; 301 is inpatient only
    # through concept_ancestor (a CMS place of service under 9201)
    assert set(v) == {"101", "102", "201", "301", "302"}
    assert {k: r["encounter_class"] for k, r in v.items()} == {
        "101": "inpatient", "102": "emergency", "201": "inpatient", "301": "inpatient", "302": "outpatient"}
    assert [v["101"]["visit_order"], v["102"]["visit_order"]] == [0, 1]
    assert v["101"]["time"] == pd.Timestamp("2019-01-05 08:30:00")
    assert v["301"]["time"] == pd.Timestamp("2021-04-04")  # no datetime: the date
    # ICD source (concept, or the source value's form) then the standard concept, by start date
    assert v["101"]["diagnoses"] == ["ICD9CM:4280", "SNOMED:42343007", "ICD9CM:42731", "SNOMED:49436004"]
    assert v["102"]["diagnoses"] == ["ICD10CM:E119", "SNOMED:44054006"]
    assert v["201"]["diagnoses"] == ["ICD10CM:I509", "SNOMED:42343007"]  # concept 0: the ICD-10 value only, once
    assert v["302"]["diagnoses"] == ["SNOMED:49436004"]  # a local source value ('AFIB'): the standard concept only
    assert v["101"]["procedures"] == ["ICD9PROC:8952", "SNOMEDPROC:29303009", "CPT4:93000"]
    assert v["201"]["procedures"] == ["ICD10PCS:0DTJ4ZZ"]
    assert v["101"]["drugs"] == ["B01A", "C03C", "C07A"]
    assert v["102"]["drugs"] == ["C07A", "N02B"]
    assert v["201"]["drugs"] == ["B01A", "N02B", "R06A"]
    assert v["301"]["drugs"] == ["C03C"]  # the kit is unmapped
    # profile: birth_datetime; a year alone is 1 July of it (a year and month without a day: the 15th)
    assert v["101"]["age"] == pytest.approx(68.8, abs=0.05) and v["101"]["sex"] == "M"
    assert v["201"]["age"] == pytest.approx(39.6, abs=0.05) and v["201"]["sex"] == "F"
    assert v["301"]["sex"] == "F"  # gender_concept_id 0: gender_source_value
    assert v["301"]["age"] == pytest.approx(31.1, abs=0.01)  # born February 1990, no day: the 15th (the 1st would be 31.2)
    assert v["101"]["admission_location"] == "Emergency Room - Hospital"
    names = c.names()
    assert names["SNOMED:42343007"] == "Congestive heart failure"
    assert names["ICD10CM:I509"] == "Heart failure, unspecified"
    assert names["CPT4:93000"].startswith("Routine electrocardiogram")


def test_report_routes_and_coverage(data, tmp_path):
    r = load(data, F.write_folder(tmp_path / "cdm", "5.4")).report
    assert (r["cdm_version"], r["cdm_version_from"]) == ("5.4", "cdm_source")
    assert r["mapping_routes"] == {"atc-ancestor": 2, "atc-relationship": 2, "rxnorm-ingredient-name": 1, "rxnorm-unii-drugbank": 1,
                                   "atc-concept": 1, "source-value-ndc": 1, "source-value-name": 1, "concept-name": 1, "unmapped": 1}
    assert (r["prescription_rows"], r["prescription_rows_mapped"]) == (11, 10)
    assert r["drug_mapping_coverage"] == pytest.approx(10 / 11, abs=1e-4)
    assert sum(r["mapping_route_coverage"].values()) == pytest.approx(1.0, abs=1e-3)
    assert r["drug_rows_without_visit"] == 1 and r["drug_rows_of_other_visits"] == 1
    assert r["condition_rows_without_visit"] == 1 and r["condition_rows_of_other_visits"] == 1
    assert r["condition_icd_codes_from_source_value"] == 3
    assert r["visits_by_setting"] == {"inpatient": 3, "emergency": 1, "outpatient": 1}
    assert r["visits_dropped_other_setting"] == {"Pharmacy visit": 1} and r["visits_dropped_no_record"] == 1
    assert r["visits_with_diagnosis_and_drug"] == 5 and r["visits_with_diagnosis_and_drug_share"] == 1.0
    assert r["care_sites"]["top"] == {"General Hospital ICU": 2, "North Clinic": 1}
    assert r["care_sites"]["visits_by_location"] == {"Springfield, MA": 3}  # care_site -> location: city, state
    assert r["licence"] == "the data holder's terms (kgrec)"  # the graph's Visit edges carry it
    assert r["concepts_read"] < len(F.CONCEPTS)  # the vocabulary is read for the cohort's concepts only
    assert "unavailable" in r["diagnosis_codes_reaching_disease"]  # no Disease Ontology files in this data root: said so


def _all_forms(tmp_path: Path, version: str) -> dict[str, dict]:
    d = tmp_path / version
    d.mkdir(parents=True)
    return {
        "csv": {"folder": F.write_folder(d / "csv", version)},
        "upper-gz-athena": {"folder": F.write_folder(d / "upper", version, upper=True, gz=True, athena_vocab=True)},
        "parquet": {"folder": F.write_parquet(d / "parquet", version)},
        "sqlite": {"db_url": f"sqlite:///{F.write_sqlite(d / 'cdm.db', version)}"},
        "duckdb": {"db_url": f"duckdb:///{F.write_duckdb(d / 'cdm.duckdb', version)}", "db_schema": "cdm", "vocab_schema": "vocab"},
    }


@pytest.mark.parametrize("version", ["5.3", "5.4"])
def test_every_form_gives_the_same_cohort(data, tmp_path, version):
    """A folder of CSV, UPPER-case CSV.gz with Athena TSV vocabulary, Parquet, SQLite and DuckDB (schemas)."""
    cohorts = {name: load(data, **kw) for name, kw in _all_forms(tmp_path, version).items()}
    ref = cohorts.pop("csv")
    assert len(ref.visits) == 5
    for name, c in cohorts.items():
        pd.testing.assert_frame_equal(c.visits, ref.visits, obj=f"{name} visits")
        pd.testing.assert_frame_equal(c.codes, ref.codes, obj=f"{name} code names")
        assert comparable(c.report) == comparable(ref.report), name
    assert cohorts["sqlite"].report["reader"] == "database" and ref.report["reader"] == "folder"


def test_v53_and_v54_give_the_same_cohort(data, tmp_path):
    a = load(data, F.write_folder(tmp_path / "a", "5.3"))
    b = load(data, F.write_folder(tmp_path / "b", "5.4"))
    pd.testing.assert_frame_equal(a.visits, b.visits)
    assert a.report["cdm_version"] == "5.3" and b.report["cdm_version"] == "5.4"


def test_version_from_columns_then_option(data, tmp_path):
    folder = F.write_folder(tmp_path / "cdm", "5.3", omit=("cdm_source",))
    r = load(data, folder).report
    assert (r["cdm_version"], r["cdm_version_from"]) == ("5.3", "visit_occurrence columns")
    assert load(data, folder, cdm_version="5.4").report["cdm_version_from"] == "option"


def test_optional_tables_absent_or_empty(data, tmp_path):
    """No concept_ancestor: drugs through relationships and names, no setting by ancestry (301 dropped);
    no concept_relationship either: names only; an empty procedure table: no procedures, said so."""
    folder = F.write_folder(tmp_path / "noanc", "5.4", omit=("concept_ancestor",))
    c = load(data, folder)
    v = by_id(c)
    assert "301" not in v and c.report["visits_dropped_other_setting"] == {"Hospital": 1, "Pharmacy visit": 1}
    assert v["101"]["drugs"] == ["B01A", "C03C", "C07A"]  # furosemide now through its ingredient's name
    assert c.report["absent_tables"] == ["concept_ancestor"]
    assert c.report["mapping_routes"]["rxnorm-ingredient-name"] == 2

    data_ = F.tables("5.4")
    data_["procedure_occurrence"] = []
    folder = F.write_folder(tmp_path / "bare", "5.4", omit=("concept_ancestor", "concept_relationship"), data=data_)
    c = load(data, folder)
    assert all(p == [] for p in c.visits["procedures"]) and c.report["empty_tables"] == ["procedure_occurrence"]
    assert set(c.report["absent_tables"]) == {"concept_ancestor", "concept_relationship"}
    assert by_id(c)["101"]["drugs"] == ["B01A", "C03C", "C07A"]  # metoprolol and warfarin by their product names
    assert c.report["mapping_routes"].get("atc-relationship") is None

    (folder / "procedure_occurrence.csv").unlink()
    assert load(data, folder).report["procedure_rows"] is None


def test_visit_settings_option(data, tmp_path):
    folder = F.write_folder(tmp_path / "cdm", "5.4")
    c = load(data, folder, settings=("inpatient",))
    assert set(c.visits["visit_id"]) == {"101", "201", "301"}
    with pytest.raises(InputError, match="unknown visit setting.*'icu'"):
        load(data, folder, settings=("icu",))


def test_float_ids_and_epoch_dates_read_as_sites_write_them(data, tmp_path):
    """Ids written from a float column (``101.0``) and dates as Unix seconds (OHDSI's SQLite CDMs)."""
    d = F.tables("5.4")
    d["visit_occurrence"] = [{**r, "visit_occurrence_id": f"{r['visit_occurrence_id']}.0",
                              "visit_start_datetime": None,
                              "visit_start_date": str(int(pd.Timestamp(r["visit_start_date"]).timestamp()))} for r in d["visit_occurrence"]]
    c = load(data, F.write_folder(tmp_path / "cdm", "5.4", data=d))
    assert by_id(c)["101"]["time"] == pd.Timestamp("2019-01-05")
    assert len(c.visits) == 5


# ---------------------------------------------------------------- bad input: one clear error, nothing written
def _edit(folder: Path, table: str, old: str, new: str) -> None:
    p = folder / f"{table}.csv"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


def _prepare(data, ws, **kw):
    from kgrec import api

    return api.prepare("omop", ws, data, **kw)


BAD_FOLDER = {  # case: (table, text, replaced by, the error it must give)
    "missing-column": ("visit_occurrence", "visit_concept_id,", "visit_kind,", r"visit_occurrence\.csv.*visit_concept_id.*missing column"),
    "unknown-concept": ("drug_exposure", ",1000003,", ",9999999,", r"drug_exposure.*drug_concept_id.*concept id 9999999 is not in the concept table"),
    "bad-date": ("visit_occurrence", "2019-06-01 23:10:00", "2019-13-45 25:00",
                 r"visit_occurrence\.csv.*line 3.*visit_start_datetime.*unreadable date '2019-13-45 25:00'"),
    "v5.2": ("cdm_source", "v5.4.0", "v5.2.2", r"CDM version 'v5.2.2'.*v5.3 and v5.4 only"),
    "v6": ("cdm_source", "v5.4.0", "6.0", r"CDM version '6.0'.*not one kgrec reads"),
    "oversized-cell": ("condition_occurrence", ",428.0,", "," + "9" * 5000 + ",",
                       r"condition_occurrence\.csv.*condition_source_value.*a value of 5,000 characters"),
    "duplicate-visit": ("visit_occurrence", "\n102,", "\n101,", r"visit_occurrence\.csv.*line 3.*visit_occurrence_id.*visit id appears twice"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDER))
def test_bad_folder_input_names_table_column_and_writes_nothing(data, tmp_path, case):
    folder = F.write_folder(tmp_path / "cdm", "5.4")
    table, old, new, match = BAD_FOLDER[case]
    _edit(folder, table, old, new)
    ws = tmp_path / "ws"
    with pytest.raises(InputError, match=match):
        _prepare(data, ws, source_dir=folder)
    assert not (ws / "cohort").exists()


def test_database_errors_name_the_url_never_the_password(data, tmp_path):
    ws = tmp_path / "ws"
    # a server that does not answer (nothing listens on port 9): the URL, the password masked
    url = "postgresql://kgrec:s3cret-pw@127.0.0.1:9/cdm"
    with pytest.raises(InputError) as err:
        _prepare(data, ws, db_url=url)
    text = str(err.value)
    assert "s3cret-pw" not in text and "cannot connect to postgresql://kgrec:***@127.0.0.1:9/cdm" in text
    # a file database that does not exist: never created
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(InputError, match="database file not found"):
        _prepare(data, ws, db_url=f"duckdb:///{missing}")
    assert not missing.exists()
    # a schema that does not exist
    db = F.write_duckdb(tmp_path / "cdm.duckdb", "5.4")
    with pytest.raises(InputError, match=r"schema 'cdm_prod' does not exist in duckdb:///.*cdm\.duckdb"):
        _prepare(data, ws, db_url=f"duckdb:///{db}", db_schema="cdm_prod")
    # the vocabulary in its own schema, not named: the concept table is not found, with the tables there
    with pytest.raises(InputError, match=r"table 'concept' not found.*schema cdm"):
        _prepare(data, ws, db_url=f"duckdb:///{db}", db_schema="cdm")
    # a SQLite CDM missing a required column
    lite = F.write_sqlite(tmp_path / "cdm.db", "5.4")
    import sqlite3

    con = sqlite3.connect(lite)
    con.execute("ALTER TABLE drug_exposure DROP COLUMN drug_concept_id")
    con.commit()
    con.close()
    with pytest.raises(InputError, match=r"table drug_exposure in sqlite:///.*cdm\.db.*drug_concept_id.*missing column"):
        _prepare(data, ws, db_url=f"sqlite:///{lite}")
    assert not (ws / "cohort").exists()


def test_options_of_other_sources_refused(data, tmp_path):
    from kgrec import api

    with pytest.raises(InputError, match="OMOP CDM options"):
        api.prepare("mimic3", tmp_path / "ws", data, db_url="sqlite:///x.db")
    with pytest.raises(InputError, match="not both"):
        _prepare(data, tmp_path / "ws", source_dir=tmp_path, db_url="sqlite:///x.db")


# ---------------------------------------------------------------- the CLI, and a later stage on the cohort
def test_cli_prepare_folder_and_database(data, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kgrec.cli import app

    runner = CliRunner()
    folder = F.write_folder(tmp_path / "cdm", "5.4", upper=True)
    res = runner.invoke(app, ["prepare", "--source", "omop", "--source-dir", str(folder), "-w", str(tmp_path / "ws1"),
                              "--data-dir", str(data), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_visits"] == 5 and out["mapping"]["mapping_routes"]["atc-ancestor"] == 2
    db = F.write_duckdb(tmp_path / "cdm.duckdb", "5.4")
    monkeypatch.setenv("KGREC_OMOP_URL", f"duckdb:///{db}")  # the URL from the environment, not the command line
    res = runner.invoke(app, ["prepare", "--source", "omop", "--db-schema", "cdm", "--vocab-schema", "vocab",
                              "-w", str(tmp_path / "ws2"), "--data-dir", str(data), "--json"])
    assert res.exit_code == 0, res.output
    a = pd.read_parquet(tmp_path / "ws1/cohort/visits.parquet")
    b = pd.read_parquet(tmp_path / "ws2/cohort/visits.parquet")
    pd.testing.assert_frame_equal(a, b)
    # the variable, set for an OMOP site, does not stop another source's prepare
    mimic = make_mappings(tmp_path / "mimic-data")
    make_mimic3(mimic / "mimic-iii-demo")
    res = runner.invoke(app, ["prepare", "--source", "mimic3", "-w", str(tmp_path / "ws3"), "--data-dir", str(mimic), "--json"])
    assert res.exit_code == 0, res.output
    # but an OMOP option given on the command line with another source is refused, in one line
    res = runner.invoke(app, ["prepare", "--source", "mimic3", "--db-schema", "cdm", "-w", str(tmp_path / "ws3"), "--data-dir", str(data)])
    assert res.exit_code != 0 and "OMOP CDM options" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["prepare", "--source", "omop", "--db-url", f"sqlite:///{tmp_path}/nowhere.db", "-w", str(tmp_path / "ws4"),
                              "--data-dir", str(data)])
    assert res.exit_code != 0 and "database file not found" in res.output


def test_saved_cohort_reads_back(data, tmp_path):
    """The workspace cohort a later stage reads: the same visits, the OMOP report kept."""
    from kgrec import api
    from kgrec.cohort.base import Cohort

    res = api.prepare("omop", tmp_path / "ws", data, source_dir=F.write_folder(tmp_path / "cdm", "5.4"))
    c = Cohort.load(res.path)
    assert c.source == "omop"
    pd.testing.assert_frame_equal(c.visits[res.cohort.visits.columns], res.cohort.visits, check_dtype=False)
    assert c.report["mapping_routes"]["unmapped"] == 1 and c.split is not None
