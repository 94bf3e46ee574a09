"""Synthea synthetic EHR (CSV export) -> cohort.

Tables (Synthea CSV data dictionary; headers in any case): ``encounters`` (``Id, START, STOP, PATIENT,
ENCOUNTERCLASS, ...``), ``conditions`` (``START, STOP, PATIENT, ENCOUNTER, CODE, DESCRIPTION``),
``medications`` (``START, STOP, PATIENT, ENCOUNTER, CODE, DESCRIPTION, REASONCODE, ...``); optional
``patients`` (``Id``; used to count patients and check the links) and ``procedures`` (``PATIENT,
ENCOUNTER, CODE, DESCRIPTION``). Protocol decisions (see docs/cohort-eicu-synthea.md):

* **Visits** are encounters at which a medication was prescribed or a condition recorded
  (``medications.ENCOUNTER`` / ``conditions.ENCOUNTER``); encounters with neither (most wellness and
  check-up encounters) carry no prediction target and no new information, and are left out. Visits are
  ordered per patient by encounter ``START``.
* **Diagnoses** are the conditions active at the encounter's start, compared by calendar day:
  ``START <= day`` and (``STOP`` empty or ``STOP >= day``), plus any condition recorded at the encounter.
  Condition dates are local dates while encounter starts are UTC timestamps; ``day`` is the encounter's
  start shifted by the whole-hour offset that best matches the two (:func:`local_offset`; -5 h on
  ``synthea-111``, where it agrees for 96% of the conditions recorded at an encounter). Codes are ``SNOMED:<code>`` named by
  ``DESCRIPTION``; order: condition start, then file order. Synthea conditions include findings and
  situations (``Medication review due``), kept as they are.
* **Procedures**: ``SNOMEDPROC:<code>`` from ``procedures.csv`` by ``ENCOUNTER`` when that table is
  there, else none.
* **Drugs**: the medications whose ``ENCOUNTER`` is the visit, mapped from ``DESCRIPTION`` (the RxNorm
  product name) by :class:`~kgrec.cohort.drugnames.DrugNameMatcher`: no open file maps Synthea's
  product-level RxNorm ``CODE`` to ATC.

Synthea visits are very uneven across patients; the report gives per-patient figures beside per-visit
ones (``visits_per_patient``, the share of visits held by the three largest patients).
"""

from __future__ import annotations

import pandas as pd

from kgrec.cohort.base import AGE_CAP, CohortLoader, assemble, cap_age, norm_sex, norm_text, top_unmapped
from kgrec.cohort.drugnames import matcher_for
from kgrec.errors import InputError
from kgrec.tables import count_unreadable, find_table, parse_times, read_source


def _optional(folder, name: str, required: list[str], optional: list[str] = (), report: dict | None = None) -> pd.DataFrame | None:
    """A table that may be absent (None) or empty (recorded in ``report``); present but malformed is still an error."""
    try:
        find_table(folder, name)
    except InputError:
        return None
    return read_source(folder, name, required, optional, report=report if report is not None else {})


def _profile(admissions: pd.DataFrame, patients: pd.DataFrame | None, report: dict) -> pd.DataFrame:
    """Age at the encounter (``patients.BIRTHDATE`` to ``encounters.START``) and sex (``GENDER``);
    without a patients table, or without those columns, both are missing and the report says so."""
    missing = [c for c in ("birthdate", "gender") if patients is None or c not in patients]
    if missing:
        report["profile_missing"] = ("no patients table" if patients is None else f"patients table has no {', '.join(missing)} column") + ": age/sex missing"
    if patients is None or patients.empty:  # absent, or a header without rows (recorded in report["empty_tables"])
        return admissions
    if patients["id"].duplicated().any():
        i = patients.index[patients["id"].duplicated()][0]
        raise InputError(f"patient id {patients.loc[i, 'id']!r} appears twice", path=patients.attrs["path"], column="id", line=int(patients.loc[i, "_line"]))
    pat = patients.set_index("id")
    out = admissions.copy()
    if "gender" in pat:
        out["sex"] = norm_sex(out["patient_id"].map(pat["gender"])).values
    if "birthdate" in pat:
        # real calendar dates: a two-digit year is the latest such year not in the future; an unreadable
        # birth date is a missing age (counted), never a guessed one
        born = parse_times(pat["birthdate"], patients.attrs["path"], "birthdate", pat["_line"], century="past", errors="missing")
        report["patients_with_unreadable_birthdate"] = count_unreadable(pat["birthdate"], born)
        years = (pd.to_datetime(out["time"]) - out["patient_id"].map(born)).dt.days / 365.25
        out["age"] = cap_age(years).values
        report["ages_capped_at_90"] = int((out["age"] == AGE_CAP).sum())
        report["visits_without_age"] = int(out["age"].isna().sum())
    return out


