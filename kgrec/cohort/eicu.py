"""eICU Collaborative Research Database (v2.0, or its open demo) -> cohort.

A visit is an ICU unit stay (``patientunitstayid``), a patient is ``uniquepid``. Protocol decisions
(see docs/cohort-eicu-synthea.md):

* **Order.** eICU has no absolute dates: every offset is minutes from the unit admission, and the only
  absolute time is ``hospitaldischargeyear``. Unit stays are ordered per patient by discharge year, then
  hospital stay (``patienthealthsystemstayid``, numerically; eICU gives no time between hospital stays
  of one year, so this tie-break is deterministic but not proven chronological, and the report counts
  how many patient-years it had to decide), then ``unitvisitnumber`` within the hospital stay (which
  agrees with ``-hospitaladmitoffset``, the unit start in minutes after hospital admission). ``time`` is
  1 January of the discharge year.
* **Diagnoses** come from ``diagnosis.icd9code``, a cell holding ICD-9 and ICD-10 codes together
  (``"401.9, I10"``). Codes are told apart by shape: ICD-9 is 3 digits (``401.9``), ``V`` + 2 digits
  (``V45.81``) or ``E`` + 3 digits (``E980.2``); ICD-10 is a letter, a digit and a digit or letter
  (``I10``, ``E87.0``, ``T39.1X``). A cell keeps its ICD-9 codes when it has any, else its ICD-10 codes.
  Rows with no usable code fall back to the diagnosis path, ``EICUDX:<diagnosisstring>``. Names come from
  ``diagnosisstring`` (the most frequent path per code). Order in a visit: priority (Primary, Major,
  Other), then ``diagnosisoffset``.
* **Procedures** are the ``treatment`` table's ``treatmentstring`` paths, as ``EICUTX:<string>`` (eICU
  has no procedure coding); order by ``treatmentoffset``.
* **Drugs** are the ``medication`` orders not cancelled (``drugordercancelled`` not Yes). A row without
  ``drugname`` takes the most frequent name of its ``drughiclseqno`` (HICL) among the medication rows,
  then the admission-drug rows when that table is there. Names go to ATC3 through
  :class:`~kgrec.cohort.drugnames.DrugNameMatcher`; a row whose name does not map (often a brand:
  ``LASIX``, ``ZOFRAN``) takes the most frequent ATC3 class of the mapped rows of its HICL, since one HICL
  is one ingredient set. ``infusiondrug`` and ``admissiondrug`` rows are not drugs of the visit
  (admission drugs are home medications; infusions repeat medication orders).
"""

from __future__ import annotations

import re

import pandas as pd

from kgrec.cohort.base import AGE_CAP, PROFILE_COLUMNS, CohortLoader, assemble, cap_age, norm_sex, norm_text, top_unmapped
from kgrec.cohort.codes import icd_id
from kgrec.cohort.drugnames import matcher_for
from kgrec.errors import InputError
from kgrec.tables import find_table, read_source

ICD9 = re.compile(r"^(\d{3}(\.\d{1,2})?|V\d{2}(\.\d{1,2})?|E\d{3}(\.\d)?)$")
ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")
PRIORITY = {"primary": 0, "major": 1, "other": 2}
YES = {"yes", "true", "1", "y", "t"}


def split_icd(cell: str) -> tuple[list[str], list[str]]:
    """``"038.9, 584.9, R65.20, N17"`` -> (``["038.9", "584.9"]``, ``["R65.20", "N17"]``); other pieces dropped."""
    nine, ten = [], []
    for piece in str(cell).split(","):
        p = piece.strip().upper()
        if not p:
            continue
        if ICD9.match(p):
            nine.append(p)
        elif ICD10.match(p):
            ten.append(p)
    return nine, ten


def diagnosis_codes(cell: str) -> list[str]:
    """Code ids of one ``icd9code`` cell: its ICD-9 codes if any, else its ICD-10 codes (may be empty)."""
    nine, ten = split_icd(cell)
    if nine:
        return list(dict.fromkeys(icd_id(c, 9) for c in nine))
    return list(dict.fromkeys(icd_id(c, 10) for c in ten))


