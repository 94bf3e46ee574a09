"""Recommend and explain: ranked drugs with DDI screening, rationale paths (graph), natural-language
rationales (deterministic realiser; optional generative LM), and the HTTP service's core.

* :mod:`kgrec.explain.recommend`: :func:`recommend`, :class:`RecommendService`, the patient schema;
* :mod:`kgrec.explain.paths`: :class:`PathFinder` (batched Cypher, merged, grouped, scored paths);
* :mod:`kgrec.explain.realise`: the deterministic realiser;
* :mod:`kgrec.explain.generate`: the rationale dataset, LoRA fine-tuning, ROUGE, hallucination check.
"""

from kgrec.explain.paths import DrugEvidence, EvidencePath, PathFinder
from kgrec.explain.realise import realise_drug, realise_path
from kgrec.explain.recommend import (
    PatientIn,
    Recommendation,
    RecommendService,
    recommend,
)

__all__ = ["DrugEvidence", "EvidencePath", "PathFinder", "PatientIn", "RecommendService", "Recommendation", "realise_drug", "realise_path", "recommend"]
