"""Write a Synthea CSV export as an OMOP CDM v5.4 folder (CSV), to try `kgrec prepare --source omop` on
real-shaped data where no OMOP extract is at hand.

    python scripts/synthea_to_omop.py ../shared/data/synthea-111 /tmp/synthea-omop [--parquet]

What it writes follows OHDSI's ETL-Synthea where it matters to kgrec: one ``visit_occurrence`` per
encounter (inpatient -> 9201, emergency / urgentcare -> 9203, the rest -> 9202), conditions and drugs
attached to the encounter that recorded them, SNOMED condition concepts and RxNorm drug concepts.
It has no OHDSI vocabulary (Athena's files need a licence acceptance), so ``concept`` holds only the
concepts the data uses, with kgrec's own concept ids, and there is no ``concept_ancestor`` or
``concept_relationship``: the loader must map drugs without ATC ancestors (RxNorm -> UNII -> DrugBank,
then names), the "site without the full vocabulary" case.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

VISIT = {"inpatient": 9201, "emergency": 9203, "urgentcare": 9203}
VISIT_NAMES = {9201: "Inpatient Visit", 9202: "Outpatient Visit", 9203: "Emergency Room Visit", 8507: "MALE", 8532: "FEMALE"}


def convert(src: Path, out: Path, parquet: bool = False) -> dict[str, int]:
    read = lambda name: pd.read_csv(src / f"{name}.csv", dtype=str, keep_default_na=False)  # noqa: E731
    pat, enc, cond, med = read("patients"), read("encounters"), read("conditions"), read("medications")
    pid = {u: i for i, u in enumerate(pat["Id"], 1)}
    vid = {u: i for i, u in enumerate(enc["Id"], 1)}
    org = {u: i for i, u in enumerate(pd.unique(enc["ORGANIZATION"]), 1)}
    concepts: dict[tuple[str, str], tuple[int, str]] = {}

    def concept(vocab: str, code: str, name: str) -> int:
        if (vocab, code) not in concepts:
            concepts[(vocab, code)] = (40_000_000 + len(concepts), name)
        return concepts[(vocab, code)][0]

    birth = pd.to_datetime(pat["BIRTHDATE"], errors="coerce")
    tables = {
        "person": pd.DataFrame({
            "person_id": pat["Id"].map(pid), "gender_concept_id": pat["GENDER"].map({"M": 8507, "F": 8532}).fillna(0).astype(int),
            "year_of_birth": birth.dt.year.astype("Int64"), "month_of_birth": birth.dt.month.astype("Int64"),
            "day_of_birth": birth.dt.day.astype("Int64"), "birth_datetime": birth.dt.strftime("%Y-%m-%d 00:00:00"),
            "race_concept_id": 0, "ethnicity_concept_id": 0, "person_source_value": pat["Id"], "gender_source_value": pat["GENDER"]}),
    }
    start = pd.to_datetime(enc["START"], utc=True, errors="coerce").dt.tz_localize(None)
    stop = pd.to_datetime(enc["STOP"], utc=True, errors="coerce").dt.tz_localize(None)
    tables["visit_occurrence"] = pd.DataFrame({
        "visit_occurrence_id": enc["Id"].map(vid), "person_id": enc["PATIENT"].map(pid),
        "visit_concept_id": enc["ENCOUNTERCLASS"].map(VISIT).fillna(9202).astype(int),
        "visit_start_date": start.dt.strftime("%Y-%m-%d"), "visit_start_datetime": start.dt.strftime("%Y-%m-%d %H:%M:%S"),
        "visit_end_date": stop.dt.strftime("%Y-%m-%d"), "visit_end_datetime": stop.dt.strftime("%Y-%m-%d %H:%M:%S"),
        "visit_type_concept_id": 32827, "care_site_id": enc["ORGANIZATION"].map(org), "visit_source_value": enc["Id"],
        "admitted_from_concept_id": 0, "discharged_to_concept_id": 0})
    tables["condition_occurrence"] = pd.DataFrame({
        "condition_occurrence_id": range(1, len(cond) + 1), "person_id": cond["PATIENT"].map(pid),
        "condition_concept_id": [concept("SNOMED", c, n) for c, n in zip(cond["CODE"], cond["DESCRIPTION"])],
        "condition_start_date": cond["START"].str[:10], "condition_end_date": cond["STOP"].str[:10],
        "condition_type_concept_id": 32827, "visit_occurrence_id": cond["ENCOUNTER"].map(vid).astype("Int64"),
        "condition_source_value": cond["CODE"], "condition_source_concept_id": 0})
    mstart = pd.to_datetime(med["START"], utc=True, errors="coerce").dt.tz_localize(None)
    tables["drug_exposure"] = pd.DataFrame({
        "drug_exposure_id": range(1, len(med) + 1), "person_id": med["PATIENT"].map(pid),
        "drug_concept_id": [concept("RxNorm", c, n) for c, n in zip(med["CODE"], med["DESCRIPTION"])],
        "drug_exposure_start_date": mstart.dt.strftime("%Y-%m-%d"), "drug_exposure_start_datetime": mstart.dt.strftime("%Y-%m-%d %H:%M:%S"),
        "drug_exposure_end_date": med["STOP"].str[:10], "drug_type_concept_id": 32838,
        "visit_occurrence_id": med["ENCOUNTER"].map(vid).astype("Int64"), "drug_source_value": med["CODE"], "drug_source_concept_id": 0})
    tables["procedure_occurrence"] = pd.DataFrame(columns=["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date",
                                                           "procedure_type_concept_id", "visit_occurrence_id"])  # none exported
    tables["care_site"] = pd.DataFrame({"care_site_id": list(org.values()), "care_site_name": [f"Synthea organization {i}" for i in org.values()],
                                        "place_of_service_concept_id": 0, "care_site_source_value": list(org)})
    tables["cdm_source"] = pd.DataFrame([{"cdm_source_name": f"Synthea export {src.name} (kgrec scripts/synthea_to_omop.py)",
                                          "cdm_source_abbreviation": "SYNTHEA", "cdm_holder": "kgrec", "source_release_date": "",
                                          "cdm_release_date": "", "cdm_version": "v5.4.0", "vocabulary_version": "none (concepts of the data only)"}])
    rows = [{"concept_id": cid, "concept_name": n, "domain_id": "Visit" if cid in (9201, 9202, 9203) else "Gender",
             "vocabulary_id": "Visit" if cid in (9201, 9202, 9203) else "Gender", "concept_class_id": "Visit", "standard_concept": "S",
             "concept_code": str(cid)} for cid, n in VISIT_NAMES.items()]
    rows += [{"concept_id": cid, "concept_name": n, "domain_id": "Condition" if v == "SNOMED" else "Drug", "vocabulary_id": v,
              "concept_class_id": "Clinical Finding" if v == "SNOMED" else "Clinical Drug", "standard_concept": "S", "concept_code": c}
             for (v, c), (cid, n) in concepts.items()]
    tables["concept"] = pd.DataFrame(rows).assign(valid_start_date="1970-01-01", valid_end_date="2099-12-31", invalid_reason="")
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if parquet:
            df.to_parquet(out / f"{name}.parquet", index=False)
        else:
            df.to_csv(out / f"{name}.csv", index=False)
    return {name: len(df) for name, df in tables.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("synthea", type=Path, help="folder of the Synthea CSV export (patients.csv, encounters.csv, ...)")
    ap.add_argument("out", type=Path, help="folder to write the OMOP CDM tables into")
    ap.add_argument("--parquet", action="store_true", help="write Parquet instead of CSV")
    args = ap.parse_args()
    for name, n in convert(args.synthea, args.out, args.parquet).items():
        print(f"{name}: {n:,} rows")


if __name__ == "__main__":
    main()
