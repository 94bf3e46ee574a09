"""OMOP Common Data Model (v5.3, v5.4) -> cohort: any OHDSI site's data.

Read from a folder (CSV, CSV.gz, TSV or Parquet; table names in any case) or a database URL
(SQLAlchemy: SQLite, DuckDB, PostgreSQL, ...); see :mod:`kgrec.cohort.omop_io`. Tables (OMOP CDM DDL,
OHDSI/CommonDataModel): ``person``, ``visit_occurrence``, ``condition_occurrence``, ``drug_exposure``
(required); ``procedure_occurrence``, ``care_site``, ``cdm_source`` (optional); vocabulary ``concept``
(required), ``concept_ancestor`` and ``concept_relationship`` (optional). Protocol (docs/protocol.md,
"OMOP CDM"):

* **Visits**: ``visit_occurrence`` rows whose ``visit_concept_id`` is of a chosen *setting*
  (``inpatient``, ``emergency``, ``outpatient``: :data:`SETTINGS`, or a descendant of those concepts in
  ``concept_ancestor``), with at least one condition, procedure or drug record; ordered per person by
  ``visit_start_datetime`` (else ``visit_start_date``). The setting is the profile's ``encounter_class``.
* **Diagnoses**: per ``condition_occurrence`` row of the visit, the ICD-9-CM / ICD-10-CM source code
  (``condition_source_concept_id``; else ``condition_source_value`` where its form decides the version)
  and the standard concept (SNOMED -> ``SNOMED:<code>``, other vocabularies ``OMOP:<concept_id>``), so
  both reach the graph. Procedures alike (``ICD9PROC``, ``ICD10PCS``, ``SNOMEDPROC``, ``CPT4``,
  ``HCPCS``, ``OMOPPROC:<concept_id>``).
* **Drugs** (``drug_exposure`` of the visit) to ATC level 3, first route that answers: the concept is
  an ATC class; its ATC ancestors in ``concept_ancestor`` (nearest level; ties by the class's
  frequency in the open GSN map, then code); an ATC concept related in ``concept_relationship``; the
  names of its RxNorm ingredients (``concept_relationship``) matched as the Synthea loader matches
  names; the RxNorm code through RxNorm -> UNII -> DrugBank -> ATC; the concept's name; for
  ``drug_concept_id`` 0, the ``drug_source_value`` as an NDC, then as a name. Each row's route is
  counted in the report (``mapping_routes``).
* **Profile**: age at the visit from ``birth_datetime``, else ``year_of_birth`` / ``month_of_birth`` /
  ``day_of_birth`` (a missing month is 1 July, a missing day the 15th); sex from ``gender_concept_id``
  (8507 male, 8532 female; else ``gender_source_value``); ``admission_location`` the name of
  ``admitted_from_concept_id`` (v5.4) / ``admitting_source_concept_id`` (v5.3).
* **Site**: ``cdm_source`` (name, abbreviation, vocabulary version) and the visits per ``care_site``.

Over the ~400-line guide: the CDM protocol (settings, two code sources, seven drug routes, profile,
site, coverage report) is one reader, kept together so that docs/cohort-omop.md maps onto one file.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from kgrec.cohort.base import CohortLoader, assemble, cap_age, norm_sex, norm_text, top_unmapped
from kgrec.cohort.codes import atc3, icd_id, normalise_ndc, versions_by_form
from kgrec.cohort.omop_io import CdmTables, DatabaseTables, FolderTables
from kgrec.errors import InputError
from kgrec.tables import count_unreadable, parse_times

# Standard visit concepts of each setting (OMOP "Visit" vocabulary and the CMS place-of-service
# concepts sites use as visit concepts); descendants of the first id of each in concept_ancestor count too.
SETTINGS: dict[str, dict[int, str]] = {
    "inpatient": {9201: "Inpatient Visit", 262: "Emergency Room and Inpatient Visit", 8717: "Inpatient Hospital",
                  32037: "Intensive Care", 581379: "Inpatient Critical Care Facility"},
    "emergency": {9203: "Emergency Room Visit", 8870: "Emergency Room - Hospital"},
    "outpatient": {9202: "Outpatient Visit", 581477: "Office Visit", 5083: "Telehealth", 38004207: "Ambulatory Clinic / Center"},
}
DEFAULT_SETTINGS = ("inpatient", "emergency", "outpatient")
SEX = {"8507": "M", "8532": "F"}
VERSIONS = ("5.3", "5.4")
ATC_CLASSES = {"ATC 3rd", "ATC 4th", "ATC 5th"}
INGREDIENT_RELATIONSHIPS = {"RxNorm has ing", "Has ingredient", "Consists of", "RxNorm - Source eq"}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$", re.IGNORECASE)
_EPOCH = re.compile(r"^-?\d{9,11}(\.\d+)?$")


def _fail(df: pd.DataFrame, i, column: str, message: str, key: str | None = None) -> InputError:
    """An error naming the table, column and line (file) or the row's key (database)."""
    if df.attrs.get("lines") and int(df.loc[i, "_line"]) > 0:
        return InputError(message, path=df.attrs.get("path"), column=column, line=int(df.loc[i, "_line"]))
    row = f" (row with {key}={df.loc[i, key]!r})" if key and key in df else ""
    return InputError(message + row, path=df.attrs.get("path"), column=column)


