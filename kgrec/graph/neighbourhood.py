"""Drugs the graph links to a diagnosis code: the knowledge a first visit can lean on.

For a diagnosis code, the evidence paths are (each counted once per ingredient or trial):

- indication: code -MAPS_TO-> Disease <-INDICATION(treats|palliates)- Ingredient -IN_CLASS-> Drug
- MEDI: code <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug
- trials: code -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS-> Drug

ICD-10 codes reach MAPS_TO through their ICD-9 GEM partners as well, and codes without a mapping of
their own borrow their three-character category's (CODE_PARENT). The result is a sparse
code x drug count matrix: a graph prior over the drug vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from kgrec.graph.tables import GraphTables

PATHS = ("indication", "medi", "trial")


def _edges(tables: GraphTables, name: str) -> pd.DataFrame:
    df = tables.edges.get(name)
    if df is None or df.empty:
        return pd.DataFrame(columns=["src", "dst"])
    return df


def code_drug_evidence(tables: GraphTables) -> pd.DataFrame:
    """Long table ``code, drug, path, n`` (n = number of distinct ingredients/trials supporting it)."""
    in_class = _edges(tables, "IN_CLASS")[["src", "dst"]].rename(columns={"src": "ingredient", "dst": "drug"}).drop_duplicates()
    maps = _edges(tables, "MAPS_TO")[["src", "dst"]].rename(columns={"src": "code", "dst": "disease"})
    gem = _edges(tables, "GEM")[["src", "dst"]].rename(columns={"src": "icd9", "dst": "code"})
    # ICD-10 codes inherit the diseases of their ICD-9 GEM partners
    maps10 = gem.merge(maps.rename(columns={"code": "icd9"}), on="icd9")[["code", "disease"]]
    maps = pd.concat([maps, maps10]).drop_duplicates()
    parts = []
    ind = _edges(tables, "INDICATION")
    if len(ind):
        if "kind" in ind:
            ind = ind[ind["kind"].astype(str) != "non_indication"]
        ind = ind[["src", "dst"]].rename(columns={"src": "ingredient", "dst": "disease"}).drop_duplicates()
        p = maps.merge(ind, on="disease").merge(in_class, on="ingredient")
        parts.append(p.groupby(["code", "drug"])["ingredient"].nunique().rename("n").reset_index().assign(path="indication"))
    medi = _edges(tables, "INDICATION_ICD")
    if len(medi):
        m = medi[["src", "dst"]].rename(columns={"src": "ingredient", "dst": "code"}).merge(in_class, on="ingredient")
        parts.append(m.groupby(["code", "drug"])["ingredient"].nunique().rename("n").reset_index().assign(path="medi"))
    tgt, stu = _edges(tables, "TARGETS"), _edges(tables, "STUDIES")
    if len(tgt) and len(stu):
        t = maps.merge(tgt[["src", "dst"]].rename(columns={"src": "trial", "dst": "disease"}), on="disease")
        t = t.merge(stu[["src", "dst"]].rename(columns={"src": "trial", "dst": "ingredient"}), on="trial").merge(in_class, on="ingredient")
        parts.append(t.groupby(["code", "drug"])["trial"].nunique().rename("n").reset_index().assign(path="trial"))
    if not parts:
        return pd.DataFrame(columns=["code", "drug", "path", "n"])
    ev = pd.concat(parts, ignore_index=True)
    # codes without evidence borrow their category's
    parent = _edges(tables, "CODE_PARENT")[["src", "dst"]].rename(columns={"src": "code", "dst": "parent"})
    have = set(ev["code"])
    orphans = parent[~parent["code"].isin(have) & parent["parent"].isin(have)]
    if len(orphans):
        inherited = orphans.merge(ev.rename(columns={"code": "parent"}), on="parent").drop(columns="parent")
        ev = pd.concat([ev, inherited], ignore_index=True)
    return ev[["code", "drug", "path", "n"]]


def workspace_evidence(tables_folder: Path | str) -> pd.DataFrame:
    """:func:`code_drug_evidence` of the graph tables saved in ``tables_folder``, kept per process for the
    same tables (:func:`kgrec.graph.tables.per_tables`): K-fold CV and the pooled step fit a student per
    fold over one graph (1 s a fit on the real graph). Treat the frame as read-only."""
    from kgrec.graph.tables import per_tables

    return per_tables(tables_folder, "code-drug evidence", lambda: code_drug_evidence(GraphTables.load(tables_folder)))


def prior_matrix(evidence: pd.DataFrame, codes: Sequence[str], drugs: Sequence[str]) -> sparse.csr_matrix:
    """(len(codes), len(drugs)) matrix of log(1 + supporting paths), summed over path kinds."""
    ci = {c: i for i, c in enumerate(codes)}
    di = {d: j for j, d in enumerate(drugs)}
    ev = evidence[evidence["code"].isin(ci) & evidence["drug"].isin(di)]
    if ev.empty:
        return sparse.csr_matrix((len(codes), len(drugs)), dtype=np.float32)
    g = ev.groupby(["code", "drug"])["n"].sum().reset_index()
    rows = g["code"].map(ci).to_numpy()
    cols = g["drug"].map(di).to_numpy()
    vals = np.log1p(g["n"].to_numpy(dtype=np.float32))
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(codes), len(drugs)), dtype=np.float32)
