"""A small OMOP CDM written from the public DDL (OHDSI/CommonDataModel, v5.3 and v5.4), in every form
a site hands it over: a folder of CSV (lower- or UPPER-case names), CSV.gz, Athena-style tab-separated
vocabulary files (``YYYYMMDD`` dates, no quoting), Parquet, a SQLite file and a DuckDB file with schemas.

The rows exercise the protocol's branches: visits of each setting, one of a setting only through
``concept_ancestor`` (a CMS place of service), a visit of another setting and one without records
(dropped); ICD source concepts and ICD source values beside standard SNOMED concepts; every drug route
(ATC concept, ATC ancestor, ATC relationship, RxNorm ingredient name, RxNorm -> UNII -> DrugBank,
concept name, NDC and name source values for concept 0, unmapped); rows outside any visit.
"""

from __future__ import annotations

import datetime as dt
import gzip
import sqlite3
from pathlib import Path

# ------------------------------------------------------------------ DDL column lists (OHDSI/CommonDataModel)
PERSON = ("person_id gender_concept_id year_of_birth month_of_birth day_of_birth birth_datetime race_concept_id "
          "ethnicity_concept_id location_id provider_id care_site_id person_source_value gender_source_value "
          "gender_source_concept_id race_source_value race_source_concept_id ethnicity_source_value "
          "ethnicity_source_concept_id").split()
VISIT = {
    "5.3": ("visit_occurrence_id person_id visit_concept_id visit_start_date visit_start_datetime visit_end_date "
            "visit_end_datetime visit_type_concept_id provider_id care_site_id visit_source_value visit_source_concept_id "
            "admitting_source_concept_id admitting_source_value discharge_to_concept_id discharge_to_source_value "
            "preceding_visit_occurrence_id").split(),
    "5.4": ("visit_occurrence_id person_id visit_concept_id visit_start_date visit_start_datetime visit_end_date "
            "visit_end_datetime visit_type_concept_id provider_id care_site_id visit_source_value visit_source_concept_id "
            "admitted_from_concept_id admitted_from_source_value discharged_to_concept_id discharged_to_source_value "
            "preceding_visit_occurrence_id").split(),
}
CONDITION = {
    "5.3": ("condition_occurrence_id person_id condition_concept_id condition_start_date condition_start_datetime "
            "condition_end_date condition_end_datetime condition_type_concept_id stop_reason provider_id "
            "visit_occurrence_id visit_detail_id condition_source_value condition_source_concept_id "
            "condition_status_source_value condition_status_concept_id").split(),
    "5.4": ("condition_occurrence_id person_id condition_concept_id condition_start_date condition_start_datetime "
            "condition_end_date condition_end_datetime condition_type_concept_id condition_status_concept_id stop_reason "
            "provider_id visit_occurrence_id visit_detail_id condition_source_value condition_source_concept_id "
            "condition_status_source_value").split(),
}
PROCEDURE = {
    "5.3": ("procedure_occurrence_id person_id procedure_concept_id procedure_date procedure_datetime "
            "procedure_type_concept_id modifier_concept_id quantity provider_id visit_occurrence_id visit_detail_id "
            "procedure_source_value procedure_source_concept_id modifier_source_value").split(),
    "5.4": ("procedure_occurrence_id person_id procedure_concept_id procedure_date procedure_datetime procedure_end_date "
            "procedure_end_datetime procedure_type_concept_id modifier_concept_id quantity provider_id visit_occurrence_id "
            "visit_detail_id procedure_source_value procedure_source_concept_id modifier_source_value").split(),
}
DRUG = ("drug_exposure_id person_id drug_concept_id drug_exposure_start_date drug_exposure_start_datetime "
        "drug_exposure_end_date drug_exposure_end_datetime verbatim_end_date drug_type_concept_id stop_reason refills "
        "quantity days_supply sig route_concept_id lot_number provider_id visit_occurrence_id visit_detail_id "
        "drug_source_value drug_source_concept_id route_source_value dose_unit_source_value").split()
CARE_SITE = ("care_site_id care_site_name place_of_service_concept_id location_id care_site_source_value "
             "place_of_service_source_value").split()
