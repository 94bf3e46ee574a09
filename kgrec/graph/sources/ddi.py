"""Drug-drug interactions.

* ``INTERACTS`` (Drug -> Drug, ATC level 3) from the SafeDrug/GAMENet pairs
  (``ddi/safedrug-atc3/ddi_atc3_pairs.tsv``, TWOSIDES-derived, no licence stated): ``source = safedrug``.
* ``INGREDIENT_INTERACTS`` (Ingredient -> Ingredient) from the ChCh-Miner pairs with ``label`` 1
  (``ddi/chch-miner/ChChMiner_{train,valid,test}.csv``; DrugBank-derived, non-commercial):
  ``source = chch_miner``; dropped with ``exclude_nc``.

Interactions are symmetric: each unordered pair is stored once, from the smaller id to the larger.
"""

from __future__ import annotations

from kgrec.errors import InputError
from kgrec.graph.sources._base import LIC_CHCH, LIC_SAFEDRUG, RE_ATC3, RE_DRUGBANK, Context, Source, SourceTables, check_ids, edges_frame, read_rows

SAFEDRUG = "ddi/safedrug-atc3/ddi_atc3_pairs.tsv"
CHCH = "ddi/chch-miner/ChChMiner_{}.csv"
SRC_SAFEDRUG, SRC_CHCH = "safedrug", "chch_miner"


def _pairs(a, b) -> list[tuple[str, str]]:
    return sorted({(x, y) if x < y else (y, x) for x, y in zip(a, b) if x != y})


class DdiSource(Source):
    name = "ddi"
    licence = f"{LIC_SAFEDRUG} (SafeDrug ATC3 pairs); {LIC_CHCH} (ChCh-Miner)"
    nc_parts = "INGREDIENT_INTERACTS from ChCh-Miner (DrugBank-derived, NC)"
    requires = ("atc", "drugbank")
    files = (SAFEDRUG, CHCH.format("train"), CHCH.format("valid"), CHCH.format("test"))
    description = "DDI: INTERACTS (SafeDrug ATC3 pairs), INGREDIENT_INTERACTS (ChCh-Miner, NC)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        out = SourceTables(droppable={"INTERACTS", "INGREDIENT_INTERACTS"})
        sd = read_rows(ctx.path(SAFEDRUG), ["atc3_a", "atc3_b"], quoted=False)
        for c in ("atc3_a", "atc3_b"):
            sd[c] = sd[c].str.upper()
            check_ids(sd, c, RE_ATC3, what="ATC level-3 code")
        p = _pairs(sd["atc3_a"], sd["atc3_b"])
        out.add_edges("INTERACTS", edges_frame([x for x, _ in p], [y for _, y in p], SRC_SAFEDRUG, LIC_SAFEDRUG))
        report = {"safedrug_pairs": len(p)}
        if not ctx.exclude_nc:
            a, b, neg = [], [], 0
            for split in ("train", "valid", "test"):
                df = read_rows(ctx.path(CHCH.format(split)), ["drugbank_id_1", "drugbank_id_2", "label"])
                check_ids(df, "drugbank_id_1", RE_DRUGBANK, what="DrugBank id")
                check_ids(df, "drugbank_id_2", RE_DRUGBANK, what="DrugBank id")
                lab = df["label"].str.replace(r"\.0+$", "", regex=True)
                bad = ~lab.isin(["0", "1"])
                if bad.any():
                    i = bad.idxmax()
                    raise InputError(f"label must be 0 or 1, got {df.loc[i, 'label']!r}", path=df.attrs["path"], column="label", line=int(df.loc[i, "_line"]))
                pos = df[lab == "1"]
                neg += int((lab == "0").sum())
                a += pos["drugbank_id_1"].tolist()
                b += pos["drugbank_id_2"].tolist()
            q = _pairs(a, b)
            out.add_edges("INGREDIENT_INTERACTS", edges_frame([x for x, _ in q], [y for _, y in q], SRC_CHCH, LIC_CHCH))
            report.update({"chch_positive_rows": len(a), "chch_negative_rows_ignored": neg, "chch_pairs": len(q)})
        out.report = report
        return out
