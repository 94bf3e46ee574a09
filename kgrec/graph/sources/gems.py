"""CMS General Equivalence Mappings, ICD-9-CM -> ICD-10-CM (``mappings/icd_cm_9_to_10_mapping.csv.gz``,
public domain): GEM edges between DiagnosisCode nodes.

``flags`` is the GEM five-digit flag string (approximate, no map, combination, scenario, choice list):
``approximate`` is its first digit; rows flagged "no map" (``NoDx``) are skipped and counted. A pair
listed more than once (combination scenarios) is one edge, approximate only if every row says so.
"""

from __future__ import annotations

from kgrec.cohort.codes import icd_id
from kgrec.graph.sources._base import LIC_PUBLIC_DOMAIN, Context, Source, SourceTables, check_ids, edges_frame, read_rows

RE_GEM_ICD9 = r"[VE]\d{2,4}|\d{3,5}"
RE_GEM_ICD10 = r"[A-Z][0-9A-Z]{2,6}|NoDx"


class GemsSource(Source):
    name = "gems"
    licence = LIC_PUBLIC_DOMAIN
    requires = ("icd",)
    files = ("mappings/icd_cm_9_to_10_mapping.csv.gz",)
    description = "CMS GEMs ICD-9-CM -> ICD-10-CM (GEM, approximate flag)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        df = read_rows(ctx.path("mappings/icd_cm_9_to_10_mapping.csv.gz"), ["icd_9", "icd_10", "flags"])
        check_ids(df, "icd_9", RE_GEM_ICD9, what="ICD-9-CM code")
        check_ids(df, "icd_10", RE_GEM_ICD10, what="ICD-10-CM code")
        check_ids(df, "flags", r"[01]{3}\d{2}", what="GEM flags")
        nomap = (df["icd_10"] == "NoDx") | (df["flags"].str[1] == "1")
        m = df[~nomap]
        g = (
            m.assign(approx=m["flags"].str[0] == "1")
            .groupby(["icd_9", "icd_10"], sort=True, as_index=False)["approx"]
            .all()
        )
        out = SourceTables()
        out.add_edges(
            "GEM",
            edges_frame(
                [icd_id(c, 9) for c in g["icd_9"]],
                [icd_id(c, 10) for c in g["icd_10"]],
                self.name,
                self.licence,
                approximate=g["approx"].tolist(),
            ),
        )
        out.report = {"rows": int(len(df)), "no_map_skipped": int(nomap.sum()), "edges": int(len(g)), "approximate": int(g["approx"].sum())}
        return out
