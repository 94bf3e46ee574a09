"""Drug-drug interactions at ATC level 3.

Sources: ``safedrug`` (the TWOSIDES-derived ATC3 pairs of the GAMENet/SafeDrug line of work; default)
and ``drugbank`` (ChCh-Miner DrugBank pairs with label 1, lifted to ATC3 through DrugBank's ATC codes;
non-commercial licence). Pairs are unordered and stored once with ``atc3_a < atc3_b``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from kgrec.cohort.codes import Mappings, atc3
from kgrec.errors import InputError
from kgrec.tables import read_table

DDI_SOURCES = {
    "safedrug": ("ddi/safedrug-atc3/ddi_atc3_pairs.tsv", "no licence stated"),
    "drugbank": ("ddi/chch-miner/ChChMiner_train.csv", "CC BY-NC 4.0 (DrugBank-derived, NC)"),
}


def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def load_ddi(mappings: Mappings, sources: Iterable[str] = ("safedrug",)) -> pd.DataFrame:
    """ATC3 interaction pairs: columns ``atc3_a``, ``atc3_b``, ``source``, ``licence``."""
    rows: set[tuple[str, str, str, str]] = set()
    for src in sources:
        if src not in DDI_SOURCES:
            raise ValueError(f"unknown DDI source {src!r}; choose from {', '.join(DDI_SOURCES)}")
        rel, licence = DDI_SOURCES[src]
        if src == "safedrug":
            df = read_table(mappings._path(rel), ["atc3_a", "atc3_b"])
            for a, b, line in zip(df["atc3_a"], df["atc3_b"], df["_line"]):
                x, y = atc3(a), atc3(b)
                if x is None or y is None:
                    raise InputError(f"not an ATC3 pair: {a!r}, {b!r}", path=mappings._path(rel), line=int(line))
                if x != y:
                    rows.add((*_ordered(x, y), src, licence))
        else:
            for split in ("train", "valid", "test"):
                path = mappings._path(rel.replace("train", split))
                df = read_table(path, ["drugbank_id_1", "drugbank_id_2", "label"])
                pos = df[pd.to_numeric(df["label"], errors="coerce") == 1]
                for d1, d2 in zip(pos["drugbank_id_1"], pos["drugbank_id_2"]):
                    c1 = {a for c in mappings.drugbank_atc.get(d1, []) if (a := atc3(c))}
                    c2 = {a for c in mappings.drugbank_atc.get(d2, []) if (a := atc3(c))}
                    for x in c1:
                        for y in c2:
                            if x != y:
                                rows.add((*_ordered(x, y), src, licence))
    return pd.DataFrame(sorted(rows), columns=["atc3_a", "atc3_b", "source", "licence"])


def ddi_matrix(pairs: pd.DataFrame, vocab: Sequence[str]) -> np.ndarray:
    """Symmetric 0/1 matrix over ``vocab`` from a pairs table."""
    index = {c: i for i, c in enumerate(vocab)}
    m = np.zeros((len(vocab), len(vocab)), dtype=np.int8)
    for a, b in zip(pairs["atc3_a"], pairs["atc3_b"]):
        if a in index and b in index:
            m[index[a], index[b]] = m[index[b], index[a]] = 1
    return m


def interacting_pairs(drugs: Iterable[str], pairs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The interacting pairs within a set of ATC3 drugs, each with its source."""
    lookup = {(a, b): s for a, b, s in zip(pairs["atc3_a"], pairs["atc3_b"], pairs["source"])}
    out = []
    for x, y in combinations(sorted(set(drugs)), 2):
        if (x, y) in lookup:
            out.append((x, y, lookup[(x, y)]))
    return out
