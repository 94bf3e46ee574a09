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
literature          code -MAPS_TO-> Disease <-MENTIONS_DISEASE- Publication -MENTIONS_CHEMICAL->  0.1
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
are merged: each step keeps every (source, licence) that asserts it. ``adverse`` paths (the
literature reports that an ingredient of the drug induces a disease of the visit) are not support:
they are returned apart, as cautions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec.graph.queries import Query, load_query

FAMILIES = ("indication", "trial", "literature", "similar")
KIND_ORDER = ("indication", "code_indication", "trial", "similar_patients", "literature")
BASE_WEIGHT = {"trial": 0.3, "similar_patients": 0.15, "literature": 0.1, "adverse": 1.0}
INDICATION_WEIGHT = {"treats": 1.0, "indication": 0.9, "palliates": 0.8}
RELATED_CODE_FACTOR = 0.8
GROUPED_LABELS = ("Trial", "Publication")  # paths differing only in this node are one grouped path
MAX_EXAMPLES = 5


@dataclass
class Node:
    id: str
    label: str
    name: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "name": self.name}


@dataclass
class Step:
    """One relationship of a path, between ``nodes[i]`` and ``nodes[i + 1]``.

    ``forward``: the relationship points from ``nodes[i]`` to ``nodes[i + 1]``. ``evidence``: every
    (source, licence, properties) asserting it (parallel edges merged); ``source``/``licence`` are the
    first's."""

    type: str
    forward: bool
    evidence: list[dict] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.evidence[0].get("source", "") if self.evidence else ""

    @property
    def licence(self) -> str:
        return self.evidence[0].get("licence", "") if self.evidence else ""

    @property
    def sources(self) -> list[str]:
        return sorted({e.get("source", "") for e in self.evidence})

    def to_dict(self) -> dict:
        return {"type": self.type, "forward": self.forward, "source": self.source, "licence": self.licence, "evidence": self.evidence}


@dataclass
class EvidencePath:
    """A ranked rationale path from the visit (or a diagnosis code) to ``drug``."""

    drug: str
    kind: str
    nodes: list[Node]
    steps: list[Step]
    support: int = 1
    examples: list[str] = field(default_factory=list)  # other trials / abstracts / visits behind it
    weight: float = 0.0
    specificity: float = 1.0
    score: float = 0.0
    extra: dict = field(default_factory=dict)  # e.g. n_patients for similar patients

    @property
    def code(self) -> Node | None:
        """The visit's own diagnosis code the path leaves from."""
        return next((n for n in self.nodes if n.label == "DiagnosisCode"), None)

    def node(self, label: str, nth: int = 0) -> Node | None:
        found = [n for n in self.nodes if n.label == label]
        return found[nth] if len(found) > nth else None

    @property
    def entity_ids(self) -> set[str]:
        return {n.id for n in self.nodes}

    def key(self) -> tuple:
        return (self.drug, self.kind, tuple(n.id for n in self.nodes))

    def text(self) -> str:
        """Compact one-line form: ``ICD9CM:4019 -MAPS_TO-> DOID:10763 <-INDICATION- DB00722 -IN_CLASS-> C09A``."""
        out = [_label(self.nodes[0])]
        for st, n in zip(self.steps, self.nodes[1:]):
            out.append(f"-{st.type}->" if st.forward else f"<-{st.type}-")
            out.append(_label(n))
        return " ".join(out)

    def to_dict(self) -> dict:
        return {
            "drug": self.drug,
            "kind": self.kind,
            "score": round(self.score, 4),
            "score_parts": {"weight": round(self.weight, 3), "specificity": round(self.specificity, 4), "support": self.support},
            "support": self.support,
            "examples": list(self.examples),
            "nodes": [n.to_dict() for n in self.nodes],
            "steps": [s.to_dict() for s in self.steps],
            "text": self.text(),
            **({"extra": self.extra} if self.extra else {}),
        }


def _label(n: Node) -> str:
    return f"{n.label}:{n.id}" + (f" ({n.name})" if n.name else "")


