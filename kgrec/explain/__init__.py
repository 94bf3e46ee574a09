"""Recommend and explain: ranked drugs with DDI screening, attributions, rationale paths (graph),
natural-language rationales (deterministic realiser; optional generative LM), and the HTTP service's core.

* :mod:`kgrec.explain.recommend`: :func:`recommend`, :class:`RecommendService`;
  :mod:`kgrec.explain.patient` (the new-patient schema), :mod:`kgrec.explain.result` (what it returns),
  :mod:`kgrec.explain.ddi` (interaction screening);
* :mod:`kgrec.explain.attribution`: each input's contribution to each drug's score (occlusion);
  :mod:`kgrec.explain.faithful`: paths ranked by their starting code's attribution;
  :mod:`kgrec.explain.faithfulness`: the deletion test and the evidence coverage;
* :mod:`kgrec.explain.paths`: :class:`PathFinder` (batched Cypher, merged, grouped, scored paths), with
  :mod:`kgrec.explain.evidence` (the path objects) and :mod:`kgrec.explain.rows` (rows -> paths);
* :mod:`kgrec.explain.realise`: the deterministic realiser;
* :mod:`kgrec.explain.dataset` and :mod:`kgrec.explain.generate`: the rationale dataset, LoRA
  fine-tuning, ROUGE, hallucination check.
"""

from kgrec.explain.attribution import Attribution, Contribution, attribute
from kgrec.explain.paths import DrugEvidence, EvidencePath, PathFinder
from kgrec.explain.realise import realise_drug, realise_path
from kgrec.explain.recommend import (
    PatientIn,
    Recommendation,
    RecommendService,
    recommend,
)

__all__ = ["Attribution", "Contribution", "DrugEvidence", "EvidencePath", "PathFinder", "PatientIn", "RecommendService", "Recommendation",
           "attribute", "realise_drug", "realise_path", "recommend"]
