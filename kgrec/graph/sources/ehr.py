"""The workspace cohort (``<workspace>/cohort``): Patient, Visit, HAS_VISIT, HAS_DIAGNOSIS,
HAS_PROCEDURE, HAS_PRESCRIPTION.

Ids are prefixed with the cohort source so that cohorts never collide: ``Patient`` ``mimic3:10006``,
``Visit`` ``mimic3:142345``. ``Patient.split`` is train/val/test from the saved split (empty without
one); ``Visit.visit_order`` is 0-based within the patient. The ``source`` of every node and edge is the
cohort's source name (``mimic3``...). Its licence: the cohort meta's ``licence`` when it records one;
else MIMIC-III/IV and eICU read from a ``*-demo`` folder are the open demos (ODbL 1.0), from anywhere
else the credentialed data (PhysioNet Credentialed Health Data License 1.5.0); Synthea is MIT.

Codes the cohort uses are emitted as DiagnosisCode / ProcedureCode / Drug nodes named from the cohort's
code table; a node another source defines keeps that source (see :mod:`kgrec.graph.build`), so these
only define codes no other source knows.
"""

from __future__ import annotations

import pandas as pd

from kgrec.errors import WorkspaceError
from kgrec.graph.sources._base import LIC_MIT, LIC_ODBL, LIC_PHYSIONET, Context, Source, SourceTables, edges_frame

CREDENTIALED = ("mimic3", "mimic4", "eicu")


def cohort_licence(source: str, report: dict) -> str:
    """The licence of a cohort's data, from its meta (see the module docstring)."""
    for key in ("licence", "license"):
        if report.get(key):
            return str(report[key])
    if source == "synthea":
        return LIC_MIT
    paths = [str(p) for p in (report.get("tables") or {}).values()] + [str(report.get("source_dir", ""))]
    if any("demo" in p.lower() for p in paths):
        return LIC_ODBL
    return LIC_PHYSIONET if source in CREDENTIALED else "unknown (see the cohort's source)"


class EhrSource(Source):
    name = "ehr"
    licence = "by cohort: ODbL 1.0 (MIMIC/eICU demos), PhysioNet credentialed (full data), MIT (Synthea)"
    description = "workspace cohort: Patient, Visit, HAS_VISIT, HAS_DIAGNOSIS, HAS_PROCEDURE, HAS_PRESCRIPTION"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        cohort = ctx.cohort
        if cohort is None:
            raise WorkspaceError("the ehr source needs a workspace with a cohort (run `kgrec prepare` first)")
        src = cohort.source
        lic = cohort_licence(src, cohort.report or {})
        v = cohort.visits
        pid = src + ":" + v["patient_id"].astype(str)
        vid = src + ":" + v["visit_id"].astype(str)
        split_of: dict[str, str] = {}
        if cohort.split:
            for part in ("train", "val", "test"):
                for p in cohort.split.get(part, []):
                    split_of[f"{src}:{p}"] = part
        out = SourceTables()
        patients = pid.drop_duplicates()
        out.add_nodes("Patient", pd.DataFrame({"id": patients, "split": patients.map(split_of), "source": src}))
        out.add_nodes("Visit", pd.DataFrame({"id": vid, "visit_order": v["visit_order"].astype(int), "source": src}))
        out.add_edges("HAS_VISIT", edges_frame(pid, vid, src, lic))
        for rel, col in (("HAS_DIAGNOSIS", "diagnoses"), ("HAS_PROCEDURE", "procedures"), ("HAS_PRESCRIPTION", "drugs")):
            e = pd.DataFrame({"src": vid, "dst": v[col]}).explode("dst").dropna().drop_duplicates()
            out.add_edges(rel, edges_frame(e["src"], e["dst"], src, lic))
        names = {str(c): n for c, n in zip(cohort.codes["code"], cohort.codes["name"]) if n and str(n) != str(c)}
        for label, kind, col in (("DiagnosisCode", "diagnosis", "diagnoses"), ("ProcedureCode", "procedure", "procedures"), ("Drug", "drug", "drugs")):
            used = {str(c) for cs in v[col] for c in cs}
            ids = sorted(used | set(cohort.codes.loc[cohort.codes["kind"] == kind, "code"].astype(str)))
            df = pd.DataFrame({"id": pd.Series(ids, dtype=object), "name": pd.Series([names.get(i) for i in ids], dtype=object), "source": src})
            if label != "Drug":  # (an empty frame too: Synthea has no procedure codes)
                df["system"] = df["id"].astype(str).str.split(":", n=1).str[0]
            out.add_nodes(label, df)
        out.report = {"cohort_source": src, "licence": lic, "patients": int(len(patients)), "visits": int(len(v)), "split": bool(cohort.split)}
        return out
