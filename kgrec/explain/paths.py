"""Rationale paths: graph paths from a visit's diagnoses to each recommended drug class, ranked.

:class:`PathFinder` runs the batched rationale queries ``cypher/explain_visit_*.cypher`` (a visit of
the workspace: the paths start at its Visit node) or ``cypher/explain_codes_*.cypher`` (a new
patient: they start at its diagnosis codes), one statement per path shape for all drugs at once,
then merges, groups and ranks what they return. Evidence kinds:

==================  ==========================================================================  ======
kind                path                                                                        weight
==================  ==========================================================================  ======
indication          code -MAPS_TO-> Disease <-INDICATION- Ingredient -IN_CLASS-> Drug           1.0 (treats), 0.9 (indication), 0.8 (palliates)
code_indication     code <-INDICATION_ICD- Ingredient -IN_CLASS-> Drug (MEDI)                   0.6 (high-precision subset), 0.3
trial               code -MAPS_TO-> Disease <-TARGETS- Trial -STUDIES-> Ingredient -IN_CLASS->   0.3
similar_patients    code <-HAS_DIAGNOSIS- Visit (other patient) -HAS_PRESCRIPTION-> Drug        0.15
literature          code -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication -MENTIONS_CHEMICAL->  (caution)
                    Chemical -SAME_AS-> Ingredient -IN_CLASS-> Drug
adverse             code -MAPS_TO-> Disease <-INDUCES- Chemical -SAME_AS-> Ingredient -IN_CLASS->  (caution)
==================  ==========================================================================  ======

The weights put curated knowledge first (an explanation should cite an indication before a
co-occurrence); the two other factors order paths within a kind and let a very specific,
well-supported path of a weaker kind pass a weak one of a stronger kind. A path that reaches its
disease or MEDI code through a related code (the ICD category, ``CODE_PARENT``, or a GEM
equivalent) has its weight multiplied by 0.8.

**Score** (documented, deterministic)::

    score = weight(kind) × specificity × (1 + log10 min(support, 10))

* ``specificity`` ∈ (0, 1]: the geometric mean, over the intermediate nodes ``n`` (every node
  strictly between the visit's own diagnosis code and the drug, except the trial or publication
  the path is grouped over), of ``1 / (1 + ln d(n))``, where ``d(n)`` is the number of
  relationships at ``n`` of the two types the path uses there (e.g. a disease on a
  MAPS_TO/INDICATION path: its MAPS_TO plus its INDICATION edges). A disease that half the
  pharmacopoeia treats says less about one drug than an ingredient with one indication. For
  similar patients it is ``max(0, 1 - base_rate / confidence)``: ``confidence`` = the share of the
  other visits with the code that received the drug, ``base_rate`` = the share of all visits that
  did (a drug given to everyone says nothing about the code; one given 3 times as often with the
  code as without scores 0.67). Degrees are counted on the workspace's graph tables
  (``<workspace>/graph/tables``); without them specificity is 1.
* ``support``: for indications, the number of distinct sources asserting the evidence edge
  (PharmacotherapyDB and DrugCentral agreeing count 2); for trials and literature, the number of
  trials / abstracts behind the same code -> disease -> ingredient -> drug chain (one is shown, the
  others are listed as ``examples``); for similar patients, the number of other patients' visits.

Paths that differ only in a parallel edge (the same nodes, one relationship asserted by two sources)
are merged: each step keeps every (source, licence) that asserts it. The literature source, BC5CDR,
is a corpus of chemical-*induced* diseases: ``adverse`` paths (it reports that an ingredient of the
drug induces a disease of the visit) and ``literature`` co-mentions are never support; they are
returned apart, as cautions (adverse first).

**No silent caps.** Trial and literature chains are aggregated by the store (``support`` counted
there over every trial or abstract, ordered best supported first); each statement's LIMIT is a safety
net, and a family whose statement returned that many rows is listed in ``DrugEvidence.incomplete``.
After ranking, at most ``max_paths_per_drug`` paths and cautions are kept per drug; the others are
counted per kind in ``DrugEvidence.dropped`` (and still counted in ``counts()``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kgrec.explain.evidence import CAUTION_KINDS, GROUPED_LABELS, DrugEvidence, EvidencePath, Node, Step
from kgrec.explain.rows import from_row, group, merge_steps
from kgrec.graph.queries import Query, load_query

FAMILIES = ("indication", "trial", "literature", "similar")
KIND_ORDER = ("indication", "code_indication", "trial", "similar_patients", "literature", "adverse")
BASE_WEIGHT = {"trial": 0.3, "similar_patients": 0.15, "literature": 0.1, "adverse": 1.0}
INDICATION_WEIGHT = {"treats": 1.0, "indication": 0.9, "palliates": 0.8}
RELATED_CODE_FACTOR = 0.8
MAX_PATHS_PER_DRUG = 100  # paths (and cautions) kept per drug after ranking; the rest are counted
_REVERSE_GEM = re.compile(r"<-\[\w*:GEM\]-")
_LIMIT = re.compile(r"\bLIMIT\s+(\d+)\s*;?\s*$", re.IGNORECASE)


class Degrees:
    """Per-node relationship counts by type, from the workspace's graph tables (for specificity)."""

    def __init__(self, tables_dir: Path | None):
        self.tables_dir = Path(tables_dir) if tables_dir else None
        self._by_type: dict[str, dict[str, int]] = {}
        self.available = bool(self.tables_dir and (self.tables_dir / "edges").is_dir())

    def _counts(self, rel: str) -> dict[str, int]:
        if rel not in self._by_type:
            counts: dict[str, int] = {}
            path = self.tables_dir / "edges" / f"{rel}.parquet" if self.available else None
            if path is not None and path.exists():
                import pyarrow as pa
                import pyarrow.compute as pc
                import pyarrow.parquet as pq

                t = pq.read_table(path, columns=["src", "dst"])
                if t.num_rows:
                    vc = pc.value_counts(pa.chunked_array(t.column("src").chunks + t.column("dst").chunks))
                    counts = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))  # one pass, columnar
            self._by_type[rel] = counts
        return self._by_type[rel]

    def edges(self, rel: str) -> int:
        """How many relationships of a type there are."""
        return sum(self._counts(rel).values()) // 2

    def degree(self, node_id: str, rels: Iterable[str]) -> int:
        return sum(self._counts(r).get(node_id, 0) for r in set(rels))

    def warm(self, rels: Iterable[str]) -> None:
        for r in rels:
            self._counts(r)


