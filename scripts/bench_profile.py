#!/usr/bin/env python
"""The patient-profile ablation: profile on/off for logistic regression and the student, paired.

Patient-level K-fold CV over each workspace's cohort (the same folds for every model, so differences
are paired per fold): ``logreg`` vs ``logreg-profile`` (one-hot age bins, sex, admission fields appended
to the code features), and the student without vs with LEADER's profile machinery (profile encoder +
profile–visit alignment loss at LEADER's weight 0.005). Reported overall and for single-visit and
multi-visit patients: mean ± std over folds of Jaccard, F1 and PRAUC, and the per-fold paired
differences (on − off) with how many folds improved.

The students here run **without a teacher and without graph inputs** (``alpha = beta = 0``,
``graph = False``): the ablation isolates the profile, and needs only a workspace from
``kgrec prepare``. Regularisation (logreg's C), early stopping and thresholds are chosen on each fold's
validation patients only.

    python scripts/bench_profile.py -w WS [WS ...] [--folds 5] [--seed 42] [--no-student]
                                    [--student-epochs N] [--student-patience N] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

METRICS = ("jaccard", "f1", "prauc")
GROUPS = ("all", "single_visit", "multi_visit")


def _fold_metric(fold: dict, group: str, metric: str) -> float:
    if group == "all":
        return float(fold["metrics"].get(metric, np.nan))
    return float(fold["groups"][group]["metrics"].get(metric, np.nan))


def _paired(on: list[float], off: list[float]) -> dict:
    d = np.asarray(on) - np.asarray(off)
    ok = ~np.isnan(d)
    d = d[ok]
    return {"mean": float(d.mean()) if len(d) else None, "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "n_better": int((d > 0).sum()), "n_folds": int(len(d)), "folds": d.tolist()}


def _summary(vals: list[float]) -> dict:
    v = np.asarray(vals, dtype=float)
    v = v[~np.isnan(v)]
    return {"mean": float(v.mean()) if len(v) else None, "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def run(workspace: Path, folds: int, seed: int, student: bool, log, student_kw: dict | None = None) -> dict:
    from kgrec.evaluation import evaluate_models
    from kgrec.student.train import StudentConfig, StudentRecommender
    from kgrec.workspace import load_cohort

    cohort = load_cohort(workspace)
    if not cohort.profile_fields():
        raise SystemExit(f"{workspace}: the cohort has no profile ({cohort.report.get('profile_missing')}); run `kgrec prepare` again")
    pairs = [("logreg", "logreg-profile")]
    models: list = ["logreg", "logreg-profile"]
    if student:
        base = dict(alpha=0.0, beta=0.0, graph=False, **(student_kw or {}))
        off = lambda v: StudentRecommender(v, None, StudentConfig(**base))  # noqa: E731
        on = lambda v: StudentRecommender(v, None, StudentConfig(profile=True, align=True, **base))  # noqa: E731
        models += [("student", off), ("student-profile", on)]
        pairs.append(("student", "student-profile"))
    t0 = time.perf_counter()
    res = evaluate_models(cohort, models, folds=folds, seed=seed, progress=log)
    out: dict = {
        "workspace": str(workspace), "source": cohort.source, "folds": folds, "seed": seed,
        "profile_fields": cohort.profile_fields(), "profile_coverage": cohort.profile_coverage(),
        "student_settings": {"alpha": 0.0, "beta": 0.0, "graph": False, **(student_kw or {})} if student else None,
        "n_visits_by_group": {}, "models": {}, "paired": {}, "seconds": None,
    }
    for name, ev in res.models.items():
        out["models"][name] = {g: {m: _summary([_fold_metric(f, g, m) for f in ev.folds]) for m in METRICS} for g in GROUPS}
        out["models"][name]["fit_seconds"] = _summary([f["fit_seconds"] for f in ev.folds])
        out["models"][name]["chosen"] = [f["chosen"] for f in ev.folds]
        out["n_visits_by_group"] = {g: int(sum(f["groups"][g]["n_visits"] for f in ev.folds)) for g in ("single_visit", "multi_visit")}
    for off_name, on_name in pairs:
        a, b = res.models[on_name].folds, res.models[off_name].folds
        out["paired"][f"{on_name} - {off_name}"] = {
            g: {m: _paired([_fold_metric(f, g, m) for f in a], [_fold_metric(f, g, m) for f in b]) for m in METRICS} for g in GROUPS
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def markdown(r: dict) -> str:
    lines = [f"### {r['source']} ({r['folds']}-fold patient-level CV, seed {r['seed']}; "
             f"single-visit {r['n_visits_by_group']['single_visit']} / multi-visit {r['n_visits_by_group']['multi_visit']} test visits)", "",
             "| model | " + " | ".join(f"{g} {m}" for g in GROUPS for m in ("jaccard", "prauc")) + " |",
             "|---|" + "---|" * (2 * len(GROUPS))]
    for name, m in r["models"].items():
        cells = []
        for g in GROUPS:
            for k in ("jaccard", "prauc"):
                s = m[g][k]
                cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}" if s["mean"] is not None else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| paired difference (on − off) | " + " | ".join(f"{g} {m}" for g in GROUPS for m in ("jaccard", "prauc")) + " |",
              "|---|" + "---|" * (2 * len(GROUPS))]
    for name, p in r["paired"].items():
        cells = []
        for g in GROUPS:
            for k in ("jaccard", "prauc"):
                d = p[g][k]
                cells.append(f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['n_better']}/{d['n_folds']})" if d["mean"] is not None else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", nargs="+", type=Path, required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-student", action="store_true", help="logistic regression only")
    p.add_argument("--student-epochs", type=int, help="student epoch cap (default: StudentConfig's)")
    p.add_argument("--student-patience", type=int, help="student early-stopping patience (default: StudentConfig's)")
    p.add_argument("--out", type=Path, help="write the JSON here (and the markdown beside it, .md)")
    a = p.parse_args()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    kw = {k: v for k, v in (("epochs", a.student_epochs), ("patience", a.student_patience)) if v is not None}
    results = [run(ws, a.folds, a.seed, not a.no_student, log, kw) for ws in a.workspace]
    md = "\n\n".join(markdown(r) for r in results)
    print(md)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1))
        a.out.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()
