"""How `kgrec prepare --source omop` scales: a synthetic OMOP CDM v5.4 of N visits (CSV folder, or a
DuckDB file with --duckdb), about 10 conditions and 8 drug exposures per visit, a vocabulary with ATC
ancestors for half the drug concepts; then the loader, timed, with its peak memory.

    KGREC_DATA=../shared/data python scripts/bench_omop.py --visits 10000 100000 -o /tmp/omop-bench [--duckdb]

Synthetic data measures cost, not accuracy. Prints one line per size and writes OUT/bench_omop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_cdm(folder: Path, n_visits: int, seed: int = 0, duckdb: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_person = max(1, n_visits // 4)
    n_cond, n_drug = 2000, 1500
    cond_ids = 100_000 + np.arange(n_cond)
    drug_ids = 200_000 + np.arange(n_drug)
    atc_ids = 300_000 + np.arange(60)
    atc_codes = [f"{l}{i:02d}{chr(65 + j)}" for l, i, j in zip("ABCJMN" * 10, range(1, 61), range(60))]
    concept = pd.concat([
        pd.DataFrame({"concept_id": [9201, 9202, 9203, 8507, 8532], "concept_name": ["Inpatient Visit", "Outpatient Visit", "Emergency Room Visit", "MALE", "FEMALE"],
                      "domain_id": ["Visit"] * 3 + ["Gender"] * 2, "vocabulary_id": ["Visit"] * 3 + ["Gender"] * 2,
                      "concept_class_id": ["Visit"] * 3 + ["Gender"] * 2, "standard_concept": "S", "concept_code": ["IP", "OP", "ER", "M", "F"]}),
        pd.DataFrame({"concept_id": cond_ids, "concept_name": [f"condition {i}" for i in range(n_cond)], "domain_id": "Condition",
                      "vocabulary_id": "SNOMED", "concept_class_id": "Clinical Finding", "standard_concept": "S", "concept_code": (10_000_000 + np.arange(n_cond)).astype(str)}),
        pd.DataFrame({"concept_id": drug_ids, "concept_name": [f"drug product {i} 10 MG Oral Tablet" for i in range(n_drug)], "domain_id": "Drug",
                      "vocabulary_id": "RxNorm", "concept_class_id": "Clinical Drug", "standard_concept": "S", "concept_code": (500_000 + np.arange(n_drug)).astype(str)}),
        pd.DataFrame({"concept_id": atc_ids, "concept_name": [f"atc class {c}" for c in atc_codes], "domain_id": "Drug", "vocabulary_id": "ATC",
                      "concept_class_id": "ATC 3rd", "standard_concept": "C", "concept_code": atc_codes}),
    ]).assign(valid_start_date="1970-01-01", valid_end_date="2099-12-31", invalid_reason="")
    half = drug_ids[: n_drug // 2]
    ancestor = pd.DataFrame({"ancestor_concept_id": atc_ids[rng.integers(0, len(atc_ids), len(half))], "descendant_concept_id": half,
                             "min_levels_of_separation": 1, "max_levels_of_separation": 1})
    person = pd.DataFrame({"person_id": np.arange(1, n_person + 1), "gender_concept_id": rng.choice([8507, 8532], n_person),
                           "year_of_birth": rng.integers(1930, 2000, n_person), "month_of_birth": rng.integers(1, 13, n_person),
                           "day_of_birth": rng.integers(1, 28, n_person), "race_concept_id": 0, "ethnicity_concept_id": 0})
    start = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n_visits), unit="D")
    visit = pd.DataFrame({"visit_occurrence_id": np.arange(1, n_visits + 1), "person_id": rng.integers(1, n_person + 1, n_visits),
                          "visit_concept_id": rng.choice([9201, 9202, 9203], n_visits), "visit_start_date": start.strftime("%Y-%m-%d"),
                          "visit_start_datetime": start.strftime("%Y-%m-%d 08:00:00"), "visit_end_date": start.strftime("%Y-%m-%d"),
                          "visit_type_concept_id": 32817, "care_site_id": rng.integers(1, 20, n_visits), "admitted_from_concept_id": 0})
    nc, nd = n_visits * 10, n_visits * 8
    cv, dv = rng.integers(1, n_visits + 1, nc), rng.integers(1, n_visits + 1, nd)
    cond = pd.DataFrame({"condition_occurrence_id": np.arange(1, nc + 1), "person_id": visit["person_id"].to_numpy()[cv - 1],
                         "condition_concept_id": cond_ids[rng.zipf(1.6, nc) % n_cond], "condition_start_date": visit["visit_start_date"].to_numpy()[cv - 1],
                         "condition_type_concept_id": 32817, "visit_occurrence_id": cv, "condition_source_value": "", "condition_source_concept_id": 0})
    drug = pd.DataFrame({"drug_exposure_id": np.arange(1, nd + 1), "person_id": visit["person_id"].to_numpy()[dv - 1],
                         "drug_concept_id": drug_ids[rng.zipf(1.5, nd) % n_drug], "drug_exposure_start_date": visit["visit_start_date"].to_numpy()[dv - 1],
                         "drug_exposure_end_date": visit["visit_start_date"].to_numpy()[dv - 1], "drug_type_concept_id": 32838, "visit_occurrence_id": dv,
                         "drug_source_value": "", "drug_source_concept_id": 0})
    cdm_source = pd.DataFrame([{"cdm_source_name": "synthetic scale CDM", "cdm_source_abbreviation": "SCALE", "cdm_holder": "kgrec bench",
                                "cdm_version": "v5.4.0", "vocabulary_version": "synthetic"}])
    tables = {"person": person, "visit_occurrence": visit, "condition_occurrence": cond, "drug_exposure": drug, "concept": concept,
              "concept_ancestor": ancestor, "cdm_source": cdm_source}
    if duckdb:
        import duckdb as ddb

        con = ddb.connect(str(folder / "cdm.duckdb"))
        for name, df in tables.items():
            con.register("df", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM df")
            con.unregister("df")
        con.close()
    else:
        for name, df in tables.items():
            df.to_csv(folder / f"{name}.csv", index=False)
    return {name: len(df) for name, df in tables.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--visits", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/omop-bench"))
    ap.add_argument("--duckdb", action="store_true", help="write the CDM into a DuckDB file and read it through its URL")
    args = ap.parse_args()
    data = os.environ.get("KGREC_DATA")
    if not data:
        sys.exit("set KGREC_DATA to the open-data folder")
    results = []
    for n in args.visits:
        folder = args.out / f"cdm-{n}"
        rows = write_cdm(folder, n, duckdb=args.duckdb)
        src = ["--db-url", f"duckdb:///{folder / 'cdm.duckdb'}"] if args.duckdb else ["--source-dir", str(folder)]
        cmd = [sys.executable, "-m", "kgrec", "prepare", "--source", "omop", *src, "-w", str(args.out / f"ws-{n}"), "--data-dir", data, "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"prepare failed for {n} visits: {proc.stderr[-2000:]}")
        out = json.loads(proc.stdout)
        rec = {"visits_written": n, "rows": rows, "visits": out["n_visits"], "wall_s": round(wall, 1), "peak_rss_mb_max_so_far": round(ru.ru_maxrss / 1024),
               "drug_mapping_coverage": out["mapping"]["drug_mapping_coverage"], "reader": "duckdb" if args.duckdb else "csv"}
        results.append(rec)
        print(json.dumps(rec))
    (args.out / "bench_omop.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