def _spread(counts: pd.Series) -> dict:
    """mean / median / max of per-patient counts and the share held by the three largest patients."""
    if counts.empty:
        return {"mean": 0.0, "median": 0.0, "max": 0, "top3_share": 0.0}
    return {
        "mean": round(float(counts.mean()), 3),
        "median": float(counts.median()),
        "max": int(counts.max()),
        "top3_share": round(float(counts.nlargest(3).sum() / counts.sum()), 4),
    }


def _names(codes: pd.Series, descriptions: pd.Series) -> dict[str, str]:
    df = pd.DataFrame({"c": codes.values, "d": descriptions.values})
    df = df[df["d"] != ""]
    if df.empty:
        return {}
    n = df.groupby(["c", "d"]).size().reset_index(name="n").sort_values(["c", "n", "d"], ascending=[True, False, True])
    n = n.drop_duplicates("c")
    return dict(zip(n["c"], n["d"]))


def local_offset(enc: pd.DataFrame, cond: pd.DataFrame, min_rows: int = 20) -> tuple[int, float | None]:
    """Whole-hour shift from the encounters' UTC timestamps to the calendar of the condition dates.

    Synthea writes ``conditions.START`` as a local date but ``encounters.START`` in UTC, so an evening
    encounter falls on the next UTC day. The shift (-12..12 h) is the one under which the most conditions
    recorded at an encounter start on that encounter's day (ties: the smallest shift); with fewer than
    ``min_rows`` such links it is 0. Returns ``(hours, share of links that agree)``.
    """
    linked = cond[["encounter", "t0"]].merge(enc[["id", "time"]], left_on="encounter", right_on="id")
    linked = linked.dropna(subset=["t0", "time"])
    if len(linked) < min_rows:
        return 0, None
    best = max(
        range(-12, 13),
        key=lambda h: (((linked["time"] + pd.Timedelta(hours=h)).dt.normalize() == linked["t0"]).mean(), -abs(h)),
    )
    agree = ((linked["time"] + pd.Timedelta(hours=best)).dt.normalize() == linked["t0"]).mean()
    return int(best), round(float(agree), 4)


