"""WHO ATC names (``mappings/atc_coding.csv.gz``): Drug nodes (ATC level 3, the unit kgrec recommends),
ATCClass nodes for levels 1 and 2, and the hierarchy DRUG_PARENT (3 -> 2) and ATC_PARENT (2 -> 1).

A code listed twice (the file holds a few alternative spellings) keeps its first name.
"""

from __future__ import annotations

import pandas as pd

from kgrec.graph.sources._base import LIC_WHO_ATC, Context, Source, SourceTables, edges_frame


class AtcSource(Source):
    name = "atc"
    licence = LIC_WHO_ATC
    files = ("mappings/atc_coding.csv.gz",)
    description = "WHO ATC code names: Drug (level 3), ATCClass (levels 1-2), class hierarchy"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        names = ctx.atc_names
        out = SourceTables()
        l1 = sorted(c for c in names if len(c) == 1)
        l2 = sorted(c for c in names if len(c) == 3)
        l3 = sorted(c for c in names if len(c) == 4)
        out.add_nodes("Drug", pd.DataFrame({"id": l3, "name": [names[c] for c in l3], "source": self.name}))
        out.add_nodes(
            "ATCClass",
            pd.DataFrame(
                {"id": l1 + l2, "name": [names[c] for c in l1 + l2], "level": [1] * len(l1) + [2] * len(l2), "source": self.name}
            ),
        )
        known = set(names)
        d = [c for c in l3 if c[:3] in known]
        a = [c for c in l2 if c[:1] in known]
        out.add_edges("DRUG_PARENT", edges_frame(d, [c[:3] for c in d], self.name, self.licence))
        out.add_edges("ATC_PARENT", edges_frame(a, [c[:1] for c in a], self.name, self.licence))
        out.report = {
            "codes": len(names),
            "duplicate_code_rows": int(len(ctx.atc_table) - len(names)),
            "level3_without_level2": len(l3) - len(d),
            "level2_without_level1": len(l2) - len(a),
        }
        return out
