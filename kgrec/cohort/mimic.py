"""MIMIC-III and MIMIC-IV hospital admissions -> cohort.

A visit is an admission (``hadm_id``); its diagnoses and procedures are the ICD codes billed for it, its
drugs the ATC3 classes of its prescriptions. The two versions differ only in table layout, held as data
in :class:`Layout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kgrec.cohort.base import CohortLoader, assemble, top_unmapped
from kgrec.cohort.codes import icd_id
from kgrec.errors import InputError
from kgrec.tables import find_table, parse_times, read_source


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
        df = read_source(self._folder(), table, cols, ["seq_num"])
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
        df = read_source(self._folder(), table, cols, ["short_title"])
        versions = df[lay.version_col] if lay.version_col else pd.Series("9", index=df.index)
        ok = versions.isin(["9", "10"]) & (df[lay.code_col] != "")
        return {icd_id(c, v, kind): t for c, v, t in zip(df[lay.code_col][ok], versions[ok], df[lay.title_col][ok])}

    def read(self):
        lay, report = self.layout, {}
        folder = self._folder()
        adm = read_source(folder, lay.admissions, ["subject_id", "hadm_id", "admittime"])
        times = parse_times(adm["admittime"], adm.attrs["path"], "admittime", adm["_line"])
        admissions = pd.DataFrame({"patient_id": adm["subject_id"], "visit_id": adm["hadm_id"], "time": times})
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