WARM_RELS = ("HAS_DIAGNOSIS", "HAS_PRESCRIPTION", "HAS_VISIT", "MAPS_TO", "INDICATION", "IN_CLASS", "INDICATION_ICD", "CODE_PARENT", "GEM", "TARGETS", "STUDIES",
             "MENTIONS_DISEASE", "MENTIONS_CHEMICAL", "SAME_AS", "INDUCES")


class PathFinder:
    """Finds and ranks rationale paths in a graph store.

    Args:
        store: an open :class:`~kgrec.graph.stores.GraphStore` (embedded or Neo4j).
        tables_dir: the workspace's ``graph/tables`` (node degrees for specificity); None: specificity 1.
        families: which query families to run (``indication``, ``trial``, ``literature``, ``similar``).
    """

    def __init__(self, store: Any, tables_dir: Path | str | None = None, families: Sequence[str] = FAMILIES, max_paths_per_drug: int = MAX_PATHS_PER_DRUG):
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown path families {sorted(unknown)}: choose from {', '.join(FAMILIES)}")
        self.store = store
        self.families = tuple(families)
        self.max_paths_per_drug = int(max_paths_per_drug)
        dialect = getattr(store, "dialect", None)
        self.visit_queries: dict[str, Query] = {f: load_query(f"explain_visit_{f}", dialect) for f in self.families}
        self.code_queries: dict[str, Query] = {f: load_query(f"explain_codes_{f}", dialect) for f in self.families}
        self.degrees = Degrees(tables_dir)
        if self.degrees.available:
            self.degrees.warm(WARM_RELS)

    # ------------------------------------------------------------------ running
    def _run(self, queries: dict[str, Query], params: dict[str, Any], codes: Sequence[str]) -> tuple[list[dict], list[str]]:
        """Rows of every statement, and the families of which a statement returned its LIMIT of rows
        (rows may be missing there: the result says so)."""
        has_icd10 = any(c.startswith("ICD10CM:") for c in codes)
        rows: list[dict] = []
        capped: list[str] = []
        for fam, q in queries.items():
            bound = q.bind({k: v for k, v in params.items() if f"${k}" in q.text})
            for stmt in q.statements:
                if _REVERSE_GEM.search(stmt) and not has_icd10:
                    continue  # the ICD-10 -> ICD-9 GEM route finds nothing for a visit without ICD-10 codes
                used = {k: v for k, v in bound.items() if f"${k}" in stmt}
                got = self.store.query(stmt, used)
                limit = _LIMIT.search(stmt)
                if limit and len(got) >= int(limit.group(1)) and fam not in capped:
                    capped.append(fam)
                for r in got:
                    r.setdefault("_family", fam)
                    rows.append(r)
        return rows, capped

    def for_visit(self, visit_id: str, drugs: Sequence[str], codes: Sequence[str] = (), own_visits: Sequence[str] = ()) -> dict[str, DrugEvidence]:
        """Paths for a Visit node of the graph (``mimic3:100375``) to each of ``drugs``. ``codes``: the
        visit's diagnosis codes (only used to skip statements that cannot match); ``own_visits``: the
        patient's Visit ids, left out of the similar patients (the visit itself always is)."""
        if not drugs:
            return {}
        own = list(dict.fromkeys([visit_id, *own_visits]))
        rows, capped = self._run(self.visit_queries, {"visit_id": visit_id, "drugs": list(drugs), "own": own}, codes)
        return self._rank(rows, drugs, capped)

    def for_codes(self, codes: Sequence[str], drugs: Sequence[str], own_visits: Sequence[str] = ()) -> dict[str, DrugEvidence]:
        """Paths from diagnosis codes (a new patient) to each of ``drugs``; ``own_visits`` (Visit ids
        of a known patient) are not counted as similar patients."""
        dx = [c for c in codes if c]
        if not drugs or not dx:
            return {d: DrugEvidence(d) for d in drugs}
        rows, capped = self._run(self.code_queries, {"codes": dx, "drugs": list(drugs), "own": list(own_visits)}, dx)
        return self._rank(rows, drugs, capped)

    # ------------------------------------------------------------------ assembling
    def _rank(self, rows: list[dict], drugs: Sequence[str], capped: Sequence[str] = ()) -> dict[str, DrugEvidence]:
        merged: dict[tuple, EvidencePath] = {}
        for r in rows:
            p = from_row(r)
            if p is None:
                continue
            k = p.key()
            if k in merged:
                merge_steps(merged[k], p)
            else:
                merged[k] = p
        out = {d: DrugEvidence(d, incomplete=list(capped)) for d in drugs}
        for p in group(merged.values()):
            self._score(p)
            ev = out.setdefault(p.drug, DrugEvidence(p.drug, incomplete=list(capped)))
            (ev.cautions if p.kind in CAUTION_KINDS else ev.paths).append(p)
        for ev in out.values():
            ev.paths.sort(key=lambda p: (-p.score, KIND_ORDER.index(p.kind) if p.kind in KIND_ORDER else 99, [s.type for s in p.steps], [n.id for n in p.nodes]))
            ev.cautions.sort(key=lambda p: (-p.score, [n.id for n in p.nodes]))
            ev.paths = self._cap(ev, ev.paths)
            ev.cautions = self._cap(ev, ev.cautions)
        return out

    def _cap(self, ev: DrugEvidence, paths: list[EvidencePath]) -> list[EvidencePath]:
        """The best ``max_paths_per_drug`` (after ranking); the rest counted in ``ev.dropped`` by kind."""
        for p in paths[self.max_paths_per_drug:]:
            ev.dropped[p.kind] = ev.dropped.get(p.kind, 0) + 1
        return paths[: self.max_paths_per_drug]

    def _score(self, p: EvidencePath) -> None:
        p.weight = _weight(p)
        spec = 1.0
        if self.degrees.available:
            first = next((i for i, n in enumerate(p.nodes) if n.label == "DiagnosisCode"), 0)
            if p.kind == "similar_patients":
                with_code = self.degrees.degree(p.nodes[first].id, ("HAS_DIAGNOSIS",)) - (1 if first > 0 else 0)
                confidence = p.support / max(with_code, p.support, 1)
                n_visits = self.degrees.edges("HAS_VISIT")
                base = self.degrees.degree(p.drug, ("HAS_PRESCRIPTION",)) / n_visits if n_visits else 0.0
                spec = max(0.0, 1.0 - base / confidence) if confidence > 0 else 0.0
                p.extra["confidence"] = round(confidence, 3)
                p.extra["base_rate"] = round(base, 3)
            else:
                logs = []
                for i in range(first + 1, len(p.nodes) - 1):
                    n = p.nodes[i]
                    if n.label in GROUPED_LABELS:
                        continue
                    d = self.degrees.degree(n.id, (p.steps[i - 1].type, p.steps[i].type))
                    logs.append(math.log(1.0 + math.log(max(d, 1))))
                spec = math.exp(-sum(logs) / len(logs)) if logs else 1.0
        p.specificity = spec
        p.score = p.weight * spec * (1.0 + math.log10(min(max(p.support, 1), 10)))