@dataclass
class DrugEvidence:
    """Everything the graph says about one drug for one visit: ranked paths and cautions."""

    drug: str
    paths: list[EvidencePath] = field(default_factory=list)
    cautions: list[EvidencePath] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.paths:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


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
                import pyarrow.compute as pc
                import pyarrow.parquet as pq

                t = pq.read_table(path, columns=["src", "dst"])
                for col in ("src", "dst"):
                    vc = pc.value_counts(t.column(col)).to_pylist()
                    for item in vc:
                        counts[item["values"]] = counts.get(item["values"], 0) + int(item["counts"])
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

    def __init__(self, store: Any, tables_dir: Path | str | None = None, families: Sequence[str] = FAMILIES):
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown path families {sorted(unknown)}: choose from {', '.join(FAMILIES)}")
        self.store = store
        self.families = tuple(families)
        dialect = getattr(store, "dialect", None)
        self.visit_queries: dict[str, Query] = {f: load_query(f"explain_visit_{f}", dialect) for f in self.families}
        self.code_queries: dict[str, Query] = {f: load_query(f"explain_codes_{f}", dialect) for f in self.families}
        self.degrees = Degrees(tables_dir)
        if self.degrees.available:
            self.degrees.warm(WARM_RELS)

    # ------------------------------------------------------------------ running
    def _run(self, queries: dict[str, Query], params: dict[str, Any], codes: Sequence[str]) -> list[dict]:
        has_icd10 = any(c.startswith("ICD10CM:") for c in codes)
        rows: list[dict] = []
        for fam, q in queries.items():
            bound = q.bind({k: v for k, v in params.items() if f"${k}" in q.text})
            for stmt in q.statements:
                if _REVERSE_GEM.search(stmt) and not has_icd10:
                    continue  # the ICD-10 -> ICD-9 GEM route finds nothing for a visit without ICD-10 codes
                used = {k: v for k, v in bound.items() if f"${k}" in stmt}
                for r in self.store.query(stmt, used):
                    r.setdefault("_family", fam)
                    rows.append(r)
        return rows

    def for_visit(self, visit_id: str, drugs: Sequence[str], codes: Sequence[str] = (), own_visits: Sequence[str] = ()) -> dict[str, DrugEvidence]:
        """Paths for a Visit node of the graph (``mimic3:100375``) to each of ``drugs``. ``codes``: the
        visit's diagnosis codes (only used to skip statements that cannot match); ``own_visits``: the
        patient's Visit ids, left out of the similar patients (the visit itself always is)."""
        if not drugs:
            return {}
        own = list(dict.fromkeys([visit_id, *own_visits]))
        rows = self._run(self.visit_queries, {"visit_id": visit_id, "drugs": list(drugs), "own": own}, codes)
        return self._rank(rows, drugs, start_label="Visit")

    def for_codes(self, codes: Sequence[str], drugs: Sequence[str], own_visits: Sequence[str] = ()) -> dict[str, DrugEvidence]:
        """Paths from diagnosis codes (a new patient) to each of ``drugs``; ``own_visits`` (Visit ids
        of a known patient) are not counted as similar patients."""
        dx = [c for c in codes if c]
        if not drugs or not dx:
            return {d: DrugEvidence(d) for d in drugs}
        rows = self._run(self.code_queries, {"codes": dx, "drugs": list(drugs), "own": list(own_visits)}, dx)
        return self._rank(rows, drugs, start_label="DiagnosisCode")

    # ------------------------------------------------------------------ assembling
    def _rank(self, rows: list[dict], drugs: Sequence[str], start_label: str) -> dict[str, DrugEvidence]:
        merged: dict[tuple, EvidencePath] = {}
        for r in rows:
            if "shape" in r:
                p = _from_columns(r)
            elif "path" in r:
                p = _from_path(r)
            else:
                p = _from_similar(r)
            if p is None:
                continue
            k = p.key()
            if k in merged:
                _merge_steps(merged[k], p)
            else:
                merged[k] = p
        grouped = _group(merged.values())
        out = {d: DrugEvidence(d) for d in drugs}
        for p in grouped:
            self._score(p)
            ev = out.setdefault(p.drug, DrugEvidence(p.drug))
            (ev.cautions if p.kind == "adverse" else ev.paths).append(p)
        for ev in out.values():
            ev.paths.sort(key=lambda p: (-p.score, KIND_ORDER.index(p.kind) if p.kind in KIND_ORDER else 99, [s.type for s in p.steps], [n.id for n in p.nodes]))
            ev.cautions.sort(key=lambda p: (-p.score, [n.id for n in p.nodes]))
        return out

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


def _from_path(r: dict) -> EvidencePath | None:
    path = r.get("path")
    if not isinstance(path, dict) or not path.get("nodes"):
        return None
    raw_nodes = path["nodes"]
    nodes = [Node(str(n.get("id")), str(n.get("_label", "")), str(n.get("name") or n.get("title") or "")) for n in raw_nodes]
    steps = []
    for i, rel in enumerate(path.get("relationships", [])):
        props = {k: v for k, v in rel.items() if not k.startswith("_")}
        forward = rel.get("_start") == nodes[i].id if i < len(nodes) else True
        steps.append(Step(str(rel.get("_type", "")), forward, [props]))
    if len(steps) != len(nodes) - 1:
        return None
    return EvidencePath(drug=str(r.get("drug") or nodes[-1].id), kind=str(r.get("kind") or r.get("_family")), nodes=nodes, steps=steps)


_SHAPES: dict[str, tuple[list[str], list[tuple[str, bool]]]] = {}


def _shape(shape: str) -> tuple[list[str], list[tuple[str, bool]]]:
    """``'Visit -HAS_DIAGNOSIS-> DiagnosisCode <-GEM- DiagnosisCode'`` -> labels, [(type, forward)]."""
    if shape not in _SHAPES:
        parts = shape.split()
        labels = parts[0::2]
        rels = [(a.strip("<->"), a.endswith("->")) for a in parts[1::2]]
        if len(labels) != len(rels) + 1:
            raise ValueError(f"bad path shape {shape!r}")
        _SHAPES[shape] = (labels, rels)
    return _SHAPES[shape]


