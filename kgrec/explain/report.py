"""The explanations a whole run ends with: recommendations, with rationale paths, DDI warnings and a
rationale in words, for the first test visits of the saved split (visits the model never trained on),
saved as ``<workspace>/reports/explanations.json``. ``kgrec run`` calls :func:`explain_test_visits`."""

from __future__ import annotations

import json
from pathlib import Path

from kgrec import fsatomic
from kgrec.errors import WorkspaceError


def explain_test_visits(workspace: Path | str, model: str = "student", n_visits: int = 3) -> dict:
    """Recommend and explain the first ``n_visits`` evaluable test visits of the saved split with ``model``;
    write ``reports/explanations.json`` (atomically) and return its counts (``path``, ``visits``,
    ``n_drugs``, ``n_paths``, ``n_drugs_with_paths``, ``n_ddi_warnings``) and ``example``: the first visit's
    top drug and its rationale (None when nothing was recommended)."""
    from kgrec.cohort.samples import build_samples
    from kgrec.explain.recommend import RecommendService
    from kgrec.workspace import load_cohort, reports_dir

    cohort = load_cohort(workspace)
    if not cohort.split or not cohort.split.get("test"):
        raise WorkspaceError(f"{Path(workspace) / 'cohort'}: no saved test split to explain; rerun `kgrec prepare`")
    test = build_samples(cohort, cohort.split["test"])
    visit_ids = [str(cohort.visits["visit_id"].iat[int(i)]) for i in test.visit_idx[:n_visits]]
    with RecommendService(workspace, model) as svc:
        recs = [svc.recommend(visit_id=v).to_dict() for v in visit_ids]
        deployed = svc.model_info
    path = reports_dir(workspace) / "explanations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"model": model, "deployed": deployed, "visits": recs}, indent=1, default=str))
    fsatomic.replace_file(tmp, path)
    drugs = [d for r in recs for d in r["drugs"]]
    first = recs[0]["drugs"][0] if recs and recs[0]["drugs"] else None
    example = {"visit": visit_ids[0], "drug": first["drug"], "rationale": first["rationale"]} if first else None
    return {"example": example, "path": str(path), "model": model, "deployed": deployed.get("kind"), "visits": visit_ids, "n_drugs": len(drugs), "n_paths": sum(len(d["paths"]) for d in drugs),
            "n_drugs_with_paths": sum(1 for d in drugs if d["paths"]), "n_ddi_warnings": sum(len(r["ddi_warnings"]) for r in recs)}


__all__ = ["explain_test_visits"]
