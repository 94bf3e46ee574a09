"""DrugCentral indications (CC BY 4.0, ``kg/drugcentral/indications.tsv``): INDICATION DrugBank -> DOID.

Same layout as PharmacotherapyDB: DM -> ``treats``, SYM -> ``palliates``, NOT -> ``non_indication``.
About a third of the rows have an empty category: those are indications DrugCentral lists without
classifying them, kept with ``kind = indication``.
"""

from __future__ import annotations

from kgrec.graph.sources._base import LIC_DRUGCENTRAL, Context, Source, SourceTables
from kgrec.graph.sources.pharmacotherapydb import KINDS, indication_edges


class DrugCentralSource(Source):
    name = "drugcentral"
    licence = LIC_DRUGCENTRAL
    requires = ("drugbank", "disease_ontology")
    files = ("kg/drugcentral/indications.tsv",)
    description = "DrugCentral indications (treats / palliates / non_indication / indication)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        return indication_edges(ctx.path("kg/drugcentral/indications.tsv"), self.name, self.licence, {**KINDS, "": "indication"})
