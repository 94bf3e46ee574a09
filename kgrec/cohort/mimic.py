"""MIMIC-III and MIMIC-IV hospital admissions -> cohort.

A visit is an admission (``hadm_id``); its diagnoses and procedures are the ICD codes billed for it, its
drugs the ATC3 classes of its prescriptions. The two versions differ only in table layout, held as data
in :class:`Layout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kgrec.cohort.base import AGE_CAP, CohortLoader, assemble, cap_age, norm_sex, norm_text, top_unmapped
from kgrec.cohort.codes import icd_id
from kgrec.errors import InputError
from kgrec.tables import count_unreadable, find_table, parse_times, read_source


@dataclass(frozen=True)
class Layout:
    """Where a MIMIC version keeps its tables and what its columns are called (lower-case)."""

    admissions: str
    diagnoses: str
    procedures: str
    prescriptions: str
    d_diagnoses: str
    d_procedures: str
    code_col: str
    version_col: str | None  # None: every code is ICD-9
    patients: str
    age_from: str  # "dob" (MIMIC-III: PATIENTS.DOB) or "anchor" (MIMIC-IV: anchor_age at anchor_year)
    title_col: str = "long_title"


MIMIC3 = Layout(
    admissions="ADMISSIONS",
    diagnoses="DIAGNOSES_ICD",
    procedures="PROCEDURES_ICD",
    prescriptions="PRESCRIPTIONS",
    d_diagnoses="D_ICD_DIAGNOSES",
    d_procedures="D_ICD_PROCEDURES",
    code_col="icd9_code",
    version_col=None,
    patients="PATIENTS",
    age_from="dob",
)

MIMIC4 = Layout(
    admissions="admissions",
    diagnoses="diagnoses_icd",
    procedures="procedures_icd",
    prescriptions="prescriptions",
    d_diagnoses="d_icd_diagnoses",
    d_procedures="d_icd_procedures",
    code_col="icd_code",
    version_col="icd_version",
    patients="patients",
    age_from="anchor",
)


class _MimicLoader(CohortLoader):
    layout: Layout
    subfolder: str = ""

    def _folder(self) -> Path:
        sub = self.source_dir / self.subfolder if self.subfolder else self.source_dir
        return sub if sub.is_dir() else self.source_dir

    def _codes(self, table: str, kind: str, report: dict) -> pd.DataFrame:
        lay = self.layout
        cols = ["hadm_id", lay.code_col] + ([lay.version_col] if lay.version_col else [])
        df = read_source(self._folder(), table, cols, ["seq_num"], report=report if kind == "procedure" else None)
        empty = df[lay.code_col] == ""
        report[f"{kind}_rows_without_code"] = int(empty.sum())
        df = df[~empty]
        versions = df[lay.version_col] if lay.version_col else pd.Series("9", index=df.index)
        bad = ~versions.isin(["9", "10"])
        if bad.any():
            i = bad[bad].index[0]
            raise InputError(
                f"icd_version must be 9 or 10, got {versions.loc[i]!r}",
                path=df.attrs["path"],
                column=lay.version_col,
                line=int(df.loc[i, "_line"]),
            )
        codes = [icd_id(c, v, kind) for c, v in zip(df[lay.code_col], versions)]
        return pd.DataFrame({"visit_id": df["hadm_id"].values, "code": codes, "seq": df.get("seq_num", pd.Series("", index=df.index)).values})

    def _names(self, table: str, kind: str) -> dict[str, str]:
        lay = self.layout
        cols = [lay.code_col, lay.title_col] + ([lay.version_col] if lay.version_col else [])
        df = read_source(self._folder(), table, cols, ["short_title"], report={})  # names: optional
        versions = df[lay.version_col] if lay.version_col else pd.Series("9", index=df.index)
        ok = versions.isin(["9", "10"]) & (df[lay.code_col] != "")
        return {icd_id(c, v, kind): t for c, v, t in zip(df[lay.code_col][ok], versions[ok], df[lay.title_col][ok])}

    def _profile(self, admissions: pd.DataFrame, report: dict) -> pd.DataFrame:
        """Age at admission and sex from the patients table (absent table: both missing, and said so)."""
        lay = self.layout
        try:
            find_table(self._folder(), lay.patients)
        except InputError:
            report["profile_missing"] = f"no {lay.patients} table: age and sex are missing"
            return admissions
        cols = ["subject_id", "gender"] + (["dob"] if lay.age_from == "dob" else ["anchor_age", "anchor_year"])
        pat = read_source(self._folder(), lay.patients, cols, report=report)
        if pat["subject_id"].duplicated().any():
            i = pat.index[pat["subject_id"].duplicated()][0]
            raise InputError(f"subject_id {pat.loc[i, 'subject_id']!r} appears twice", path=pat.attrs["path"], column="subject_id", line=int(pat.loc[i, "_line"]))
        path = pat.attrs["path"]
        pat = pat.set_index("subject_id")
        pat.attrs["path"] = path
        out = admissions.copy()
        out["sex"] = norm_sex(out["patient_id"].map(pat["gender"])).values
        if lay.age_from == "dob":
            years = _age_from_dob(pat, out)
        else:
            raw_age = out["patient_id"].map(pat["anchor_age"])
            anchor_age = pd.to_numeric(raw_age, errors="coerce")
            anchor_year = pd.to_numeric(out["patient_id"].map(pat["anchor_year"]), errors="coerce")
            years = anchor_age + (out["time"].dt.year - anchor_year)
            # anchor_age 91 = "over 89" at anchor_year; an empty or unreadable anchor_age stays missing, never 90
            years = years.where(anchor_age.isna() | (anchor_age < AGE_CAP), AGE_CAP)
            report["visits_with_unreadable_anchor_age"] = count_unreadable(raw_age, anchor_age)
        out["age"] = cap_age(years).values
        report["patients_without_profile_row"] = int((~out["patient_id"].isin(pat.index)).sum())
        report["ages_capped_at_90"] = int((out["age"] == AGE_CAP).sum())
        report["visits_without_age"] = int(out["age"].isna().sum())
        return out

    def read(self):
        lay, report = self.layout, {}
        folder = self._folder()
        adm = read_source(folder, lay.admissions, ["subject_id", "hadm_id", "admittime"], list(ADMISSION_FIELDS))
        # an unreadable admission time is missing and counted, never a guessed date (the visit is then
        # ordered after the patient's dated visits: docs/protocol.md)
        times = parse_times(adm["admittime"], adm.attrs["path"], "admittime", adm["_line"], errors="missing")
        report["visits_with_unreadable_admittime"] = count_unreadable(adm["admittime"], times)
        report["visits_without_admittime"] = int(times.isna().sum())
        admissions = pd.DataFrame({"patient_id": adm["subject_id"], "visit_id": adm["hadm_id"], "time": times})
        for col, field in ADMISSION_FIELDS.items():
            if col in adm:
                admissions[field] = norm_text(adm[col]).values
        admissions = self._profile(admissions, report)
        admissions.attrs["path"] = adm.attrs["path"]
        diag = self._codes(lay.diagnoses, "diagnosis", report)
        proc = self._codes(lay.procedures, "procedure", report)

        rx = read_source(folder, lay.prescriptions, ["hadm_id", "drug"], ["gsn", "ndc", "drug_name_generic"])
        for col in ("gsn", "ndc"):
            if col not in rx:
                rx[col] = ""
        mapped = self.mappings.map_prescriptions(rx["gsn"], rx["ndc"])
        n = len(rx)
        ok = mapped["atc3"].notna()
        known = rx["hadm_id"].isin(set(admissions["visit_id"]))
        report.update(
            {
                "prescription_rows": n,
                "prescription_rows_mapped": int(ok.sum()),
                "drug_mapping_coverage": round(float(ok.mean()), 4) if n else 0.0,
                "mapping_routes": {k: int(v) for k, v in mapped["route"].value_counts().items()},
                "top_unmapped_drugs": top_unmapped(rx.loc[~ok, "drug"]),
                "prescription_rows_unknown_admission": int((~known).sum()),
                "diagnosis_rows_unknown_admission": int((~diag["visit_id"].isin(set(admissions["visit_id"]))).sum()),
            }
        )
        drugs = pd.DataFrame({"visit_id": rx.loc[ok, "hadm_id"].values, "code": mapped.loc[ok, "atc3"].values})
        visits = assemble(admissions, diag, proc, drugs)
        names = {**self._names(lay.d_diagnoses, "diagnosis"), **self._names(lay.d_procedures, "procedure")}
        report["tables"] = {t: str(find_table(folder, t)) for t in (lay.admissions, lay.prescriptions)}
        return visits, names, report


# admissions column (lower-case) -> profile field
ADMISSION_FIELDS = {"admission_type": "admission_type", "admission_location": "admission_location", "insurance": "insurance"}
_TWO_DIGIT_YEAR = r"^\s*\d{1,2}/\d{1,2}/\d{2}(\s|$)"


def _age_from_dob(pat: pd.DataFrame, admissions: pd.DataFrame) -> pd.Series:
    """MIMIC-III age at admission from ``DOB``: years between birth and ``ADMITTIME``.

    Patients older than 89 have a birth date ~300 years before their admissions (a ``18xx`` DOB), which
    :func:`cap_age` turns into 90. A DOB re-saved with a two-digit year (``3/5/94 0:00``, as in the
    shared demo copy) lost its century: it is read as the one century that puts the age in [0, 100).
    Pre-1900 DOBs keep four digits in such copies, so the >89 patients are still told apart.
    """
    raw = admissions["patient_id"].map(pat["dob"]).fillna("")
    # an unreadable DOB is a missing age (counted in the report as visits without an age), never a guess
    dob = parse_times(raw, pat.attrs["path"], "dob", admissions["patient_id"].map(pat["_line"]), errors="missing")
    adm = admissions["time"]
    years = (adm - dob).dt.days / 365.25
    two_digit = raw.str.match(_TWO_DIGIT_YEAR)
    return years.where(~two_digit, years % 100)


class Mimic3Loader(_MimicLoader):
    """MIMIC-III v1.4 (full or the open demo): ADMISSIONS, DIAGNOSES_ICD, PROCEDURES_ICD, PRESCRIPTIONS, D_ICD_*."""

    name = "mimic3"
    default_folder = "mimic-iii-demo"
    description = "MIMIC-III v1.4 (or its demo): admissions are visits, all codes ICD-9"
    layout = MIMIC3


class Mimic4Loader(_MimicLoader):
    """MIMIC-IV (v2+) ``hosp`` module: ICD-9 and ICD-10 side by side, version kept in the code id."""

    name = "mimic4"
    default_folder = "mimic-iv-demo"
    description = "MIMIC-IV hosp module: admissions are visits, ICD-9 and ICD-10 kept apart"
    layout = MIMIC4
    subfolder = "hosp"
