"""The evidence objects of a rationale: :class:`Node`, :class:`Step` (one relationship, every source
asserting it), :class:`EvidencePath` (a scored path from the visit to a drug) and :class:`DrugEvidence`
(a drug's paths and cautions, and what was cut)."""

from __future__ import annotations

from dataclasses import dataclass, field

# BC5CDR (the literature source) annotates chemical-*induced* diseases: a co-mention of a drug and a
# disease there is no reason to give the drug. Such paths are cautions, never support.
CAUTION_KINDS = ("adverse", "literature")
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
    counted_by_store: bool = False  # support counted by the store's aggregation (not regrouped here)

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

    @property
    def evidence_class(self) -> str:
        """How strong the link is, in words a clinician can weigh: ``curated indication``
        (PharmacotherapyDB, DrugCentral, MEDI's high-precision subset), ``mined association`` (MEDI
        outside its high-precision subset: text-mined, often wrong), ``co-prescription`` (other
        patients' visits), ``clinical trial``, ``literature (caution)``."""
        if self.kind == "indication":
            return "curated indication"
        if self.kind == "code_indication":
            hp = [e.get("high_precision") for st in self.steps if st.type == "INDICATION_ICD" for e in st.evidence]
            return "curated indication" if any(h is True for h in hp) else "mined association"
        return {"similar_patients": "co-prescription", "trial": "clinical trial"}.get(self.kind, "literature (caution)")

    def to_dict(self) -> dict:
        return {
            "drug": self.drug,
            "kind": self.kind,
            "evidence_class": self.evidence_class,
            "score": round(self.score, 4),
            "score_parts": {"weight": round(self.weight, 3), "specificity": round(self.specificity, 4), "support": self.support},
            "support": self.support,
            "examples": list(self.examples),
            "nodes": [n.to_dict() for n in self.nodes],
            "steps": [s.to_dict() for s in self.steps],
            "text": self.text(),
            **({"extra": self.extra} if self.extra else {}),
        }


STRENGTH = {"curated indication": 0, "clinical trial": 1, "co-prescription": 1, "mined association": 2, "literature (caution)": 3}


def by_strength(paths: list[EvidencePath]) -> list[EvidencePath]:
    """``paths`` with curated indications first and mined (low-precision) associations last; within a
    class the given (faithful) order is kept."""
    return sorted(paths, key=lambda p: STRENGTH.get(p.evidence_class, 2))


def _label(n: Node) -> str:
    return f"{n.label}:{n.id}" + (f" ({n.name})" if n.name else "")


@dataclass
class DrugEvidence:
    """Everything the graph says about one drug for one visit: ranked paths and cautions."""

    drug: str
    paths: list[EvidencePath] = field(default_factory=list)
    cautions: list[EvidencePath] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # kind -> paths cut by the per-drug cap (after ranking)
    incomplete: list[str] = field(default_factory=list)  # families whose statement returned its LIMIT of rows

    def counts(self) -> dict[str, int]:
        """Supporting paths per kind (before the per-drug cap: what the graph holds)."""
        return _count(self.paths, self.dropped, CAUTION_KINDS, keep=False)

    def caution_counts(self) -> dict[str, int]:
        return _count(self.cautions, self.dropped, CAUTION_KINDS, keep=True)

    def cut(self) -> dict:
        """What was left out, or {} when nothing was: ``{"dropped": {kind: n}, "row_limit_hit": [family]}``."""
        out: dict = {}
        if self.dropped:
            out["dropped"] = dict(self.dropped)
        if self.incomplete:
            out["row_limit_hit"] = list(self.incomplete)
        return out


def _count(paths: list[EvidencePath], dropped: dict[str, int], kinds: tuple[str, ...], keep: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in paths:
        out[p.kind] = out.get(p.kind, 0) + 1
    for k, n in dropped.items():
        if (k in kinds) == keep:
            out[k] = out.get(k, 0) + n
    return out



__all__ = ["CAUTION_KINDS", "GROUPED_LABELS", "MAX_EXAMPLES", "DrugEvidence", "EvidencePath", "Node", "Step"]