LOCATION = {
    "5.3": "location_id address_1 address_2 city state zip county location_source_value".split(),
    "5.4": ("location_id address_1 address_2 city state zip county location_source_value country_concept_id "
            "country_source_value latitude longitude").split(),
}
CDM_SOURCE = {
    "5.3": ("cdm_source_name cdm_source_abbreviation cdm_holder source_description source_documentation_reference "
            "cdm_etl_reference source_release_date cdm_release_date cdm_version vocabulary_version").split(),
    "5.4": ("cdm_source_name cdm_source_abbreviation cdm_holder source_description source_documentation_reference "
            "cdm_etl_reference source_release_date cdm_release_date cdm_version cdm_version_concept_id "
            "vocabulary_version").split(),
}
CONCEPT = ("concept_id concept_name domain_id vocabulary_id concept_class_id standard_concept concept_code "
           "valid_start_date valid_end_date invalid_reason").split()
CONCEPT_RELATIONSHIP = "concept_id_1 concept_id_2 relationship_id valid_start_date valid_end_date invalid_reason".split()
CONCEPT_ANCESTOR = "ancestor_concept_id descendant_concept_id min_levels_of_separation max_levels_of_separation".split()

VOCABULARY_TABLES = ("concept", "concept_relationship", "concept_ancestor")
INTEGER = {"year_of_birth", "month_of_birth", "day_of_birth", "min_levels_of_separation", "max_levels_of_separation",
           "refills", "days_supply"}


def columns(version: str) -> dict[str, list[str]]:
    """Each table's columns in DDL order for CDM ``version``."""
    return {
        "person": PERSON, "visit_occurrence": VISIT[version], "condition_occurrence": CONDITION[version],
        "procedure_occurrence": PROCEDURE[version], "drug_exposure": DRUG, "care_site": CARE_SITE,
        "location": LOCATION[version], "cdm_source": CDM_SOURCE[version], "concept": CONCEPT,
        "concept_relationship": CONCEPT_RELATIONSHIP, "concept_ancestor": CONCEPT_ANCESTOR,
    }


def sql_type(col: str) -> str:
    """The DDL's type of a column (by its name, as the DDL names them)."""
    if col.endswith("_datetime"):
        return "TIMESTAMP"
    if col.endswith("_date"):
        return "DATE"
    if col.endswith("_id") and not col.startswith(("vocabulary", "domain", "concept_class", "relationship")) or col in INTEGER \
            or col.startswith("concept_id_"):
        return "INTEGER"
    if col in ("quantity", "latitude", "longitude"):
        return "NUMERIC"
    return "VARCHAR(255)"