def _check_ids(df: pd.DataFrame, cols: list[str], key: str | None = None, allow_empty: tuple[str, ...] = ()) -> None:
    """Integer id / concept id columns: digits only (empty allowed where the CDM allows NULL)."""
    for col in cols:
        if col not in df:
            continue
        v = df[col]
        floaty = v.str.fullmatch(r"\d+\.0+")  # an integer id written from a float column (pandas, Excel)
        if floaty.any():
            v = df[col] = v.where(~floaty, v.str.split(".").str[0])
        bad = ~v.str.fullmatch(r"\d+") & ~((v == "") & (col in allow_empty))
        if bad.any():
            i = bad.idxmax()
            what = "is empty (the CDM requires it)" if v[i] == "" else f"{v[i][:40]!r} is not an integer id"
            raise _fail(df, i, col, what, key)


def parse_cdm_dates(values: pd.Series, df: pd.DataFrame, column: str, key: str | None = None, errors: str = "raise") -> pd.Series:
    """CDM dates and timestamps as sites write them: ISO (``2019-07-08``, ``2019-07-08 10:00:00``),
    ``YYYYMMDD`` (Athena), Unix seconds (SQLite CDMs written by OHDSI's DatabaseConnector store dates as
    REAL seconds), US ``7/8/2019``. Unreadable: an error naming the table, column and line / row, or NaT
    with ``errors="missing"``."""
    s = values.fillna("").astype(str).str.strip()
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    ymd = s.str.fullmatch(r"\d{8}")
    if ymd.any():
        out[ymd] = pd.to_datetime(s[ymd], format="%Y%m%d", errors="coerce")
    epoch = s.str.match(_EPOCH)
    if epoch.any():
        out[epoch] = pd.to_datetime(pd.to_numeric(s[epoch]), unit="s", errors="coerce")
    rest = ~ymd & ~epoch & (s != "")
    if rest.any():
        out[rest] = parse_times(s[rest], df.attrs.get("path"), column, None, century="past", errors="missing").to_numpy()
    bad = out.isna() & (s != "")
    if bad.any() and errors == "raise":
        raise _fail(df, bad.idxmax(), column, f"unreadable date {s[bad.idxmax()][:40]!r}", key)
    return out


