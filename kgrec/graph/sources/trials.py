"""ClinicalTrials.gov table (``trials/DrugBank-DO-slim.tsv``; CC0 + ClinicalTrials.gov terms): Trial
nodes (NCT id), STUDIES (trial -> DrugBank ingredient) and TARGETS (trial -> DOID).

Edges to a drug missing from the DrugBank vocabulary or a DOID missing from the Disease Ontology file
are dropped by the build and counted.
"""

from __future__ import annotations

import pandas as pd

from kgrec.graph.sources._base import LIC_TRIALS, RE_DOID, RE_DRUGBANK, RE_NCT, Context, Source, SourceTables, check_ids, edges_frame, read_rows

FILE = "trials/DrugBank-DO-slim.tsv"


class TrialsSource(Source):
    name = "trials"
    licence = LIC_TRIALS
    requires = ("drugbank", "disease_ontology")
    files = (FILE,)
    description = "ClinicalTrials.gov: Trial, STUDIES (drug), TARGETS (disease)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        df = read_rows(ctx.path(FILE), ["nct_id", "compound_id", "disease_id"], quoted=False)
        check_ids(df, "nct_id", RE_NCT, what="NCT id")
        check_ids(df, "compound_id", RE_DRUGBANK, what="DrugBank id")
        check_ids(df, "disease_id", RE_DOID, what="DOID")
        out = SourceTables(droppable={"STUDIES", "TARGETS"})
        trials = sorted(df["nct_id"].unique())
        out.add_nodes("Trial", pd.DataFrame({"id": trials, "source": self.name}))
        s = df[["nct_id", "compound_id"]].drop_duplicates().sort_values(["nct_id", "compound_id"])
        t = df[["nct_id", "disease_id"]].drop_duplicates().sort_values(["nct_id", "disease_id"])
        out.add_edges("STUDIES", edges_frame(s["nct_id"], s["compound_id"], self.name, self.licence))
        out.add_edges("TARGETS", edges_frame(t["nct_id"], t["disease_id"], self.name, self.licence))
        out.report = {"rows": int(len(df)), "trials": len(trials)}
        return out