# ------------------------------------------------------------------ the rows (name -> value; the rest NULL)
CONCEPTS = [
    # visits (Visit vocabulary, CMS Place of Service)
    (9201, "Inpatient Visit", "Visit", "Visit", "Visit", "S", "IP"),
    (9202, "Outpatient Visit", "Visit", "Visit", "Visit", "S", "OP"),
    (9203, "Emergency Room Visit", "Visit", "Visit", "Visit", "S", "ER"),
    (581458, "Pharmacy visit", "Visit", "Visit", "Visit", "S", "PH"),
    (8717, "Inpatient Hospital", "Visit", "CMS Place of Service", "Place of Service", "S", "21"),
    (38004515, "Hospital", "Visit", "CMS Place of Service", "Place of Service", "S", "HOSP"),
    (8870, "Emergency Room - Hospital", "Visit", "CMS Place of Service", "Place of Service", "S", "23"),
    (8507, "MALE", "Gender", "Gender", "Gender", "S", "M"),
    (8532, "FEMALE", "Gender", "Gender", "Gender", "S", "F"),
    # conditions: standard SNOMED, source ICD
    (319835, "Congestive heart failure", "Condition", "SNOMED", "Clinical Finding", "S", "42343007"),
    (313217, "Atrial fibrillation", "Condition", "SNOMED", "Clinical Finding", "S", "49436004"),
    (201826, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "44054006"),
    (320128, "Essential hypertension", "Condition", "SNOMED", "Clinical Finding", "S", "59621000"),
    (44824250, "Congestive heart failure, unspecified", "Condition", "ICD9CM", "5-dig billing code", "", "428.0"),
    (45576876, "Type 2 diabetes mellitus without complications", "Condition", "ICD10CM", "5-char billing code", "", "E11.9"),
    (35207673, "Heart failure, unspecified", "Condition", "ICD10CM", "4-char billing code", "", "I50.9"),
    # procedures
    (4230911, "Electrocardiographic procedure", "Procedure", "SNOMED", "Procedure", "S", "29303009"),
    (2313814, "Routine electrocardiogram with at least 12 leads", "Procedure", "CPT4", "CPT4", "S", "93000"),
    (2008271, "Other electrocardiogram", "Procedure", "ICD9Proc", "4-dig billing code", "", "89.52"),
    # drugs: RxNorm products and ingredients, ATC classes
    (1000001, "Furosemide 40 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "310429"),
    (1000002, "Metoprolol succinate 25 MG Extended Release Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "866427"),
    (1000003, "Warfarin Sodium 5 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "855332"),
    (1000004, "Loratadine 10 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S", "311372"),
    (1000005, "Zzyzx Convenience Kit", "Drug", "RxNorm Extension", "Branded Pack", "S", "OMOP99999"),
    (1000010, "Warfarin", "Drug", "RxNorm", "Ingredient", "S", "11289"),
    (1000011, "Metoprolol", "Drug", "RxNorm", "Ingredient", "S", "6918"),
    (1000012, "Furosemide", "Drug", "RxNorm", "Ingredient", "S", "4603"),
    (2000001, "furosemide", "Drug", "ATC", "ATC 5th", "C", "C03CA01"),
    (2000002, "HIGH-CEILING DIURETICS", "Drug", "ATC", "ATC 3rd", "C", "C03C"),
    (2000003, "metoprolol", "Drug", "ATC", "ATC 5th", "C", "C07AB02"),
    (2000004, "paracetamol", "Drug", "ATC", "ATC 5th", "C", "N02BE01"),
    (2000005, "DIURETICS", "Drug", "ATC", "ATC 2nd", "C", "C03"),
    # not used by the cohort: the filtered reads must leave them out
    (3000001, "Unused concept", "Observation", "LOINC", "Lab Test", "S", "1234-5"),
]

PERSONS = [
    {"person_id": 1, "gender_concept_id": 8507, "year_of_birth": 1950, "month_of_birth": 3, "day_of_birth": 10,
     "birth_datetime": "1950-03-10 00:00:00", "race_concept_id": 0, "ethnicity_concept_id": 0, "care_site_id": 10,
     "person_source_value": "P-1", "gender_source_value": "M"},
    {"person_id": 2, "gender_concept_id": 8532, "year_of_birth": 1980, "race_concept_id": 0, "ethnicity_concept_id": 0,
     "person_source_value": "P-2", "gender_source_value": "F"},
    {"person_id": 3, "gender_concept_id": 0, "year_of_birth": 1990, "month_of_birth": 2, "race_concept_id": 0,
     "ethnicity_concept_id": 0, "person_source_value": "P-3", "gender_source_value": "F"},
]


def _visit(vid, pid, concept, day, time=None, care_site=None, came_from=None):
    return {"visit_occurrence_id": vid, "person_id": pid, "visit_concept_id": concept, "visit_start_date": day,
            "visit_start_datetime": f"{day} {time}" if time else None, "visit_end_date": day, "visit_type_concept_id": 32817,
            "care_site_id": care_site, "visit_source_value": f"V{vid}", "_came_from": came_from}


VISITS = [
    _visit(101, 1, 9201, "2019-01-05", "08:30:00", 10, 8870),
    _visit(102, 1, 9203, "2019-06-01", "23:10:00", 10),
    _visit(103, 1, 581458, "2019-07-01"),  # pharmacy visit: another setting, dropped
    _visit(201, 2, 8717, "2020-02-02", "10:00:00", 20),  # CMS inpatient hospital: inpatient
    _visit(202, 2, 9202, "2020-03-03"),  # outpatient visit without any record: dropped
    _visit(301, 3, 38004515, "2021-04-04"),  # a descendant of 9201 in concept_ancestor only: inpatient
    _visit(302, 3, 9202, "2021-05-05", "09:00:00"),
]


def _cond(i, pid, vid, concept, day, source_value="", source_concept=0):
    return {"condition_occurrence_id": i, "person_id": pid, "condition_concept_id": concept, "condition_start_date": day,
            "condition_type_concept_id": 32817, "visit_occurrence_id": vid, "condition_source_value": source_value,
            "condition_source_concept_id": source_concept}


CONDITIONS = [
    _cond(1, 1, 101, 313217, "2019-01-06", "427.31"),  # ICD-9 read from the source value's form
    _cond(2, 1, 101, 319835, "2019-01-05", "428.0", 44824250),  # earlier start: first
    _cond(3, 1, 102, 201826, "2019-06-01", "E11.9", 45576876),
    _cond(4, 1, 103, 320128, "2019-07-01", "401.9"),  # of a dropped visit
    _cond(5, 2, 201, 0, "2020-02-02", "I50.9"),  # no standard concept: the ICD-10 source value only
    _cond(6, 2, 201, 319835, "2020-02-02", "I50.9", 35207673),
    _cond(7, 3, 301, 320128, "2021-04-04", "401.9"),
    _cond(8, 3, 302, 313217, "2021-05-05", "AFIB"),  # a local source value: the SNOMED concept only
    _cond(9, 3, None, 201826, "2021-05-06", "E11.9", 45576876),  # outside any visit
]


def _drug(i, pid, vid, concept, day, source_value="", source_concept=0):
    return {"drug_exposure_id": i, "person_id": pid, "drug_concept_id": concept, "drug_exposure_start_date": day,
            "drug_exposure_end_date": day, "drug_type_concept_id": 32818, "visit_occurrence_id": vid,
            "drug_source_value": source_value, "drug_source_concept_id": source_concept, "quantity": 1}


DRUGS = [
    _drug(1, 1, 101, 1000001, "2019-01-05", "FUROS40"),  # ATC ancestor (nearest level: C03CA01 -> C03C)
    _drug(2, 1, 101, 1000002, "2019-01-05"),  # "RxNorm - ATC" relationship -> C07A
    _drug(3, 1, 101, 1000003, "2019-01-06"),  # ingredient Warfarin by name -> B01A
    _drug(4, 1, 102, 1000011, "2019-06-01"),  # RxNorm 6918 -> UNII -> DrugBank -> C07A
    _drug(5, 1, 102, 2000004, "2019-06-01"),  # an ATC concept itself -> N02B
    _drug(6, 2, 201, 0, "2020-02-02", "00000000013"),  # NDC of the source value -> B01A
    _drug(7, 2, 201, 0, "2020-02-02", "acetaminophen 325 mg tablet"),  # name of the source value -> N02B
    _drug(8, 2, 201, 1000004, "2020-02-02"),  # concept name -> R06A
    _drug(9, 3, 301, 1000005, "2021-04-04", "KIT"),  # unmapped
    _drug(10, 3, 301, 1000001, "2021-04-04"),
    _drug(11, 3, 302, 1000002, "2021-05-05"),
    _drug(12, 1, 103, 1000001, "2019-07-01"),  # of a dropped visit
    _drug(13, 3, None, 1000001, "2021-05-06"),  # outside any visit
]

PROCEDURES = [
    {"procedure_occurrence_id": 1, "person_id": 1, "procedure_concept_id": 4230911, "procedure_date": "2019-01-05",
     "procedure_type_concept_id": 32817, "visit_occurrence_id": 101, "procedure_source_value": "89.52",
     "procedure_source_concept_id": 2008271},
    {"procedure_occurrence_id": 2, "person_id": 1, "procedure_concept_id": 2313814, "procedure_date": "2019-01-06",
     "procedure_type_concept_id": 32817, "visit_occurrence_id": 101, "procedure_source_value": "93000",
     "procedure_source_concept_id": 2313814},
    {"procedure_occurrence_id": 3, "person_id": 2, "procedure_concept_id": 0, "procedure_date": "2020-02-02",
     "procedure_type_concept_id": 32817, "visit_occurrence_id": 201, "procedure_source_value": "0DTJ4ZZ",
     "procedure_source_concept_id": 0},
]

RELATIONSHIPS = [
    (1000002, 2000003, "RxNorm - ATC", ""),
    (1000003, 1000010, "RxNorm has ing", ""),
    (1000001, 1000012, "RxNorm has ing", ""),
    (1000004, 2000004, "RxNorm - ATC", "D"),  # invalid (deprecated): not used
]
ANCESTORS = [
    (9201, 38004515, 1, 1),
    (2000001, 1000001, 1, 1), (2000002, 1000001, 2, 2), (2000005, 1000001, 3, 3), (1000012, 1000001, 1, 1),
    (9201, 9201, 0, 0),
]


def tables(version: str = "5.4") -> dict[str, list[dict]]:
    """The CDM's rows per table (values as Python objects; None for NULL) for ``version``."""
    adm = "admitted_from_concept_id" if version == "5.4" else "admitting_source_concept_id"
    visits = []
    for v in VISITS:
        row = {k: x for k, x in v.items() if not k.startswith("_")}
        row[adm] = v["_came_from"]
        visits.append(row)
    return {
        "person": PERSONS,
        "visit_occurrence": visits,
        "condition_occurrence": CONDITIONS,
        "procedure_occurrence": PROCEDURES,
        "drug_exposure": DRUGS,
        "care_site": [{"care_site_id": 10, "care_site_name": "General Hospital ICU", "place_of_service_concept_id": 8717,
                       "location_id": 1},
                      {"care_site_id": 20, "care_site_name": "North Clinic", "place_of_service_concept_id": 8717, "location_id": 1}],
        "location": [{"location_id": 1, "city": "Springfield", "state": "MA", "zip": "01101"}],
        "cdm_source": [{"cdm_source_name": "kgrec test CDM", "cdm_source_abbreviation": "KTEST", "cdm_holder": "kgrec",
                        "source_release_date": "2024-01-01", "cdm_release_date": "2024-02-01",
                        "cdm_version": "v5.4.0" if version == "5.4" else "v5.3.1",
                        **({"cdm_version_concept_id": 756265} if version == "5.4" else {}),
                        "vocabulary_version": "v5.0 30-AUG-24"}],
        "concept": [dict(zip(["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
                              "concept_code"], c), valid_start_date="1970-01-01", valid_end_date="2099-12-31") for c in CONCEPTS],
        "concept_relationship": [{"concept_id_1": a, "concept_id_2": b, "relationship_id": r, "valid_start_date": "1970-01-01",
                                  "valid_end_date": "2099-12-31", "invalid_reason": inv or None} for a, b, r, inv in RELATIONSHIPS],
        "concept_ancestor": [dict(zip(CONCEPT_ANCESTOR, a)) for a in ANCESTORS],
    }


def drug_mappings_extra(root: Path) -> None:
    """RxNorm -> UNII -> DrugBank rows for the ``rxnorm-unii-drugbank`` route (metoprolol, RxCUI 6918),
    beside :func:`tests.fixtures_ehr.make_drug_mappings`'s files."""
    from tests.fixtures_ehr import VOCABULARY, csv_text, write

    write(root / "kg/rxcui-unii-map.tsv", "rxnorm_id\tfdasrs_id\n6918\tGEB06NHM23\n")
    write(root / "kg/drugbank/drugbank_vocabulary.csv", csv_text(
        ["DrugBank ID", "Accession Numbers", "Common name", "CAS", "UNII", "Synonyms", "Standard InChI Key"],
        [{"DrugBank ID": d, "Common name": n, "Synonyms": s, "UNII": "GEB06NHM23" if d == "DB00264" else ""} for d, n, s in VOCABULARY]))


# ------------------------------------------------------------------ writers
def _text(v, athena: bool = False) -> str:
    if v is None:
        return ""
    s = str(v)
    if athena:  # Athena: dates as YYYYMMDD, nothing quoted (a name may hold commas and quotes)
        return s.replace("-", "") if len(s) == 10 and s[4] == "-" and s[7] == "-" else s
    if any(ch in s for ch in ',"\r\n'):
        s = '"' + s.replace('"', '""') + '"'
    return s


def write_folder(folder: Path, version: str = "5.4", *, upper: bool = False, gz: bool = False, athena_vocab: bool = False,
                 omit: tuple[str, ...] = (), data: dict | None = None) -> Path:
    """The CDM as CSV files: ``upper`` names files and headers in capitals (``PERSON.csv``, as many ETLs
    write them), ``gz`` compresses them, ``athena_vocab`` writes the vocabulary as an OHDSI Athena
    download (``CONCEPT.csv``, tab-separated, unquoted, ``YYYYMMDD`` dates)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else tables(version)
    for name, cols in columns(version).items():
        if name in omit:
            continue
        athena = athena_vocab and name in VOCABULARY_TABLES
        sep = "\t" if athena else ","
        header = [c.upper() if upper or athena else c for c in cols]
        lines = [sep.join(header)] + [sep.join(_text(r.get(c), athena) for c in cols) for r in data[name]]
        text = "\n".join(lines) + "\n"
        fname = (name.upper() if upper or athena else name) + ".csv"
        if gz and not athena:
            (folder / (fname + ".gz")).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / fname).write_text(text, encoding="utf-8")
    return folder


def _typed(v, t: str):
    if v is None or v == "":
        return None
    if t == "INTEGER":
        return int(v)
    if t == "DATE":
        return dt.date.fromisoformat(str(v))
    if t == "TIMESTAMP":
        return dt.datetime.fromisoformat(str(v))
    if t == "NUMERIC":
        return float(v)
    return str(v)


def write_parquet(folder: Path, version: str = "5.4", data: dict | None = None) -> Path:
    """The CDM as one typed Parquet file per table (int64, date32, timestamp, string)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"INTEGER": pa.int64(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "NUMERIC": pa.float64(),
             "VARCHAR(255)": pa.string()}
    folder.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else tables(version)
    for name, cols in columns(version).items():
        arrays = {c: pa.array([_typed(r.get(c), sql_type(c)) for r in data[name]], type=types[sql_type(c)]) for c in cols}
        pq.write_table(pa.table(arrays), folder / f"{name}.parquet")
    return folder


def ddl(name: str, cols: list[str], schema: str | None = None) -> str:
    q = f"{schema}.{name}" if schema else name
    return f"CREATE TABLE {q} (" + ", ".join(f"{c} {sql_type(c)}{' NOT NULL' if c == cols[0] and c.endswith('_id') else ''}"
                                              for c in cols) + ")"


def write_sqlite(path: Path, version: str = "5.4", data: dict | None = None) -> Path:
    """The CDM in a SQLite file from the DDL (dates as ISO text, as SQLite keeps them)."""
    data = data if data is not None else tables(version)
    con = sqlite3.connect(path)
    for name, cols in columns(version).items():
        con.execute(ddl(name, cols))
        rows = [tuple(None if r.get(c) in (None, "") else r.get(c) for c in cols) for r in data[name]]
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(cols))})", rows)
    con.commit()
    con.close()
    return path


def write_duckdb(path: Path, version: str = "5.4", schema: str = "cdm", vocab_schema: str | None = "vocab",
                 data: dict | None = None) -> Path:
    """The CDM in a DuckDB file, typed from the DDL, the clinical tables in ``schema`` and the
    vocabulary in ``vocab_schema`` (as many OHDSI sites keep them)."""
    import duckdb

    data = data if data is not None else tables(version)
    con = duckdb.connect(str(path))
    catalog = con.execute("SELECT current_database()").fetchone()[0]  # cdm.duckdb with schema cdm: qualify
    for s in {schema, vocab_schema} - {None}:
        con.execute(f"CREATE SCHEMA {catalog}.{s}")
    for name, cols in columns(version).items():
        s = catalog + "." + (vocab_schema if name in VOCABULARY_TABLES and vocab_schema else schema)
        con.execute(ddl(name, cols, s))
        rows = [tuple(_typed(r.get(c), sql_type(c)) for c in cols) for r in data[name]]
        if rows:
            con.executemany(f"INSERT INTO {s}.{name} VALUES ({', '.join('?' * len(cols))})", rows)
    con.close()
    return path