class OmopLoader(CohortLoader):
    """OMOP CDM v5.3 / v5.4 from a folder or a database URL; see the module docstring.

    Args:
        source_dir: folder of the CDM tables (CSV, CSV.gz, TSV, Parquet), or None with ``db_url``.
        mappings: the open code maps (GSN/NDC/RxNorm/names -> ATC3) for the non-vocabulary routes.
        db_url: SQLAlchemy URL (``postgresql://user@host/db``, ``sqlite:///cdm.db``, ``duckdb:///cdm.duckdb``).
        db_schema: the CDM schema in the database (default: the connection's).
        vocab_schema: the vocabulary tables' schema where it differs from ``db_schema``.
        settings: visit settings kept as visits (:data:`SETTINGS`).
        cdm_version: ``5.3`` or ``5.4`` where ``cdm_source`` does not say.
    """

    name = "omop"
    default_folder = "omop"
    description = "OMOP CDM v5.3/v5.4 (folder or database URL): visit_occurrence rows are visits, ICD + SNOMED conditions, drugs -> ATC3 through the vocabulary"

    def __init__(self, source_dir: Path | None, mappings, *, db_url: str | None = None, db_schema: str | None = None,
                 vocab_schema: str | None = None, settings: tuple[str, ...] = DEFAULT_SETTINGS, cdm_version: str | None = None):
        if db_url and source_dir:
            raise InputError("give the OMOP CDM as a folder (--source-dir) or a database URL (--db-url), not both")
        if not db_url and not source_dir:
            raise InputError("no OMOP CDM given: pass --source-dir FOLDER (CSV/Parquet files) or --db-url URL")
        unknown = [s for s in settings if s not in SETTINGS]
        if unknown or not settings:
            raise InputError(f"unknown visit setting(s) {', '.join(map(repr, unknown)) or '(none given)'}; choose from {', '.join(SETTINGS)}")
        if cdm_version is not None and cdm_version not in VERSIONS:
            raise InputError(f"CDM version {cdm_version!r} is not one kgrec reads; choose from {', '.join(VERSIONS)}")
        self.source_dir = Path(source_dir) if source_dir else None
        self.mappings = mappings
        self.db_url, self.db_schema, self.vocab_schema = db_url, db_schema, vocab_schema
        self.settings, self.cdm_version = tuple(settings), cdm_version
        if self.source_dir is not None:
            FolderTables(self.source_dir)  # the folder's own errors (missing, a file) at once

    def tables(self) -> CdmTables:
        if self.db_url:
            return DatabaseTables(self.db_url, self.db_schema, self.vocab_schema)
        return FolderTables(self.source_dir)

    def read(self):
        t = self.tables()
        try:
            return self._read(t)
        finally:
            t.close()

    # ---------------------------------------------------------------------------------------- version
    def _version(self, t: CdmTables, report: dict) -> str:
        stated = None
        if t.has("cdm_source"):
            src = t.read("cdm_source", [], ["cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "cdm_version", "vocabulary_version"])
            if len(src):
                row = src.iloc[0]
                report["cdm_source"] = {k: row[k] for k in ("cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "vocabulary_version")
                                        if k in row and row[k]}
                stated = row.get("cdm_version") or None
        holder = (report.get("cdm_source") or {}).get("cdm_holder") or (report.get("cdm_source") or {}).get("cdm_source_name")
        # the graph's Visit edges carry it (kgrec.graph.sources.ehr.cohort_licence): an OMOP extract is under its holder's terms
        report["licence"] = f"the data holder's terms ({holder})" if holder else "the data holder's terms (OMOP CDM; cdm_source names no holder)"
        if stated:
            m = _VERSION.match(stated.strip())
            version = f"{m.group(1)}.{m.group(2)}" if m else None
            if version not in VERSIONS:
                raise InputError(f"CDM version {stated!r} (cdm_source.cdm_version) is not one kgrec reads: v5.3 and v5.4 only "
                                 "(v5.2 lacks fields kgrec reads; v6.0 was withdrawn by OHDSI)", path=t.location, column="cdm_version")
            report["cdm_version"], report["cdm_version_from"] = version, "cdm_source"
            return version
        if self.cdm_version:
            report["cdm_version"], report["cdm_version_from"] = self.cdm_version, "option"
            return self.cdm_version
        cols = set(t.columns("visit_occurrence"))
        if "admitted_from_concept_id" in cols:
            version = "5.4"
        elif "admitting_source_concept_id" in cols:
            version = "5.3"
        else:
            raise InputError("cannot tell the CDM version: no cdm_source table with cdm_version, and visit_occurrence has neither "
                             "admitted_from_concept_id (v5.4) nor admitting_source_concept_id (v5.3); pass --cdm-version 5.3 or 5.4",
                             path=t.location)
        report["cdm_version"], report["cdm_version_from"] = version, "visit_occurrence columns"
        return version

    # ------------------------------------------------------------------------------------------- read
    def _read(self, t: CdmTables):
        report: dict = {"reader": "database" if self.db_url else "folder", "location": t.location}
        version = self._version(t, report)
        adm_col = "admitted_from_concept_id" if version == "5.4" else "admitting_source_concept_id"

        person = t.read("person", ["person_id", "gender_concept_id", "year_of_birth"],
                        ["month_of_birth", "day_of_birth", "birth_datetime", "gender_source_value"])
        _check_ids(person, ["person_id", "gender_concept_id"], "person_id")
        if person["person_id"].duplicated().any():
            raise _fail(person, person["person_id"].duplicated().idxmax(), "person_id", "person id appears twice", "person_id")
        vo = t.read("visit_occurrence", ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"],
                    ["visit_start_datetime", "care_site_id", adm_col])
        _check_ids(vo, ["visit_occurrence_id", "person_id", "visit_concept_id"], "visit_occurrence_id")
        _check_ids(vo, ["care_site_id", adm_col], "visit_occurrence_id", allow_empty=("care_site_id", adm_col))
        if vo["visit_occurrence_id"].duplicated().any():
            raise _fail(vo, vo["visit_occurrence_id"].duplicated().idxmax(), "visit_occurrence_id", "visit id appears twice", "visit_occurrence_id")
        for df, name in ((person, "person"), (vo, "visit_occurrence")):
            if df.empty:
                raise InputError("the table has no rows; it is required", path=df.attrs["path"])
        cond = t.read("condition_occurrence", ["person_id", "condition_concept_id", "visit_occurrence_id"],
                      ["condition_start_date", "condition_start_datetime", "condition_source_value", "condition_source_concept_id"])
        drug = t.read("drug_exposure", ["person_id", "drug_concept_id", "visit_occurrence_id"], ["drug_source_value", "drug_source_concept_id"])
        if t.has("procedure_occurrence"):
            proc = t.read("procedure_occurrence", ["person_id", "procedure_concept_id", "visit_occurrence_id"],
                          ["procedure_date", "procedure_source_value", "procedure_source_concept_id"])
            if proc.empty:
                report.setdefault("empty_tables", []).append("procedure_occurrence")
        else:
            proc = None
            report["procedure_rows"] = None
            report.setdefault("absent_tables", []).append("procedure_occurrence")
        for df in (cond, drug):
            if df.empty:
                raise InputError("the table has no rows; it is required (a cohort without its conditions or drugs)", path=df.attrs["path"])
        _check_ids(cond, ["person_id", "condition_concept_id", "visit_occurrence_id", "condition_source_concept_id"], None,
                   allow_empty=("visit_occurrence_id", "condition_source_concept_id"))
        _check_ids(drug, ["person_id", "drug_concept_id", "visit_occurrence_id", "drug_source_concept_id"], None,
                   allow_empty=("visit_occurrence_id", "drug_source_concept_id"))
        if proc is not None:
            _check_ids(proc, ["person_id", "procedure_concept_id", "visit_occurrence_id", "procedure_source_concept_id"], None,
                       allow_empty=("visit_occurrence_id", "procedure_source_concept_id"))

        # ---- vocabulary, read for the concepts the cohort uses only
        drug_ids = set(drug["drug_concept_id"]) - {"0"}
        visit_ids = set(vo["visit_concept_id"]) - {"0"}
        ancestors = self._optional(t, "concept_ancestor", ["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation"],
                                   ("descendant_concept_id", drug_ids | visit_ids), report)
        related = self._optional(t, "concept_relationship", ["concept_id_1", "concept_id_2", "relationship_id"],
                                 ("concept_id_1", drug_ids), report, optional=["invalid_reason"])
        if related is not None and "invalid_reason" in related:
            related = related[related["invalid_reason"] == ""]
        used = {
            ("visit_occurrence", "visit_concept_id"): vo["visit_concept_id"],
            ("visit_occurrence", adm_col): vo.get(adm_col, pd.Series(dtype=object)),
            ("condition_occurrence", "condition_concept_id"): cond["condition_concept_id"],
            ("condition_occurrence", "condition_source_concept_id"): cond.get("condition_source_concept_id", pd.Series(dtype=object)),
            ("drug_exposure", "drug_concept_id"): drug["drug_concept_id"],
            ("drug_exposure", "drug_source_concept_id"): drug.get("drug_source_concept_id", pd.Series(dtype=object)),
        }
        if proc is not None:
            used[("procedure_occurrence", "procedure_concept_id")] = proc["procedure_concept_id"]
            used[("procedure_occurrence", "procedure_source_concept_id")] = proc.get("procedure_source_concept_id", pd.Series(dtype=object))
        wanted = set().union(*(set(v) for v in used.values())) - {"", "0"}
        if ancestors is not None:
            wanted |= set(ancestors["ancestor_concept_id"])
        if related is not None:
            wanted |= set(related["concept_id_2"])
        concept = t.read("concept", ["concept_id", "concept_name", "vocabulary_id", "concept_class_id", "concept_code"],
                         ["standard_concept"], where=("concept_id", wanted))
        _check_ids(concept, ["concept_id"])
        concept = concept.drop_duplicates("concept_id").set_index("concept_id")
        self._check_concepts(used, concept, {str(i) for s in SETTINGS.values() for i in s})
        report["concepts_read"] = int(len(concept))

        # ---- visits
        setting = self._settings(vo, ancestors)
        kept_setting = setting.isin(self.settings)
        report["visit_rows"] = int(len(vo))
        other = vo.loc[~kept_setting, "visit_concept_id"].map(lambda c: concept["concept_name"].get(c, f"concept {c}"))
        report["visits_dropped_other_setting"] = {str(k): int(v) for k, v in other.value_counts().head(15).items()}
        report["visits_dropped_other_setting_total"] = int((~kept_setting).sum())
        has_rec = vo["visit_occurrence_id"].isin(set(cond["visit_occurrence_id"]) | set(drug["visit_occurrence_id"])
                                                 | (set(proc["visit_occurrence_id"]) if proc is not None else set()))
        report["visits_dropped_no_record"] = int((kept_setting & ~has_rec).sum())
        report["visits_by_setting"] = {k: int(v) for k, v in setting[kept_setting & has_rec].value_counts().items()}
        v = vo[kept_setting & has_rec].copy()
        v.attrs.update(vo.attrs)
        start = v["visit_start_datetime"] if "visit_start_datetime" in v else pd.Series("", index=v.index)
        start = start.where(start != "", v["visit_start_date"])
        if (start == "").any():
            raise _fail(v, (start == "").idxmax(), "visit_start_date", "empty visit start date (the CDM requires it)", "visit_occurrence_id")
        times = parse_cdm_dates(start, v, "visit_start_datetime" if "visit_start_datetime" in v else "visit_start_date", "visit_occurrence_id")
        admissions = pd.DataFrame({"patient_id": v["person_id"].values, "visit_id": v["visit_occurrence_id"].values, "time": times.values,
                                   "encounter_class": setting[v.index].values})
        if adm_col in v:
            came_from = v[adm_col].map(lambda c: concept["concept_name"].get(c) if c not in ("", "0") else None)
            admissions["admission_location"] = norm_text(came_from.fillna("")).values
        admissions = self._profile(admissions, person, report)
        admissions.attrs["path"] = vo.attrs["path"]
        self._sites(t, v, report)
        keep = set(admissions["visit_id"])

        # ---- diagnoses, procedures
        names: dict[str, str] = {}
        diag = self._codes(cond, "condition", "diagnosis", keep, concept, names, report)
        procs = self._codes(proc, "procedure", "procedure", keep, concept, names, report) if proc is not None else pd.DataFrame(columns=["visit_id", "code", "seq"])

        # ---- drugs
        d = drug[drug["visit_occurrence_id"].isin(keep)]
        report["drug_rows_without_visit"] = int((drug["visit_occurrence_id"] == "").sum())
        report["drug_rows_of_other_visits"] = int(((drug["visit_occurrence_id"] != "") & ~drug["visit_occurrence_id"].isin(keep)).sum())
        mapped = self._map_drugs(d, concept, ancestors, related)
        ok = mapped["atc3"].notna()
        n = len(d)
        report.update({
            "prescription_rows": n,
            "prescription_rows_mapped": int(ok.sum()),
            "drug_mapping_coverage": round(float(ok.mean()), 4) if n else 0.0,
            "mapping_routes": {k: int(c) for k, c in mapped["route"].value_counts().items()},
            "mapping_route_coverage": {k: round(c / n, 4) for k, c in mapped["route"].value_counts().items()} if n else {},
            "top_unmapped_drugs": top_unmapped(mapped.loc[~ok, "name"]),
        })
        drugs = pd.DataFrame({"visit_id": d.loc[ok, "visit_occurrence_id"].values, "code": mapped.loc[ok, "atc3"].values})
        visits = assemble(admissions, diag, procs, drugs)
        both = (visits["diagnoses"].map(len) > 0) & (visits["drugs"].map(len) > 0)
        report["visits_with_diagnosis_and_drug"] = int(both.sum())
        report["visits_with_diagnosis_and_drug_share"] = round(float(both.mean()), 4) if len(visits) else 0.0
        report["tables"] = {name: self._where(t, name) for name in ("person", "visit_occurrence", "condition_occurrence", "drug_exposure", "concept")}
        return visits, names, report

    @staticmethod
    def _where(t: CdmTables, name: str) -> str:
        return str(t.path(name)) if isinstance(t, FolderTables) else f"{t.location}: {name}"

    @staticmethod
    def _optional(t: CdmTables, name: str, required: list[str], where, report: dict, optional: list[str] = ()) -> pd.DataFrame | None:
        """An optional vocabulary table, filtered (None, and recorded, where the CDM has none)."""
        if not t.has(name):
            report.setdefault("absent_tables", []).append(name)
            return None
        df = t.read(name, required, optional, where=where)
        _check_ids(df, [c for c in required if c != "relationship_id"])
        return df

    @staticmethod
    def _check_concepts(used: dict, concept: pd.DataFrame, known: set[str]) -> None:
        """A concept id (not 0) that the concept table lacks: one error naming the table and column."""
        for (table, column), values in used.items():
            ids = pd.Series(values, dtype=object)
            allowed = ids.isin(known) if column == "visit_concept_id" else pd.Series(False, index=ids.index)  # kgrec's own setting ids
            missing = ids[(ids != "") & (ids != "0") & ~ids.isin(concept.index) & ~allowed]
            if len(missing):
                first = sorted(set(missing), key=lambda s: (len(s), s))
                raise InputError(f"concept id {first[0]} is not in the concept table ({len(first)} such id(s) in this column, "
                                 f"{len(missing)} row(s)): give the vocabulary tables the CDM was built with (OHDSI Athena)",
                                 path=table, column=column)

    def _settings(self, vo: pd.DataFrame, ancestors: pd.DataFrame | None) -> pd.Series:
        """The setting of each visit row (``inpatient``/``emergency``/``outpatient``), else ``other``."""
        of: dict[str, str] = {}
        for name, ids in SETTINGS.items():
            for i in ids:
                of.setdefault(str(i), name)
        if ancestors is not None:  # descendants of the settings' root concepts (e.g. CMS places of service)
            roots = {str(next(iter(ids))): name for name, ids in SETTINGS.items()}
            for a, dsc in zip(ancestors["ancestor_concept_id"], ancestors["descendant_concept_id"]):
                if a in roots:
                    of.setdefault(dsc, roots[a])
        return vo["visit_concept_id"].map(lambda c: of.get(c, "other"))

    def _profile(self, admissions: pd.DataFrame, person: pd.DataFrame, report: dict) -> pd.DataFrame:
        p = person.set_index("person_id")
        out = admissions.copy()
        known = out["patient_id"].isin(p.index)
        report["visits_of_unknown_person"] = int((~known).sum())
        sex = out["patient_id"].map(p["gender_concept_id"]).map(SEX)
        if "gender_source_value" in p:
            sex = sex.where(sex.notna(), norm_sex(out["patient_id"].map(p["gender_source_value"])))
        out["sex"] = sex.astype(object).where(sex.notna(), None).values
        year = pd.to_numeric(p["year_of_birth"], errors="coerce")
        month = pd.to_numeric(p.get("month_of_birth", pd.Series("", index=p.index)), errors="coerce")
        day = pd.to_numeric(p.get("day_of_birth", pd.Series("", index=p.index)), errors="coerce")
        parts = pd.DataFrame({"year": year, "month": month.fillna(7), "day": day.where(month.notna(), 1).fillna(15)})
        born = pd.to_datetime(parts.where(year.notna()), errors="coerce")
        if "birth_datetime" in p:
            exact = parse_cdm_dates(p["birth_datetime"], p, "birth_datetime", errors="missing")
            report["persons_with_unreadable_birth_datetime"] = count_unreadable(p["birth_datetime"], exact)
            born = exact.where(exact.notna(), born)
        report["persons_with_unreadable_year_of_birth"] = count_unreadable(p["year_of_birth"], year)
        years = (pd.to_datetime(out["time"]) - out["patient_id"].map(born)).dt.days / 365.25
        out["age"] = cap_age(years).values
        report["visits_without_age"] = int(out["age"].isna().sum())
        report["visits_without_sex"] = int(out["sex"].isna().sum())
        return out

    def _sites(self, t: CdmTables, v: pd.DataFrame, report: dict) -> None:
        """Visits per care site (names from ``care_site`` where it is there); no patient data."""
        if "care_site_id" not in v or not (v["care_site_id"] != "").any():
            report["care_sites"] = None
            return
        counts = v.loc[v["care_site_id"] != "", "care_site_id"].value_counts()
        names: dict[str, str] = {}
        place: dict[str, str] = {}
        if t.has("care_site"):
            cs = t.read("care_site", ["care_site_id"], ["care_site_name", "location_id"])
            if "care_site_name" in cs:
                names = dict(zip(cs["care_site_id"], cs["care_site_name"]))
            if "location_id" in cs and t.has("location"):  # the sites' city and state (no street, no patient's address)
                loc = t.read("location", ["location_id"], ["city", "state"])
                where = {i: ", ".join(x for x in (loc["city"][k] if "city" in loc else "", loc["state"][k] if "state" in loc else "") if x)
                         for k, i in enumerate(loc["location_id"])}
                place = {c: where.get(lid, "") for c, lid in zip(cs["care_site_id"], cs["location_id"])}
        report["care_sites"] = {"n": int(len(counts)), "visits_without_care_site": int((v["care_site_id"] == "").sum()),
                                "top": {names.get(k) or f"care_site {k}": int(c) for k, c in counts.head(10).items()}}
        if place:
            by_place = Counter()
            for k, c in counts.items():
                by_place[place.get(k) or "unknown"] += int(c)
            report["care_sites"]["visits_by_location"] = dict(by_place.most_common(10))

    def _codes(self, df: pd.DataFrame, prefix: str, kind: str, keep: set, concept: pd.DataFrame, names: dict, report: dict) -> pd.DataFrame:
        """Diagnosis or procedure rows of the kept visits as (visit_id, code, seq): source ICD code, then
        standard concept, ordered by start date then table order."""
        report[f"{prefix}_rows_without_visit"] = int((df["visit_occurrence_id"] == "").sum())
        report[f"{prefix}_rows_of_other_visits"] = int(((df["visit_occurrence_id"] != "") & ~df["visit_occurrence_id"].isin(keep)).sum())
        d = df[df["visit_occurrence_id"].isin(keep)].copy()
        date_col = "condition_start_date" if prefix == "condition" else "procedure_date"
        when = parse_cdm_dates(d[date_col], d, date_col, errors="missing") if date_col in d else pd.Series(pd.NaT, index=d.index)
        report[f"{prefix}_rows_with_unreadable_date"] = count_unreadable(d[date_col], when) if date_col in d else 0
        d = d.assign(_when=when, _pos=range(len(d))).sort_values(["visit_occurrence_id", "_when", "_pos"], na_position="last", kind="stable")
        std_col, src_col, val_col = f"{prefix}_concept_id", f"{prefix}_source_concept_id", f"{prefix}_source_value"
        std = {c: self._code_of(c, concept, kind, names) for c in pd.unique(d[std_col])}
        src = {c: self._code_of(c, concept, kind, names, source=True) for c in pd.unique(d[src_col])} if src_col in d else {}
        from_value: dict[str, str | None] = {}
        rows, vocab = [], Counter()
        no_std = no_src = by_value = ambiguous = 0
        for visit, s, sc, sv in zip(d["visit_occurrence_id"], d[std_col], d[src_col] if src_col in d else [""] * len(d),
                                    d[val_col] if val_col in d else [""] * len(d)):
            code_src = src.get(sc) if sc not in ("", "0") else None
            if code_src is None and sc in ("", "0") and sv:
                if sv not in from_value:
                    from_value[sv] = _icd_from_value(sv, kind)
                code_src = from_value[sv]
                by_value += code_src is not None
                ambiguous += code_src is None and len(versions_by_form(sv.split(":")[-1], kind)) > 1
            code_std = std.get(s)
            no_std += code_std is None
            no_src += code_src is None
            for code in (code_src, code_std):
                if code:
                    rows.append((visit, code))
                    vocab[code.split(":", 1)[0]] += 1
        report[f"{prefix}_rows"] = int(len(d))
        report[f"{prefix}_rows_without_standard_concept"] = no_std
        report[f"{prefix}_rows_without_icd_source_code"] = no_src
        report[f"{prefix}_icd_codes_from_source_value"] = by_value
        report[f"{prefix}_source_values_of_ambiguous_icd_version"] = ambiguous
        report[f"{prefix}_codes_by_system"] = dict(vocab.most_common())
        return pd.DataFrame({"visit_id": [r[0] for r in rows], "code": [r[1] for r in rows], "seq": range(len(rows))})

    @staticmethod
    def _code_of(cid: str, concept: pd.DataFrame, kind: str, names: dict, source: bool = False) -> str | None:
        """The kgrec code of a standard concept (an unnamed vocabulary: ``OMOP:<id>`` / ``OMOPPROC:<id>``),
        or with ``source`` of a source concept, ICD only (the standard concept covers the others)."""
        if cid in ("", "0") or cid not in concept.index:
            return None
        c = concept.loc[cid]
        vocab = c["vocabulary_id"].replace(" ", "").upper()
        if source and vocab not in ("ICD9CM", "ICD10CM", "ICD9PROC", "ICD10PCS"):
            return None
        code = _system_code(vocab, c["concept_code"], kind)
        if not source:
            code = code or (f"OMOP:{cid}" if kind == "diagnosis" else f"OMOPPROC:{cid}")
        if code:
            names.setdefault(code, c["concept_name"])
        return code

    def _map_drugs(self, d: pd.DataFrame, concept: pd.DataFrame, ancestors, related) -> pd.DataFrame:
        """Per drug_exposure row: ``atc3``, ``route``, ``name`` (see the module docstring for the order)."""
        prior = self._prior()
        anc: dict[str, list[tuple[int, str]]] = defaultdict(list)
        if ancestors is not None:
            for a, dsc, lvl in zip(ancestors["ancestor_concept_id"], ancestors["descendant_concept_id"], ancestors["min_levels_of_separation"]):
                if a in concept.index and concept.at[a, "vocabulary_id"] == "ATC" and (code := atc3(concept.at[a, "concept_code"])):
                    anc[dsc].append((int(lvl), code))
        rel_atc: dict[str, list[str]] = defaultdict(list)
        ingredients: dict[str, list[str]] = defaultdict(list)
        if related is not None:
            for c1, c2, rid in zip(related["concept_id_1"], related["concept_id_2"], related["relationship_id"]):
                if c2 not in concept.index:
                    continue
                if concept.at[c2, "vocabulary_id"] == "ATC" and (code := atc3(concept.at[c2, "concept_code"])):
                    rel_atc[c1].append(code)
                elif concept.at[c2, "concept_class_id"] == "Ingredient" and rid in INGREDIENT_RELATIONSHIPS:
                    ingredients[c1].append(concept.at[c2, "concept_name"])
        matcher = None

        def by_name(text: str) -> str | None:
            nonlocal matcher
            if matcher is None:
                from kgrec.cohort.drugnames import matcher_for

                matcher = matcher_for(self.mappings)
            return matcher.match(text)

        def pick(codes: list[str]) -> str:
            return sorted(set(codes), key=lambda c: (-prior.get(c, 0), c))[0]

        def one(cid: str, source_value: str) -> tuple[str | None, str, str]:
            if cid not in ("", "0") and cid in concept.index:
                c = concept.loc[cid]
                name = c["concept_name"]
                if c["vocabulary_id"] == "ATC" and (code := atc3(c["concept_code"])):
                    return code, "atc-concept", name
                if anc.get(cid):
                    best = min(lvl for lvl, _ in anc[cid])
                    return pick([code for lvl, code in anc[cid] if lvl == best]), "atc-ancestor", name
                if rel_atc.get(cid):
                    return pick(rel_atc[cid]), "atc-relationship", name
                if ingredients.get(cid) and (code := by_name(" / ".join(sorted(set(ingredients[cid]))))):
                    return code, "rxnorm-ingredient-name", name
                if c["vocabulary_id"] == "RxNorm" and (code := self._rxcui(c["concept_code"])):
                    return code, "rxnorm-unii-drugbank", name
                if code := by_name(name):
                    return code, "concept-name", name
                return None, "unmapped", name
            if source_value:
                ndc = normalise_ndc(source_value)
                if ndc and source_value.replace("-", "").isdigit() and (code := self._ndc(ndc)):
                    return code, "source-value-ndc", source_value
                if not source_value.replace("-", "").isdigit() and (code := by_name(source_value)):
                    return code, "source-value-name", source_value
                return None, "unmapped", source_value
            return None, "unmapped", ""

        pairs = pd.DataFrame({"c": d["drug_concept_id"].values,
                              "s": (d["drug_source_value"] if "drug_source_value" in d else pd.Series("", index=d.index)).values})
        pairs["s"] = pairs["s"].where(pairs["c"].isin(["", "0"]), "")  # the source value is read only where there is no concept
        uniq = pairs.drop_duplicates()
        res = {(c, s): one(c, s) for c, s in zip(uniq["c"], uniq["s"])}
        out = pd.DataFrame([res[(c, s)] for c, s in zip(pairs["c"], pairs["s"])], columns=["atc3", "route", "name"], index=d.index)
        return out

    def _prior(self) -> Counter:
        try:
            return self.mappings.atc3_prior
        except InputError:
            return Counter()

    def _rxcui(self, cui: str) -> str | None:
        try:
            return self.mappings.rxcui_to_atc3.get(cui)
        except InputError:
            return None

    def _ndc(self, ndc: str) -> str | None:
        try:
            return self.mappings.ndc_to_atc3.get(ndc)
        except InputError:
            return None


def _system_code(vocab: str, code: str, kind: str) -> str | None:
    """A concept's code as a kgrec code id, for the vocabularies kgrec names; None for the others."""
    try:
        if kind == "diagnosis":
            if vocab == "SNOMED":
                return f"SNOMED:{code}"
            if vocab in ("ICD9CM", "ICD10CM"):
                return icd_id(code, 9 if vocab == "ICD9CM" else 10)
            return None
        if vocab == "SNOMED":
            return f"SNOMEDPROC:{code}"
        if vocab in ("ICD9PROC", "ICD10PCS"):
            return icd_id(code, 9 if vocab == "ICD9PROC" else 10, "procedure")
        if vocab in ("CPT4", "HCPCS"):
            return f"{vocab}:{code}"
    except ValueError:
        return None
    return None


def _icd_from_value(value: str, kind: str) -> str | None:
    """``condition_source_value`` read as an ICD code where its form decides the version (``428.0`` ->
    ICD-9, ``I50.9`` -> ICD-10; a ``ICD10CM:`` prefix is honoured); ambiguous or other: None."""
    v = value.strip()
    m = re.match(r"^(ICD9CM|ICD10CM|ICD9PROC|ICD10PCS|ICD9|ICD10)[:|]\s*(.+)$", v, re.IGNORECASE)
    if m:
        version = 9 if "9" in m.group(1) else 10
        return icd_id(m.group(2), version, kind)
    fits = versions_by_form(v, kind)
    return icd_id(v, fits[0], kind) if len(fits) == 1 else None
