"""Do the explanations reflect the model? A deletion test and the evidence coverage, on the saved split.

**Deletion test** (after Samek et al., "Evaluating the visualization of what a deep neural network has
learned", IEEE TNNLS 2017, and DeYoung et al., "ERASER", ACL 2020, *comprehensiveness*): for each drug
``recommend`` gives on a test visit, remove the ``k`` codes with the largest attribution to that drug
and measure the drop of its probability; remove ``k`` codes drawn at random from the same visit (the
mean over ``n_random`` draws) and measure that drop; the gap is their difference. A faithful
attribution gives a gap above zero. Only visits with more than ``k`` codes the model reads take part
(with ``k`` codes or fewer both sets would be the whole visit). The same test is run for the starting
codes of the paths shown (the faithful selection of :mod:`kgrec.explain.faithful`): their ``m`` ≤ 3
distinct codes against ``m`` random codes. Intervals: 95 % bootstrap over visits (the drugs of one
visit share its codes, so visits are resampled, not drugs).

Occlusion of one code at a time ranks the codes; the test removes ``k`` together, so the interactions
the single-code ranking ignores are part of what is measured.

**Evidence coverage**: the share of recommended drugs with at least one supporting path, by path kind
(and of literature cautions), and the share whose top attributed code starts a supporting path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from kgrec.explain.attribution import CODE_KINDS, occluded_logits, visit_inputs
from kgrec.explain.faithful import start_code

COVERAGE_KINDS = ("indication", "code_indication", "trial", "similar_patients", "literature", "adverse")


def bootstrap_ci(values_by_visit: Sequence[Sequence[float]], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of every value and its 95 % interval, resampling visits (groups of values) with replacement."""
    groups = [np.asarray(v, dtype=float) for v in values_by_visit if len(v)]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    mean = float(sums.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    boots = sums[idx].sum(1) / counts[idx].sum(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return mean, float(lo), float(hi)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def evaluate_explanations(service, visit_ids: Sequence[str], k: int = 3, n_random: int = 3, top_k: int = 10, paths_per_drug: int = 3,
                          seed: int = 0, n_boot: int = 2000, progress=None) -> dict:
    """The deletion test and the evidence coverage for ``service``'s model on ``visit_ids``.

    Args:
        service: an open :class:`~kgrec.explain.recommend.RecommendService` (with a store for paths).
        visit_ids: the visits (e.g. the saved split's test visits).
        k: how many top attributed codes are removed.
        n_random: random sets of the same size per drug (their drops averaged).
        top_k, paths_per_drug: as ``recommend`` (the model's tuned threshold applies).
    """
    rng = np.random.default_rng(seed)
    model, cohort = service.model, service.cohort
    t0 = time.perf_counter()
    attr_gap, path_gap = [], []
    drops = {"top": [], "random": [], "paths": [], "paths_random": []}
    cov = {"n_drugs": 0, "any_path": 0, "top_code_starts_path": 0, "by_kind": dict.fromkeys(COVERAGE_KINDS, 0)}
    skipped = {"few_codes": 0, "no_path": 0}
    n_visits = 0
    for vid in visit_ids:
        res = service.recommend(vid, top_k=top_k, paths_per_drug=paths_per_drug)
        if progress is not None:
            progress()
        if not res.drugs:
            continue
        n_visits += 1
        row = service.resolve_visit(vid)
        samples = service._samples(cohort, row)
        codes = [x for x in visit_inputs(model, cohort, samples, graph=False) if x[0] in CODE_KINDS]
        removals: list[frozenset] = [frozenset()]
        plan = []  # (drug column, kind of set, [removal indices])
        for d in res.drugs:
            cov["n_drugs"] += 1
            kinds = {**d.evidence_counts, **d.caution_counts}
            for kind in COVERAGE_KINDS:
                cov["by_kind"][kind] += int(kinds.get(kind, 0) > 0)
            cov["any_path"] += int(d.n_paths > 0)
            cov["top_code_starts_path"] += int(bool(d.reasons) and d.reasons[0]["has_path"])
            j = model.drug_vocab.index(d.drug)
            ranked = [(c.kind, c.input) for c in d.attribution.contributions if c.kind in CODE_KINDS]
            if len(codes) > k:
                plan.append((j, "top", [len(removals)]))
                removals.append(frozenset(ranked[:k]))
                plan.append((j, "random", list(range(len(removals), len(removals) + n_random))))
                removals += [frozenset(codes[i] for i in rng.choice(len(codes), k, replace=False)) for _ in range(n_random)]
            else:
                skipped["few_codes"] += 1
            starts = list(dict.fromkeys(c for c in (start_code(p) for p in d.paths) if c is not None))
            starts = [x for x in codes if x[1] in starts]
            if starts and len(codes) > len(starts):
                plan.append((j, "paths", [len(removals)]))
                removals.append(frozenset(starts))
                plan.append((j, "paths_random", list(range(len(removals), len(removals) + n_random))))
                removals += [frozenset(codes[i] for i in rng.choice(len(codes), len(starts), replace=False)) for _ in range(n_random)]
            elif not starts:
                skipped["no_path"] += 1
        if len(removals) == 1:
            continue
        p = _sigmoid(occluded_logits(model, cohort, samples, removals))
        visit_attr, visit_path = {}, {}
        for j, kind, idx in plan:
            drop = float(np.mean([p[0, j] - p[i, j] for i in idx]))
            drops[kind].append(drop)
            target = visit_attr if kind in ("top", "random") else visit_path
            target.setdefault(j, {})[kind] = drop
        attr_gap.append([v["top"] - v["random"] for v in visit_attr.values()])
        path_gap.append([v["paths"] - v["paths_random"] for v in visit_path.values()])
    n = max(cov["n_drugs"], 1)

    def summary(gaps, top_key, rand_key):
        mean, lo, hi = bootstrap_ci(gaps, n_boot, seed)
        return {"n_drugs": int(sum(len(g) for g in gaps)), "n_visits": int(sum(1 for g in gaps if g)),
                "drop_top": _mean(drops[top_key]), "drop_random": _mean(drops[rand_key]), "gap": mean, "ci95": [lo, hi]}

    return {
        "model": service.model_name, "k": k, "n_random": n_random, "top_k": top_k, "threshold": float(model.threshold), "n_visits": n_visits,
        "attribution_deletion": summary(attr_gap, "top", "random"),
        "path_start_deletion": summary(path_gap, "paths", "paths_random"),
        "skipped": skipped,
        "coverage": {"n_drugs": cov["n_drugs"], "any_path": cov["any_path"] / n, "top_code_starts_path": cov["top_code_starts_path"] / n,
                     "by_kind": {kd: v / n for kd, v in cov["by_kind"].items()}},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def split_test_visits(cohort) -> list[str]:
    """The saved split's test visits (target visits of the test patients), in visit-table order."""
    from kgrec.cohort.samples import build_samples

    if not cohort.split:
        raise ValueError("the workspace cohort has no saved split: run `kgrec prepare` again")
    s = build_samples(cohort, cohort.split["test"])
    return [str(cohort.visits["visit_id"].iat[int(i)]) for i in s.visit_idx]


__all__ = ["COVERAGE_KINDS", "bootstrap_ci", "evaluate_explanations", "split_test_visits"]
