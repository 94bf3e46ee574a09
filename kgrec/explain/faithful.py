"""Faithful rationale paths: the paths shown for a drug start from the codes that drove its score.

A path's own score (:mod:`kgrec.explain.paths`) says how good the graph evidence is; the attribution
of its starting code (:mod:`kgrec.explain.attribution`) says how much the model relied on that code
for this drug. Paths are ranked by their product::

    faithful_score = max(0, weight(starting code, drug)) × path score

so a strong indication that starts from a code the model ignored comes after a weaker path from the
code that raised the drug's score most. Paths from codes with no positive weight keep their order by
path score, after the others. Each ranked path records ``extra["attribution"]`` (the starting code's
weight) and ``extra["faithful_score"]``.

When the model's strongest reasons (its top positively weighted codes) start no supporting path, the
result says so: "no graph evidence for the strongest reasons", naming them.
"""

from __future__ import annotations

from collections.abc import Sequence

from kgrec.explain.attribution import CODE_KINDS, Attribution, Contribution
from kgrec.explain.evidence import EvidencePath

STRONGEST = 3  # how many of the top positive code contributions count as "the strongest reasons"
RELATIVE = 0.25  # ... each with at least this share of the largest positive weight (not a negligible one)


def start_code(p: EvidencePath) -> str | None:
    """The visit's own code a path leaves from."""
    c = p.code
    return c.id if c is not None else None


def rank_paths(paths: Sequence[EvidencePath], attribution: Attribution | None) -> list[EvidencePath]:
    """``paths`` ordered by attribution of the starting code × path score (see the module docstring);
    unchanged (by path score) without an attribution."""
    if attribution is None:
        return list(paths)
    weights = {c.input: c.weight for c in attribution.contributions if c.kind in CODE_KINDS}
    for p in paths:
        w = weights.get(start_code(p) or "", 0.0)
        p.extra["attribution"] = round(w, 4)
        p.extra["faithful_score"] = round(max(w, 0.0) * p.score, 6)
    order = {id(p): i for i, p in enumerate(paths)}  # the path-score order breaks ties
    return sorted(paths, key=lambda p: (-p.extra["faithful_score"], order[id(p)]))


def strongest_reasons(paths: Sequence[EvidencePath], attribution: Attribution | None, k: int = STRONGEST) -> list[dict]:
    """The model's strongest reasons — its ``k`` most positively weighted codes, each with at least
    ``RELATIVE`` of the largest weight — and whether a supporting path starts from each."""
    if attribution is None:
        return []
    starts = {start_code(p) for p in paths}
    top = attribution.top(k)
    return [_reason(c, c.input in starts) for c in top if c.weight >= RELATIVE * top[0].weight]


def _reason(c: Contribution, has_path: bool) -> dict:
    return {"input": c.input, "kind": c.kind, "name": c.name, "weight": round(c.weight, 4), "has_path": has_path}


def evidence_gap(reasons: Sequence[dict]) -> str:
    """"no graph evidence for the strongest reasons: …" naming those without a path, or ""."""
    missing = [r for r in reasons if not r["has_path"]]
    if not missing:
        return ""
    named = ", ".join(f"{r['name']} ({r['input']})" if r["name"] else r["input"] for r in missing)
    return f"no graph evidence for the strongest reasons: {named}"


__all__ = ["RELATIVE", "STRONGEST", "evidence_gap", "rank_paths", "start_code", "strongest_reasons"]
