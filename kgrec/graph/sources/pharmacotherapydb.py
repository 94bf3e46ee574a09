"""PharmacotherapyDB (CC0): expert-curated INDICATION edges DrugBank -> DOID
(``kg/pharmacotherapydb/indications.tsv``).

``category`` DM (disease modifying) -> ``kind = treats``, SYM (symptomatic) -> ``palliates``,
NOT (non-indication) -> ``non_indication``. An indication whose drug is not in the DrugBank vocabulary
or whose DOID is not in the Disease Ontology file is dropped by the build and counted.
"""

from __future__ import annotations

from pathlib import Path

from kgrec.errors import InputError
from kgrec.graph.sources._base import (
    LIC_CC0,
    RE_DOID,
    RE_DRUGBANK,
    Context,
    Source,
    SourceTables,
    check_ids,
    edges_frame,
    read_rows,
)

KINDS = {"DM": "treats", "SYM": "palliates", "NOT": "non_indication"}


def indication_edges(path: Path, source: str, licence: str, kinds: dict[str, str]) -> SourceTables:
    """INDICATION edges from a ``doid_id, drugbank_id, category`` table (PharmacotherapyDB layout)."""
    df = read_rows(path, ["doid_id", "drugbank_id", "category"], quoted=False)
    check_ids(df, "doid_id", RE_DOID, what="DOID")
    check_ids(df, "drugbank_id", RE_DRUGBANK, what="DrugBank id")
    bad = ~df["category"].isin(list(kinds))
    if bad.any():
        i = bad.idxmax()
        raise InputError(
            f"unknown category {df.loc[i, 'category']!r} (expected one of {', '.join(k or repr(k) for k in kinds)})",
            path=path,
            column="category",
            line=int(df.loc[i, "_line"]),
        )
    e = df.assign(kind=df["category"].map(kinds)).drop_duplicates(["drugbank_id", "doid_id", "kind"])
    out = SourceTables(droppable={"INDICATION"})
    out.add_edges("INDICATION", edges_frame(e["drugbank_id"], e["doid_id"], source, licence, kind=e["kind"]))
    out.report = {"rows": int(len(df)), "by_kind": {k: int(v) for k, v in e["kind"].value_counts().items()}}
    return out


class PharmacotherapyDBSource(Source):
    name = "pharmacotherapydb"
    licence = LIC_CC0
    requires = ("drugbank", "disease_ontology")
    files = ("kg/pharmacotherapydb/indications.tsv",)
    description = "PharmacotherapyDB indications (treats / palliates / non_indication)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        return indication_edges(ctx.path("kg/pharmacotherapydb/indications.tsv"), self.name, self.licence, KINDS)