def select(paths: Sequence[EvidencePath], n: int) -> list[EvidencePath]:
    """The best ``n`` paths, diverse first: at most one per (kind, diagnosis code) until every such
    group has one, then the rest by score (three ingredients of one class for one code say less
    than three different reasons)."""
    first, rest, seen = [], [], set()
    for p in paths:
        key = (p.kind, p.code.id if p.code else "")
        (rest if key in seen else first).append(p)
        seen.add(key)
    return (first + rest)[:n]


def _weight(p: EvidencePath) -> float:
    related = _via_related_code(p)
    factor = RELATED_CODE_FACTOR if related else 1.0
    if p.kind == "indication":
        kinds = [e.get("kind") for st in p.steps if st.type == "INDICATION" for e in st.evidence]
        return factor * max((INDICATION_WEIGHT.get(k, 0.9) for k in kinds), default=0.9)
    if p.kind == "code_indication":
        hp = [e.get("high_precision") for st in p.steps if st.type == "INDICATION_ICD" for e in st.evidence]
        return factor * (0.6 if any(hp) else 0.3)  # MEDI outside its high-precision subset is often wrong
    return factor * BASE_WEIGHT.get(p.kind, 0.3)


def _via_related_code(p: EvidencePath) -> bool:
    return any(st.type in ("CODE_PARENT", "GEM") for st in p.steps)


__all__ = ["FAMILIES", "DrugEvidence", "EvidencePath", "Node", "PathFinder", "Step", "select"]
