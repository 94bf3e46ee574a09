"""MEDI (CC BY-NC-SA 3.0, non-commercial): INDICATION_ICD from a DrugBank ingredient to an ICD-9-CM code.

MEDI lists RxNorm ingredients (``RXCUI_IN``) with ICD-9 indications (``kg/medi/MEDI_01212013_0.csv.gz``).
The ingredient reaches DrugBank through ``kg/rxcui-unii-map.tsv`` (RxNorm -> UNII, CC0) and the UNII of
the open DrugBank vocabulary; rows whose RxNorm id reaches no DrugBank drug are counted and skipped.
``high_precision`` marks the pairs of the high-precision subset file (``MEDI_01212013_HPS_0.csv``).
ICD-9 ranges (``260-269.99``) are skipped and counted; a cell listing several codes (``616.10|041.9``)
gives an edge to each. The whole source is dropped with ``exclude_nc``.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pandas as pd

from kgrec.cohort.codes import icd_id
from kgrec.errors import InputError
from kgrec.graph.sources._base import LIC_MEDI, RE_RXCUI, Context, Source, SourceTables, check_ids, edges_frame, read_rows

RE_ICD9 = re.compile(r"[VE]?\d+(\.\d+)?")
FULL = "kg/medi/MEDI_01212013_0.csv.gz"
HPS = "kg/medi/MEDI_01212013_HPS_0.csv"
RXMAP = "kg/rxcui-unii-map.tsv"


def _checked(df: pd.DataFrame) -> pd.Series:
    """True for ICD-9 ranges (skipped); an InputError for anything else that is not an ICD-9 code."""
    check_ids(df, "rxcui_in", RE_RXCUI, what="RxNorm id")
    icd = df["icd9"]
    rng = icd.str.contains("-", regex=False)
    bad = ~rng & ~icd.str.fullmatch(rf"{RE_ICD9.pattern}(\|{RE_ICD9.pattern})*")
    if bad.any():
        i = bad.idxmax()
        raise InputError(f"bad ICD-9 code {icd.loc[i]!r}", path=df.attrs["path"], column="icd9", line=int(df.loc[i, "_line"]))
    return rng


class MediSource(Source):
    name = "medi"
    licence = LIC_MEDI
    nc = True
    requires = ("drugbank", "icd")
    files = (FULL, HPS, RXMAP, "kg/drugbank/drugbank_vocabulary.csv")
    description = "MEDI RxNorm -> ICD-9 indications (INDICATION_ICD, high_precision), NC"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        full = read_rows(ctx.path(FULL), ["rxcui_in", "icd9"])
        hps = read_rows(ctx.path(HPS), ["rxcui_in", "icd9"])
        rng = _checked(full)
        _checked(hps)
        hp = set(zip(hps["rxcui_in"], hps["icd9"]))
        rx = read_rows(ctx.path(RXMAP), ["rxnorm_id", "fdasrs_id"], quoted=False)
        check_ids(rx, "rxnorm_id", RE_RXCUI, what="RxNorm id")
        check_ids(rx, "fdasrs_id", r"[A-Z0-9]{10}", allow_empty=True, what="UNII")
        u2d = ctx.unii_to_drugbank
        cui_to_db: dict[str, set[str]] = defaultdict(set)
        for cui, unii in zip(rx["rxnorm_id"], rx["fdasrs_id"]):
            if (d := u2d.get(unii)):
                cui_to_db[cui].add(d)
        edges: dict[tuple[str, str], bool] = {}
        unmapped_rows, unmapped = 0, set()
        f = full[~rng]
        for cui, code in zip(f["rxcui_in"], f["icd9"]):
            dbs = cui_to_db.get(cui)
            if not dbs:
                unmapped_rows += 1
                unmapped.add(cui)
                continue
            flag = (cui, code) in hp
            for one in code.split("|"):  # a cell may list several codes: 616.10|041.9
                cid = icd_id(one, 9)
                for d in dbs:
                    edges[(d, cid)] = edges.get((d, cid), False) or flag
        keys = sorted(edges)
        out = SourceTables()
        out.add_edges(
            "INDICATION_ICD",
            edges_frame([k[0] for k in keys], [k[1] for k in keys], self.name, self.licence, high_precision=[edges[k] for k in keys]),
        )
        out.report = {
            "rows": int(len(full)),
            "range_rows_skipped": int(rng.sum()),
            "rows_rxnorm_unmapped": unmapped_rows,
            "rxnorm_ingredients": int(full["rxcui_in"].nunique()),
            "rxnorm_ingredients_unmapped": len(unmapped),
            "edges": len(keys),
            "high_precision_edges": int(sum(edges.values())),
        }
        return out