def _from_columns(r: dict) -> EvidencePath | None:
    """A path from the scalar columns of an explain_* statement (see the files' headers)."""
    labels, rels = _shape(str(r["shape"]))
    nodes = [Node(str(r.get(f"n{i}")), lab, str(r.get(f"m{i}") or "")) for i, lab in enumerate(labels)]
    keys = tuple(r)
    extras = _EXTRAS.get(keys)
    if extras is None:  # r<j>_<property> columns, parsed once per statement's column list
        extras = _EXTRAS[keys] = [(k, int(k[1:k.index("_")]), k[k.index("_") + 1:]) for k in keys if k[0] == "r" and "_" in k and k[1:k.index("_")].isdigit()]
    evs = [{"source": r.get(f"s{j}"), "licence": r.get(f"l{j}")} for j in range(len(rels))]
    for k, j, prop in extras:
        if r[k] is not None:
            evs[j][prop] = r[k]
    steps = [Step(typ, fwd, [{k: v for k, v in ev.items() if v is not None}]) for (typ, fwd), ev in zip(rels, evs)]
    return EvidencePath(drug=str(r.get("drug") or nodes[-1].id), kind=str(r.get("kind")), nodes=nodes, steps=steps)


_EXTRAS: dict[tuple, list[tuple[str, int, str]]] = {}
_REVERSE_GEM = re.compile(r"<-\[\w*:GEM\]-")


def _from_similar(r: dict) -> EvidencePath | None:
    """Assemble the similar-patients path from the aggregated row (see explain_*_similar.cypher)."""
    if not r.get("drug") or not r.get("code") or not r.get("example"):
        return None

    def ev(key: str) -> list[dict]:
        out = []
        for pair in r.get(key) or []:
            src, _, lic = str(pair).partition("|")
            out.append({"source": src, "licence": lic})
        return out

    code = Node(str(r["code"]), "DiagnosisCode", str(r.get("code_name") or ""))
    other = Node(str(r["example"]), "Visit", "")
    drug = Node(str(r["drug"]), "Drug", str(r.get("drug_name") or ""))
    nodes, steps = [code, other, drug], [Step("HAS_DIAGNOSIS", False, ev("r1")), Step("HAS_PRESCRIPTION", True, ev("r2"))]
    if r.get("visit"):
        nodes.insert(0, Node(str(r["visit"]), "Visit", ""))
        steps.insert(0, Step("HAS_DIAGNOSIS", True, ev("r0")))
    n = int(r.get("n_visits") or 1)
    return EvidencePath(drug=drug.id, kind="similar_patients", nodes=nodes, steps=steps, support=n, extra={"n_visits": n})


def _merge_steps(into: EvidencePath, other: EvidencePath) -> None:
    for a, b in zip(into.steps, other.steps):
        for e in b.evidence:
            if e not in a.evidence:
                a.evidence.append(e)


def _group(paths: Iterable[EvidencePath]) -> list[EvidencePath]:
    """Paths that differ only in their trial or publication become one path (support = how many);
    otherwise support = the number of sources asserting the evidence edge."""
    groups: dict[tuple, list[EvidencePath]] = {}
    out = []
    for p in paths:
        idx = next((i for i, n in enumerate(p.nodes) if n.label in GROUPED_LABELS), None)
        if idx is None or p.kind == "similar_patients":
            if p.kind in ("indication", "code_indication"):
                ev_type = "INDICATION" if p.kind == "indication" else "INDICATION_ICD"
                p.support = max(1, len({e.get("source") for st in p.steps if st.type == ev_type for e in st.evidence}))
            elif p.kind == "adverse":
                p.support = max(1, len({e.get("pmid") for st in p.steps if st.type == "INDUCES" for e in st.evidence}))
            out.append(p)
            continue
        key = (p.drug, p.kind, tuple(n.id if i != idx else "*" for i, n in enumerate(p.nodes)))
        groups.setdefault(key, []).append(p)
    for members in groups.values():
        idx = next(i for i, n in enumerate(members[0].nodes) if n.label in GROUPED_LABELS)
        members.sort(key=lambda p: p.nodes[idx].id)
        rep = members[0]
        ids = [m.nodes[idx].id for m in members]
        rep.support = len(set(ids))
        rep.examples = ids[1 : 1 + MAX_EXAMPLES]
        for m in members[1:]:
            # the parallel-edge evidence of the shared steps (not the grouped node's own edges)
            for i, (a, b) in enumerate(zip(rep.steps, m.steps)):
                if i not in (idx - 1, idx):
                    for e in b.evidence:
                        if e not in a.evidence:
                            a.evidence.append(e)
        out.append(rep)
    return out


__all__ = ["FAMILIES", "DrugEvidence", "EvidencePath", "Node", "PathFinder", "Step", "select"]
