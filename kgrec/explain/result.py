"""What :func:`kgrec.explain.recommend.recommend` returns: :class:`Recommendation` (``to_dict()`` is the
``--json`` / HTTP form) holding one :class:`RecommendedDrug` per drug."""

from __future__ import annotations

from dataclasses import dataclass, field

from kgrec.explain.attribution import Attribution
from kgrec.explain.evidence import EvidencePath

@dataclass
class RecommendedDrug:
    rank: int
    drug: str
    name: str
    probability: float
    above_threshold: bool
    paths: list[EvidencePath] = field(default_factory=list)
    cautions: list[EvidencePath] = field(default_factory=list)
    n_paths: int = 0
    evidence_counts: dict = field(default_factory=dict)
    caution_counts: dict = field(default_factory=dict)
    cut: dict = field(default_factory=dict)  # what the per-drug cap or a statement's row limit left out
    rationale: str = ""
    attribution: Attribution | None = None  # each input's contribution to this drug's score
    reasons: list[dict] = field(default_factory=list)  # the strongest reasons and whether a path starts there
    evidence_gap: str = ""  # "no graph evidence for the strongest reasons: ..." or ""
    current: bool = False  # the patient takes it now (listed only with include_current)
    prescribed: bool | None = None  # a workspace visit: was it prescribed at that visit (None for a new patient)

    def to_dict(self) -> dict:
        return {
            "rank": self.rank, "drug": self.drug, "name": self.name, "probability": round(float(self.probability), 4),
            "above_threshold": self.above_threshold, "current": self.current, **({"prescribed": self.prescribed} if self.prescribed is not None else {}),
            "rationale": self.rationale, "n_paths": self.n_paths,
            "evidence_counts": self.evidence_counts, "caution_counts": self.caution_counts, "paths": [p.to_dict() for p in self.paths],
            "cautions": [p.to_dict() for p in self.cautions], **({"cut": self.cut} if self.cut else {}),
            **({"attribution": self.attribution.to_dict(), "strongest_reasons": self.reasons, "evidence_gap": self.evidence_gap}
               if self.attribution is not None else {}),
        }


@dataclass
class Recommendation:
    """What :func:`recommend` returns; :meth:`to_dict` is the ``--json`` / HTTP form."""

    model: str
    threshold: float
    top_k: int
    visit: dict
    drugs: list[RecommendedDrug]
    ddi_warnings: list[dict]
    unknown_codes: list[dict]
    notes: list[str] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)
    model_info: dict = field(default_factory=dict)  # model_summary(provenance): what the deployed model is

    def to_dict(self) -> dict:
        return {
            "model": {"name": self.model, **self.model_info}, "threshold": self.threshold, "top_k": self.top_k, "visit": self.visit,
            "drugs": [d.to_dict() for d in self.drugs], "ddi_warnings": self.ddi_warnings,
            "unknown_codes": self.unknown_codes, "notes": self.notes, "timings_ms": self.timings_ms,
        }


def model_summary(provenance: dict | None) -> dict:
    """The deployed model's provenance as ``recommend --json`` and ``/recommend`` give it under ``model``:
    which model, distilled from which teacher, on which sites (cohort keys), graph key, version, K-fold PRAUC."""
    p = provenance or {}
    out = {k: p[k] for k in ("model", "teacher", "target", "graph_key", "kgrec_version", "created") if k in p}
    if "model" in out:
        out["kind"] = out.pop("model")
    if p.get("sites"):
        out["sites"] = {n: {k: v for k, v in s.items() if k in ("source", "workspace", "cohort_key", "n_patients")} for n, s in p["sites"].items()}
    cv = (p.get("cross_validation") or {}).get("prauc")
    if cv:
        out["cross_validation"] = {"folds": p["cross_validation"].get("folds"), "prauc_mean": cv.get("mean"), "prauc_std": cv.get("std")}
    return out


__all__ = ["RecommendedDrug", "Recommendation", "model_summary"]
