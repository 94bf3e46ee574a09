"""Drug–drug interaction screening of a recommendation: interacting pairs among the recommended drugs
and between a recommended drug and one the patient takes now, from the cohort's DDI pairs
(``kgrec prepare --ddi-sources``) or, when the cohort has none, the graph's ``INTERACTS`` edges
(``cypher/ddi_check.cypher``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Lookup = dict[tuple[str, str], list[dict]]  # (atc3_a, atc3_b), a < b -> [{"source", "licence"}]


def cohort_lookup(ddi: Any) -> Lookup:
    """The cohort's DDI table (``atc3_a``, ``atc3_b``, ``source``, ``licence``) as a lookup."""
    out: Lookup = {}
    if ddi is not None:
        for a, b, s, lic in zip(ddi["atc3_a"], ddi["atc3_b"], ddi["source"], ddi["licence"]):
            out.setdefault((a, b), []).append({"source": s, "licence": lic})
    return out


def graph_lookup(store: Any, drugs: set[str]) -> Lookup:
    """The graph's interactions among ``drugs`` (one query)."""
    from kgrec.graph.queries import run_query

    out: Lookup = {}
    for r in run_query(store, "ddi_check", {"drugs": sorted(drugs)}):
        out.setdefault((r["drug_a"], r["drug_b"]), []).append({"source": r["source"], "licence": r["licence"]})
    return out


def ddi_warnings(recommended: Sequence[str], current: Sequence[str], lookup: Lookup, name: Callable[[str], str]) -> list[dict]:
    """Interacting pairs among the recommended drugs and between them and the current drugs."""
    out = []
    seen = set()
    rec = list(dict.fromkeys(recommended))
    pairs = [(a, b, "recommended") for i, a in enumerate(rec) for b in rec[i + 1:]]
    pairs += [(a, b, "current") for a in rec for b in current if a != b]
    for a, b, between in pairs:
        key = (a, b) if a < b else (b, a)
        if (key, between) in seen or key not in lookup:
            continue
        seen.add((key, between))
        out.append({
            "drug_a": a, "drug_a_name": name(a), "drug_b": b, "drug_b_name": name(b),
            "between": "recommended drugs" if between == "recommended" else "recommended and current drug",
            "sources": lookup[key],
            "message": f"{name(a)} ({a}) interacts with {'the current drug ' if between == 'current' else ''}{name(b)} ({b}) (source: {', '.join(s['source'] for s in lookup[key])})",
        })
    return out


__all__ = ["cohort_lookup", "ddi_warnings", "graph_lookup"]


def screenable_drugs(workspace, cohort: Any, drug_vocab: Sequence[str], lookup: Lookup) -> set[str]:
    """ATC classes a current drug can be screened as: the model's and the cohort's drugs, the DDI source's,
    and the graph's Drug nodes (``graph/tables/nodes/Drug.parquet``, read alone)."""
    from pathlib import Path

    known = set(drug_vocab) | set(cohort.vocab("drug")) | {d for pair in lookup for d in pair}
    drug_nodes = Path(workspace) / "graph" / "tables" / "nodes" / "Drug.parquet"
    if drug_nodes.exists():
        import pandas as pd

        known |= set(pd.read_parquet(drug_nodes, columns=["id"])["id"].astype(str))
    return known
