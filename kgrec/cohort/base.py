"""The cohort: patients -> visits -> diagnoses, procedures, drugs (ATC3), and the loader interface.

A :class:`Cohort` is one table of visits (one row per visit, code lists in columns) plus the names of
every code and a mapping report. It saves to and loads from ``<workspace>/cohort/`` as Parquet + JSON;
a save replaces the folder atomically, so a failed ``prepare`` never leaves half a cohort behind.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from kgrec import fsatomic
from kgrec.cohort import icd10cm
from kgrec.cohort.codes import Mappings, icd_category
from kgrec.errors import InputError, WorkspaceError

VISIT_COLUMNS = ["patient_id", "visit_id", "visit_order", "time", "diagnoses", "procedures", "drugs"]
# The patient profile at the visit (docs/protocol.md, "Patient profiles"): age in years at the visit
# (float; ages over 89 are recorded as AGE_CAP = 90, "90 or older", as MIMIC and eICU de-identify them),
# sex ("F"/"M"), and the admission fields of each source, named after the source's column. A field a
# source lacks, or a cell the source leaves empty, is missing (NaN / None), never filled in.
PROFILE_COLUMNS = [
    "age",
    "sex",
    "admission_type",  # MIMIC-III/IV ADMISSION_TYPE
    "admission_location",  # MIMIC-III/IV ADMISSION_LOCATION
    "insurance",  # MIMIC-III/IV INSURANCE
    "unit_type",  # eICU unittype
    "unit_admit_source",  # eICU unitadmitsource
    "hospital_admit_source",  # eICU hospitaladmitsource
    "encounter_class",  # Synthea ENCOUNTERCLASS
]
AGE_CAP = 90.0
CODE_KINDS = ("diagnosis", "procedure", "drug")
PROTOCOLS = ("all", "safedrug")


@dataclass
class Cohort:
    """Visits of one EHR source in kgrec's protocol (see docs/protocol.md).

    Attributes:
        visits: one row per visit: ``patient_id``, ``visit_id`` (str), ``visit_order`` (0-based within the
            patient, by time), ``time``, the code lists ``diagnoses``, ``procedures``, ``drugs`` (ATC3),
            and the profile at the visit (:data:`PROFILE_COLUMNS`; missing where the source has none).
        codes: ``code``, ``kind`` (diagnosis/procedure/drug), ``name`` for every code used.
        source: loader name (``mimic3``...).
        report: mapping report (coverage, routes, most frequent unmapped drug names, warnings).
        split: the saved patient split ``{"seed", "train", "val", "test"}`` (patient ids), or None.
        ddi: ATC3 interaction pairs (``atc3_a``, ``atc3_b``, ``source``, ``licence``), or None.
    """

    visits: pd.DataFrame
    codes: pd.DataFrame
    source: str
    report: dict = field(default_factory=dict)
    split: dict | None = None
    ddi: pd.DataFrame | None = None

    # ---- derived views ----
    def eval_mask(self) -> np.ndarray:
        """Visits that are prediction targets: ≥1 drug and ≥1 diagnosis or procedure."""
        v = self.visits
        has_drug = v["drugs"].map(len) > 0
        has_input = (v["diagnoses"].map(len) + v["procedures"].map(len)) > 0
        return (has_drug & has_input).to_numpy()

    def sites(self, rows) -> list[str]:
        """The site of each visit row: the ``site`` column of a pooled cohort (kgrec.transfer), else the source."""
        if "site" not in self.visits.columns:
            return [self.source] * len(rows)
        col = self.visits["site"].to_numpy()
        return [str(x) for x in col[np.asarray(rows, dtype=np.int64)]] if len(rows) else []

    def vocab(self, kind: str) -> list[str]:
        """Sorted codes of one kind that occur in the visits."""
        col = {"diagnosis": "diagnoses", "procedure": "procedures", "drug": "drugs"}[kind]
        return sorted({c for codes in self.visits[col] for c in codes})

    def names(self) -> dict[str, str]:
        return dict(zip(self.codes["code"], self.codes["name"]))

    def stats(self) -> dict:
        v = self.visits
        per_patient = v.groupby("patient_id").size()
        mask = self.eval_mask()
        ev = v[mask]
        return {
            "source": self.source,
            "n_patients": int(per_patient.size),
            "n_visits": int(len(v)),
            "n_eval_visits": int(mask.sum()),
            "n_single_visit_patients": int((per_patient == 1).sum()),
            "n_diagnosis_codes": len(self.vocab("diagnosis")),
            "n_procedure_codes": len(self.vocab("procedure")),
            "n_drugs": len(self.vocab("drug")),
            "drug_mapping_coverage": self.report.get("drug_mapping_coverage"),
            "avg_drugs_per_eval_visit": round(float(ev["drugs"].map(len).mean()), 3) if len(ev) else 0.0,
            "avg_diagnoses_per_eval_visit": round(float(ev["diagnoses"].map(len).mean()), 3) if len(ev) else 0.0,
            "avg_visits_per_patient": round(float(per_patient.mean()), 3) if len(per_patient) else 0.0,
            "median_visits_per_patient": float(per_patient.median()) if len(per_patient) else 0.0,
            "max_visits_per_patient": int(per_patient.max()) if len(per_patient) else 0,
            "split": {k: len(self.split[k]) for k in ("train", "val", "test")} if self.split else None,
            "n_ddi_pairs": int(len(self.ddi)) if self.ddi is not None else 0,
            "profile_coverage": self.profile_coverage(),
        }

    def profile_fields(self) -> list[str]:
        """The profile columns this cohort has a value for in at least one visit."""
        return [c for c in PROFILE_COLUMNS if c in self.visits and self.visits[c].notna().any()]

    def profile_coverage(self) -> dict[str, float]:
        """Share of visits with each profile field (0.0 for a field the source does not have)."""
        n = len(self.visits)
        return {c: round(float(self.visits[c].notna().mean()), 4) if n and c in self.visits else 0.0 for c in PROFILE_COLUMNS}

    # ---- persistence ----
    def save(self, folder: Path) -> Path:
        """Write ``visits.parquet``, ``codes.parquet``, ``meta.json`` into ``folder``, replacing it atomically."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = fsatomic.temp_dir(folder)  # .cohort.tmp-<pid>-<rand>: swept once this process is gone
        try:
            cols = VISIT_COLUMNS + [c for c in PROFILE_COLUMNS if c in self.visits]
            self.visits[cols].to_parquet(tmp / "visits.parquet", index=False)
            self.codes.to_parquet(tmp / "codes.parquet", index=False)
            if self.split is not None:
                (tmp / "split.json").write_text(json.dumps(self.split))
            if self.ddi is not None:
                self.ddi.to_parquet(tmp / "ddi.parquet", index=False)
            (tmp / "meta.json").write_text(
                json.dumps({"source": self.source, "report": self.report, "stats": self.stats()}, indent=2)
            )
            _replace_dir(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: Path) -> Cohort:
        folder = Path(folder)
        if not (folder / "visits.parquet").exists():
            raise WorkspaceError(f"no cohort in {folder}: run `kgrec prepare` first")
        visits = pd.read_parquet(folder / "visits.parquet")
        for col in ("diagnoses", "procedures", "drugs"):
            visits[col] = visits[col].map(lambda x: [str(c) for c in x] if x is not None else [])
        meta = json.loads((folder / "meta.json").read_text())
        report = meta.get("report", {})
        absent = [c for c in PROFILE_COLUMNS if c not in visits]
        visits = with_profile(visits)
        if absent:
            # a workspace prepared before patient profiles existed: the profile is missing, and said so
            report = {**report, "profile_missing": f"the saved cohort has no {', '.join(absent)} column(s) (prepared before "
                      "patient profiles): profile fields are missing; run `kgrec prepare` again to read them"}
        split = json.loads((folder / "split.json").read_text()) if (folder / "split.json").exists() else None
        ddi = pd.read_parquet(folder / "ddi.parquet") if (folder / "ddi.parquet").exists() else None
        return cls(visits, pd.read_parquet(folder / "codes.parquet"), meta["source"], report, split, ddi)