def _int(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _bad_int(df: pd.DataFrame, col: str) -> None:
    bad = (df[col] != "") & _int(df[col]).isna()
    if bad.any():
        i = bad[bad].index[0]
        raise InputError(
            f"expected an integer, got {df.loc[i, col]!r}", path=df.attrs.get("path"), column=col, line=int(df.loc[i, "_line"])
        )


# patient.csv column -> profile field
EICU_FIELDS = {"unittype": "unit_type", "unitadmitsource": "unit_admit_source", "hospitaladmitsource": "hospital_admit_source"}


def parse_age(values: pd.Series) -> pd.Series:
    """eICU ``age`` is text: whole years, ``> 89`` for older patients (-> 90), empty when unknown (-> NaN)."""
    s = values.fillna("").astype(str).str.strip()
    over = s.str.replace(" ", "", regex=False) == ">89"
    return cap_age(pd.to_numeric(s.where(~over, str(AGE_CAP)), errors="coerce"))


def _profile(p: pd.DataFrame, report: dict) -> dict[str, pd.Series]:
    """Age at the unit stay, sex and admission fields of ``patient`` rows (absent columns: missing)."""
    out: dict[str, pd.Series] = {}
    if "age" in p:
        age = parse_age(p["age"])
        bad = (p["age"].str.strip() != "") & age.isna()
        if bad.any():
            i = bad[bad].index[0]
            raise InputError(f"age must be whole years or '> 89', got {p.loc[i, 'age']!r}", path=p.attrs.get("path"), column="age", line=int(p.loc[i, "_line"]))
        out["age"] = age
        report["ages_capped_at_90"] = int((age == AGE_CAP).sum())
    if "gender" in p:
        out["sex"] = norm_sex(p["gender"])
    for col, field in EICU_FIELDS.items():
        if col in p:
            out[field] = norm_text(p[col])
    missing = [c for c in ("age", "gender", *EICU_FIELDS) if c not in p]
    if missing:
        report["profile_missing"] = f"patient table has no {', '.join(missing)} column: those profile fields are missing"
    return out


def _most_frequent(keys: pd.Series, values: pd.Series) -> dict:
    """key -> its most frequent value (ties: alphabetically first), over rows where both are non-empty."""
    df = pd.DataFrame({"k": keys.values, "v": values.values})
    df = df[(df["k"] != "") & (df["v"] != "")]
    if df.empty:
        return {}
    counts = df.groupby(["k", "v"]).size().reset_index(name="n")
    counts = counts.sort_values(["k", "n", "v"], ascending=[True, False, True], kind="stable")
    return dict(zip(counts.drop_duplicates("k")["k"], counts.drop_duplicates("k")["v"]))


class EicuLoader(CohortLoader):
    """eICU-CRD (full v2.0 or the open demo): unit stays are visits; see the module docstring."""

    name = "eicu"
    default_folder = "eicu-demo"
    description = "eICU-CRD (or its demo): ICU unit stays are visits, diagnosis ICD-9 kept over ICD-10, drug names -> ATC3"

    # ---- visits ----
    def _admissions(self, report: dict) -> pd.DataFrame:
        p = read_source(
            self.source_dir,
            "patient",
            ["patientunitstayid", "patienthealthsystemstayid", "uniquepid", "hospitaldischargeyear", "unitvisitnumber"],
            ["hospitaladmitoffset", "age", "gender", *EICU_FIELDS],
        )
        for col in ("patientunitstayid", "patienthealthsystemstayid", "hospitaldischargeyear", "unitvisitnumber"):
            _bad_int(p, col)
        empty = p["uniquepid"] == ""
        if empty.any():
            i = empty[empty].index[0]
            raise InputError("empty uniquepid", path=p.attrs["path"], column="uniquepid", line=int(p.loc[i, "_line"]))
        year = _int(p["hospitaldischargeyear"])
        d = pd.DataFrame(
            {
                "patient_id": p["uniquepid"],
                "visit_id": p["patientunitstayid"],
                "year": year,
                "hs": _int(p["patienthealthsystemstayid"]),
                "uvn": _int(p["unitvisitnumber"]),
                "uid": _int(p["patientunitstayid"]),
                **_profile(p, report),
            }
        )
        d = d.sort_values(["patient_id", "year", "hs", "uvn", "uid"], na_position="last", kind="stable")
        d["order_key"] = range(len(d))
        d["time"] = pd.to_datetime(year.astype("Int64").astype(str) + "-01-01", errors="coerce").reindex(d.index)
        hs = d.drop_duplicates(["patient_id", "hs"])
        per_year = hs.groupby(["patient_id", "year"]).size()
        report["patient_years_with_several_hospital_stays"] = int((per_year > 1).sum())
        report["hospital_stays"] = int(len(hs))
        out = d[["patient_id", "visit_id", "time", "order_key", *[c for c in PROFILE_COLUMNS if c in d]]].reset_index(drop=True)
        out.attrs["path"] = p.attrs["path"]
        return out

    # ---- diagnoses ----
    def _diagnoses(self, report: dict) -> tuple[pd.DataFrame, dict[str, str]]:
        dx = read_source(
            self.source_dir,
            "diagnosis",
            ["patientunitstayid", "diagnosisstring", "icd9code"],
            ["diagnosisoffset", "diagnosispriority"],
        )
        cells = pd.unique(dx["icd9code"])
        codes = dx["icd9code"].map({c: diagnosis_codes(c) for c in cells})
        nine = dx["icd9code"].map({c: bool(split_icd(c)[0]) for c in cells}).astype(bool)
        has_cell = dx["icd9code"] != ""
        fallback = codes.map(len) == 0
        report["diagnosis_rows"] = int(len(dx))
        report["diagnosis_rows_icd9"] = int(nine.sum())
        report["diagnosis_rows_icd10_only"] = int((~nine & ~fallback).sum())
        report["diagnosis_rows_without_code"] = int((~has_cell).sum())
        report["diagnosis_rows_unrecognised_code"] = int((has_cell & fallback).sum())
        codes = codes.where(~fallback, dx["diagnosisstring"].map(lambda s: [f"EICUDX:{s}"] if s else []))
        prio = dx.get("diagnosispriority", pd.Series("", index=dx.index)).str.lower().map(PRIORITY).fillna(3)
        offset = _int(dx["diagnosisoffset"]) if "diagnosisoffset" in dx else pd.Series(0, index=dx.index)
        long = pd.DataFrame(
            {"visit_id": dx["patientunitstayid"], "codes": codes, "prio": prio, "off": offset, "line": dx["_line"], "path": dx["diagnosisstring"]}
        )
        long = long.sort_values(["visit_id", "prio", "off", "line"], kind="stable").explode("codes").dropna(subset=["codes"])
        long["seq"] = range(len(long))
        names = _most_frequent(long["codes"], long["path"])
        out = long.rename(columns={"codes": "code"})[["visit_id", "code", "seq"]].reset_index(drop=True)
        return out, names

    # ---- procedures ----
    def _treatments(self, report: dict) -> tuple[pd.DataFrame, dict[str, str]]:
        tx = read_source(self.source_dir, "treatment", ["patientunitstayid", "treatmentstring"], ["treatmentoffset"], report=report)
        tx = tx[tx["treatmentstring"] != ""]
        offset = _int(tx["treatmentoffset"]) if "treatmentoffset" in tx else pd.Series(0, index=tx.index)
        tx = tx.assign(_off=offset).sort_values(["patientunitstayid", "_off", "_line"], kind="stable")
        codes = "EICUTX:" + tx["treatmentstring"]
        report["treatment_rows"] = int(len(tx))
        out = pd.DataFrame({"visit_id": tx["patientunitstayid"].values, "code": codes.values, "seq": range(len(tx))})
        return out, dict(zip(codes, tx["treatmentstring"]))

    # ---- drugs ----
    def _drugs(self, report: dict) -> pd.DataFrame:
        med = read_source(
            self.source_dir,
            "medication",
            ["patientunitstayid", "drugordercancelled", "drugname", "drughiclseqno"],
        )
        matcher = matcher_for(self.mappings)
        hicl_name = _most_frequent(med["drughiclseqno"], med["drugname"])
        name_source = "medication"
        try:
            adm = read_source(self.source_dir, "admissiondrug", ["drugname", "drughiclseqno"], report=report)
        except InputError as exc:
            if "not found" not in str(exc):
                raise
            adm = None
        if adm is not None:
            for k, v in _most_frequent(adm["drughiclseqno"], adm["drugname"]).items():
                hicl_name.setdefault(k, v)
            name_source = "medication, then admissiondrug"

        cancelled = med["drugordercancelled"].str.lower().isin(YES)
        rx = med[~cancelled].copy()
        own = rx["drugname"] != ""
        rx["name"] = rx["drugname"].where(own, rx["drughiclseqno"].map(hicl_name).fillna(""))
        rx["atc3"] = matcher.match_series(rx["name"])
        route = pd.Series("unmapped", index=rx.index)
        route[rx["atc3"].notna() & own] = "name"
        route[rx["atc3"].notna() & ~own] = "hicl-name"

        # HICL -> class, from every named medication (and admission-drug) row that maps
        named = pd.concat(
            [med[["drughiclseqno", "drugname"]]] + ([adm[["drughiclseqno", "drugname"]]] if adm is not None else []),
            ignore_index=True,
        )
        named = named[(named["drugname"] != "") & (named["drughiclseqno"] != "")]
        hicl_atc = _most_frequent(named["drughiclseqno"], matcher.match_series(named["drugname"]).fillna(""))
        todo = rx["atc3"].isna() & (rx["drughiclseqno"] != "")
        fill = rx.loc[todo, "drughiclseqno"].map(hicl_atc)
        rx.loc[fill[fill.notna()].index, "atc3"] = fill[fill.notna()]
        route[fill[fill.notna()].index] = "hicl"

        ok = rx["atc3"].notna()
        n = len(rx)
        report.update(
            {
                "medication_rows": int(len(med)),
                "medication_rows_cancelled": int(cancelled.sum()),
                "prescription_rows": n,
                "prescription_rows_mapped": int(ok.sum()),
                "drug_mapping_coverage": round(float(ok.mean()), 4) if n else 0.0,
                "prescription_rows_without_drugname": int((~own).sum()),
                "prescription_rows_named_by_hicl": int((~own & (rx["name"] != "")).sum()),
                "prescription_rows_without_any_name": int((rx["name"] == "").sum()),
                "hicl_name_source": name_source,
                "mapping_routes": {k: int(v) for k, v in route.value_counts().items()},
                "top_unmapped_drugs": top_unmapped(rx.loc[~ok, "name"].replace("", "<no drugname, no hicl name>")),
                "drugbank_atc_crosscheck": {k: v for k, v in matcher.crosscheck_report.items() if k != "dropped_examples"},
            }
        )
        return pd.DataFrame({"visit_id": rx.loc[ok, "patientunitstayid"].values, "code": rx.loc[ok, "atc3"].values})

    def read(self):
        report: dict = {}
        admissions = self._admissions(report)
        diag, dx_names = self._diagnoses(report)
        proc, tx_names = self._treatments(report)
        drugs = self._drugs(report)
        known = set(admissions["visit_id"])
        for label, df in (("diagnosis", diag), ("treatment", proc), ("prescription", drugs)):
            report[f"{label}_rows_unknown_stay"] = int((~df["visit_id"].isin(known)).sum())
        visits = assemble(admissions, diag, proc, drugs)
        has_drug = visits["drugs"].map(len) > 0
        report["visits_with_mapped_drug"] = int(has_drug.sum())
        report["patients_with_mapped_drug"] = int(visits.loc[has_drug, "patient_id"].nunique())
        report["tables"] = {t: str(find_table(self.source_dir, t)) for t in ("patient", "diagnosis", "treatment", "medication")}
        return visits, {**dx_names, **tx_names}, report