class SyntheaLoader(CohortLoader):
    """Synthea CSV export: encounters with a medication or condition are visits; see the module docstring."""

    name = "synthea"
    default_folder = "synthea-111"
    description = "Synthea CSV export: encounters are visits, active SNOMED conditions, drug descriptions -> ATC3"

    def read(self):
        folder, report = self.source_dir, {}
        enc = read_source(folder, "encounters", ["id", "start", "patient"], ["encounterclass"])
        cond = read_source(folder, "conditions", ["start", "stop", "patient", "encounter", "code", "description"])
        med = read_source(folder, "medications", ["start", "patient", "encounter", "code", "description"])
        patients = _optional(folder, "patients", ["id"], ["birthdate", "gender"], report)
        procs = _optional(folder, "procedures", ["patient", "encounter", "code"], ["description"], report)

        if enc["id"].duplicated().any():
            i = enc.index[enc["id"].duplicated()][0]
            raise InputError(f"encounter id {enc.loc[i, 'id']!r} appears twice", path=enc.attrs["path"], column="id", line=int(enc.loc[i, "_line"]))
        enc["time"] = parse_times(enc["start"], enc.attrs["path"], "start", enc["_line"], century="past")
        cond["t0"] = parse_times(cond["start"], cond.attrs["path"], "start", cond["_line"], century="past").dt.normalize()
        cond["t1"] = parse_times(cond["stop"], cond.attrs["path"], "stop", cond["_line"], century="past").dt.normalize()
        cond = cond[cond["code"] != ""]

        # visits: encounters with a medication or a recorded condition
        keep_ids = set(med["encounter"]) | set(cond["encounter"])
        visits_enc = enc[enc["id"].isin(keep_ids)]
        report["encounters"] = int(len(enc))
        report["encounters_kept"] = int(len(visits_enc))
        report["encounters_dropped_no_medication_no_condition"] = int(len(enc) - len(visits_enc))
        admissions = pd.DataFrame(
            {"patient_id": visits_enc["patient"].values, "visit_id": visits_enc["id"].values, "time": visits_enc["time"].values}
        )
        if "encounterclass" in visits_enc:
            admissions["encounter_class"] = norm_text(visits_enc["encounterclass"]).values
        admissions = _profile(admissions, patients, report)
        admissions.attrs["path"] = enc.attrs["path"]

        # diagnoses: conditions active at the encounter's start day (same patient), plus those recorded there
        shift, agree = local_offset(enc, cond)
        report["condition_date_utc_offset_hours"] = shift
        report["condition_date_agreement"] = agree
        day = visits_enc[["id", "patient"]].assign(day=(visits_enc["time"] + pd.Timedelta(hours=shift)).dt.normalize())
        pairs = day.merge(cond[["patient", "encounter", "code", "t0", "t1", "_line"]], on="patient", how="inner")
        active = (pairs["t0"] <= pairs["day"]) & (pairs["t1"].isna() | (pairs["t1"] >= pairs["day"]))
        pairs = pairs[active | (pairs["encounter"] == pairs["id"])]
        pairs = pairs.sort_values(["id", "t0", "_line"], kind="stable")
        diag = pd.DataFrame({"visit_id": pairs["id"].values, "code": ("SNOMED:" + pairs["code"]).values, "seq": range(len(pairs))})
        names = _names("SNOMED:" + cond["code"], cond["description"])

        # procedures (optional table)
        if procs is not None:
            procs = procs[(procs["code"] != "") & procs["encounter"].isin(keep_ids)]
            proc = pd.DataFrame({"visit_id": procs["encounter"].values, "code": ("SNOMEDPROC:" + procs["code"]).values, "seq": range(len(procs))})
            if "description" in procs:
                names.update(_names("SNOMEDPROC:" + procs["code"], procs["description"]))
            report["procedure_rows"] = int(len(procs))
        else:
            proc = pd.DataFrame(columns=["visit_id", "code", "seq"])
            report["procedure_rows"] = None

        # drugs
        matcher = matcher_for(self.mappings)
        detail = {d: matcher.explain(d) for d in pd.unique(med["description"])}
        med["atc3"] = med["description"].map(lambda d: detail[d].atc3)
        route = med["description"].map(lambda d: detail[d].source)
        ok = med["atc3"].notna()
        n = len(med)
        drugs = pd.DataFrame({"visit_id": med.loc[ok, "encounter"].values, "code": med.loc[ok, "atc3"].values})

        visits = assemble(admissions, diag, proc, drugs)
        has_drug = visits["drugs"].map(len) > 0
        med_visit = visits["visit_id"].isin(set(med["encounter"]))
        per_patient = visits.groupby("patient_id").size()
        med_per_patient = visits[med_visit].groupby("patient_id").size()
        rows_per_med_visit = med.groupby("encounter").size()
        report.update(
            {
                "prescription_rows": n,
                "prescription_rows_mapped": int(ok.sum()),
                "drug_mapping_coverage": round(float(ok.mean()), 4) if n else 0.0,
                "mapping_routes": {k: int(v) for k, v in route.value_counts().items()},
                "top_unmapped_drugs": top_unmapped(med.loc[~ok, "description"]),
                "prescription_rows_unknown_encounter": int((~med["encounter"].isin(set(enc["id"]))).sum()),
                "condition_rows_unknown_encounter": int((~cond["encounter"].isin(set(enc["id"])) & (cond["encounter"] != "")).sum()),
                "visits_with_mapped_drug": int(has_drug.sum()),
                "patients_with_mapped_drug": int(visits.loc[has_drug, "patient_id"].nunique()),
                "medication_visits": int(med_visit.sum()),
                "medication_visits_without_active_condition": int((med_visit & (visits["diagnoses"].map(len) == 0)).sum()),
                "medication_rows_per_medication_visit": {
                    "mean": round(float(rows_per_med_visit.mean()), 3) if len(rows_per_med_visit) else 0.0,
                    "median": float(rows_per_med_visit.median()) if len(rows_per_med_visit) else 0.0,
                },
                "visits_per_patient": _spread(per_patient),
                "medication_visits_per_patient": _spread(med_per_patient),
                "patients_with_visits": int(per_patient.size),
            }
        )
        if patients is not None:
            report["patients"] = int(patients["id"].nunique())
            report["encounters_unknown_patient"] = int((~enc["patient"].isin(set(patients["id"]))).sum())
        tables = ["encounters", "conditions", "medications"] + (["patients"] if patients is not None else []) + (["procedures"] if procs is not None else [])
        report["tables"] = {t: str(find_table(folder, t)) for t in tables}
        return visits, names, report