def _replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` into ``target`` atomically (no moment without a cohort); see :mod:`kgrec.fsatomic`."""
    fsatomic.replace_dir(new, target)


def with_profile(visits: pd.DataFrame) -> pd.DataFrame:
    """``visits`` with every profile column present: absent ones are added as missing (NaN age, None text)."""
    out = visits.copy()
    for c in PROFILE_COLUMNS:
        if c not in out:
            out[c] = np.nan if c == "age" else None
    out["age"] = pd.to_numeric(out["age"], errors="coerce").astype(float)
    for c in PROFILE_COLUMNS[1:]:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    rest = [c for c in out.columns if c not in PROFILE_COLUMNS]
    return out[rest + PROFILE_COLUMNS]


def cap_age(years: pd.Series) -> pd.Series:
    """Ages in years at the visit, rounded to 0.1: 90 or more (older than 89) -> :data:`AGE_CAP`, as the
    de-identified sources do (MIMIC-III shifts those birth dates by ~300 years, MIMIC-IV writes 91, eICU
    ``> 89``); negative (a birth date after the visit) -> missing."""
    a = pd.to_numeric(years, errors="coerce").astype(float)
    a = a.where(a >= 0)
    return a.where(a.isna() | (a < AGE_CAP), AGE_CAP).round(1)


def norm_sex(values: pd.Series) -> pd.Series:
    """``F``/``Female`` -> ``F``, ``M``/``Male`` -> ``M`` (any case); anything else (empty, ``Unknown``,
    ``Other``) -> None: kgrec does not guess a sex."""
    m = values.fillna("").astype(str).str.strip().str.upper().map({"F": "F", "FEMALE": "F", "M": "M", "MALE": "M"})
    return m.astype(object).where(m.notna(), None)


def norm_text(values: pd.Series) -> pd.Series:
    """A categorical profile field as the source writes it, whitespace trimmed; empty -> None."""
    s = values.fillna("").astype(str).str.strip()
    return s.astype(object).where(s != "", None)


def assemble(
    admissions: pd.DataFrame,
    diagnoses: pd.DataFrame,
    procedures: pd.DataFrame,
    drugs: pd.DataFrame,
) -> pd.DataFrame:
    """Join long tables into the visit table.

    Args:
        admissions: ``patient_id``, ``visit_id``, ``time`` (datetime; NaT allowed), optionally ``order_key``
            (a tie-breaker used after time, e.g. eICU's unitvisitnumber) and any :data:`PROFILE_COLUMNS`
            (the others are added as missing).
        diagnoses, procedures: ``visit_id``, ``code``, optionally ``seq`` (order within the visit).
        drugs: ``visit_id``, ``code`` (ATC3).

    Codes are de-duplicated per visit keeping first-seen order (by ``seq`` where given); drugs are sorted.
    Visits are ordered per patient by time, then ``order_key``, then visit id.
    """
    adm = admissions.copy()
    adm["visit_id"] = adm["visit_id"].astype(str)
    adm["patient_id"] = adm["patient_id"].astype(str)
    if adm["visit_id"].duplicated().any():
        dup = adm.loc[adm["visit_id"].duplicated(), "visit_id"].iloc[0]
        raise InputError(f"visit id {dup!r} appears twice in the admissions table", path=adm.attrs.get("path"))
    if "order_key" not in adm:
        adm["order_key"] = 0
    adm = adm.sort_values(["patient_id", "time", "order_key", "visit_id"], na_position="last", kind="stable")
    adm["visit_order"] = adm.groupby("patient_id").cumcount()

    def lists(df: pd.DataFrame, sort: bool) -> pd.Series:
        if df.empty:
            return pd.Series(dtype=object)
        d = df.copy()
        d["visit_id"] = d["visit_id"].astype(str)
        if "seq" in d and not sort:
            d = d.assign(_s=pd.to_numeric(d["seq"], errors="coerce")).sort_values(["visit_id", "_s"], kind="stable")
        d = d.drop_duplicates(["visit_id", "code"])
        g = d.groupby("visit_id", sort=False)["code"]
        return g.agg(lambda s: sorted(s) if sort else list(s))

    out = adm[["patient_id", "visit_id", "visit_order", "time"]].reset_index(drop=True)
    for col, df, sort in (("diagnoses", diagnoses, False), ("procedures", procedures, False), ("drugs", drugs, True)):
        m = lists(df, sort)
        out[col] = out["visit_id"].map(m).map(lambda x: list(x) if isinstance(x, list) else [])
    for col in PROFILE_COLUMNS:
        if col in adm:
            out[col] = adm[col].to_numpy()
    return with_profile(out)


def apply_protocol(visits: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """``all``: every visit (first visits and single-visit patients included).

    ``safedrug``: the GAMENet/SafeDrug protocol: only visits with ≥1 diagnosis, procedure and drug, then
    only patients with ≥2 such visits; visit_order is recomputed.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    if protocol == "all":
        return visits
    v = visits[(visits["diagnoses"].map(len) > 0) & (visits["procedures"].map(len) > 0) & (visits["drugs"].map(len) > 0)]
    keep = v.groupby("patient_id")["visit_id"].transform("size") >= 2
    v = v[keep].copy()
    v["visit_order"] = v.groupby("patient_id").cumcount()
    return v.reset_index(drop=True)


def code_table(visits: pd.DataFrame, names: dict[str, str], mappings: Mappings | None) -> pd.DataFrame:
    """Names for every code the visits use: source dictionaries first, ATC names for drugs."""
    rows = []
    for kind, col in (("diagnosis", "diagnoses"), ("procedure", "procedures"), ("drug", "drugs")):
        for code in sorted({c for cs in visits[col] for c in cs}):
            name = names.get(code)
            if name is None and code.startswith(icd10cm.PREFIX):  # a source without ICD-10-CM titles
                name = icd10cm.name(code)
            if name is None and kind == "drug" and mappings is not None:
                name = mappings.atc3_name(code)
            rows.append((code, kind, name or code))
    return pd.DataFrame(rows, columns=["code", "kind", "name"])


def top_unmapped(names: pd.Series, n: int = 15) -> list[list]:
    """The most frequent drug names that found no ATC3 class (for the mapping report; no patient data)."""
    return [[k, int(c)] for k, c in Counter(names.fillna("").str.lower().str.strip()).most_common(n)]


class CohortLoader(ABC):
    """Reads one EHR source into a :class:`Cohort`. Subclasses fill :meth:`read`.

    Args:
        source_dir: the folder of the source's tables.
        mappings: the open code maps (GSN/NDC/RxNorm/names -> ATC3).
    """

    name: ClassVar[str]
    default_folder: ClassVar[str]  # folder name under KGREC_DATA
    description: ClassVar[str] = ""

    def __init__(self, source_dir: Path, mappings: Mappings):
        self.source_dir = Path(source_dir)
        self.mappings = mappings
        if not self.source_dir.is_dir():
            raise InputError("source folder not found (pass --source-dir or --data-dir)", path=self.source_dir)

    @abstractmethod
    def read(self) -> tuple[pd.DataFrame, dict[str, str], dict]:
        """Return ``(visits, code_names, report)``; visits as from :func:`assemble`."""

    def load(self, protocol: str = "all") -> Cohort:
        visits, names, report = self.read()
        visits = apply_protocol(visits, protocol)
        report = {**report, "protocol": protocol, "diagnosis_codes_reaching_disease": disease_reach(visits, self.mappings)}
        return Cohort(visits, code_table(visits, names, self.mappings), self.name, report)


def disease_reach(visits: pd.DataFrame, mappings: Mappings | None) -> dict | None:
    """How many of the cohort's diagnosis codes reach a Disease node of the graph through a Disease
    Ontology xref (the graph's MAPS_TO), directly or through their ICD category (CODE_PARENT): distinct
    codes and code occurrences. None, with the reason, where the Disease Ontology files are absent."""
    if mappings is None:
        return None
    try:
        xref = mappings.disease_codes
    except InputError as exc:
        return {"unavailable": str(exc)}
    counts = Counter(c for cs in visits["diagnoses"] for c in cs)

    direct = {c for c in counts if c in xref}
    via = {c for c in counts if c in xref or icd_category(c) in xref}
    total = sum(counts.values())
    return {
        "codes": len(counts),
        "codes_direct": len(direct),
        "codes_direct_or_category": len(via),
        "share_direct_or_category": round(len(via) / len(counts), 4) if counts else 0.0,
        "occurrences_share_direct_or_category": round(sum(counts[c] for c in via) / total, 4) if total else 0.0,
    }
