#!/usr/bin/env python
"""Choose the distillation weights on validation folds, and show what distillation does.

Patient-level K-fold CV over the workspace cohort (same folds for every model, so differences are
paired): the baselines, the workspace's teacher (its settings from ``kgrec train --stage teacher``; one
teacher per fold, cached under ``<ws>/teacher/`` and shared with the students), and a grid of students
(alpha: feature-MSE weight, beta: soft-label weight, temperature T). The selected student is the grid
point with the best mean *validation* PRAUC (each fold's early-stopping validation patients); test
folds are never used to choose. The report gives every grid point's validation and test PRAUC and the
paired per-fold test differences of the selected student against alpha = beta = 0 (no distillation),
logistic regression and the teacher.

    python scripts/bench_student.py -w WS [--folds 5] [--alphas 0 0.3 1] [--betas 0 0.5] [--temperature 2] [--out r.json]

WS needs a cohort, graph embeddings (``kgrec train --stage kge``/``gnn``; use ``--patients none`` when
cross-validating) and optionally a trained teacher (its settings are reused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _paired(a: list[float], b: list[float]) -> dict:
    d = np.asarray(a) - np.asarray(b)
    return {"mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "n_better": int((d > 0).sum()), "folds": d.tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", "-w", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.3, 1.0])
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--no-teacher-row", action="store_true", help="do not evaluate the teacher itself (its features are still used)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", help="JSON file for the full results")
    args = p.parse_args()

    import kgrec
    from kgrec.evaluation import evaluate_models
    from kgrec.student.train import StudentConfig, StudentRecommender

    ws = Path(args.workspace)
    cohort = kgrec.load_cohort(ws)
    grid = [(a, b) for a in args.alphas for b in args.betas]
    if (0.0, 0.0) not in grid:
        grid.insert(0, (0.0, 0.0))
    models: list = ["frequency", "logreg"] + ([] if args.no_teacher_row else ["teacher"])
    for a, b in grid:
        cfg = StudentConfig(alpha=a, beta=b, temperature=args.temperature, seed=args.seed)
        models.append((f"student-a{a:g}-b{b:g}", lambda v, cfg=cfg: StudentRecommender(v, ws, cfg)))
    t0 = time.perf_counter()
    res = evaluate_models(cohort, models, folds=args.folds, seed=args.seed, n_boot=0, workspace=ws,
                          progress=lambda m: print(f"[{time.perf_counter() - t0:7.1f} s] {m}", file=sys.stderr, flush=True))
    test = {n: ev.summary["metrics"]["prauc"]["folds"] for n, ev in res.models.items()}
    val = {n: [c.get("val_prauc") for c in ev.summary["chosen"]] for n, ev in res.models.items() if n.startswith("student")}
    selected = max(val, key=lambda n: float(np.mean(val[n])))
    out = {
        "dataset": res.dataset, "folds": args.folds, "seed": args.seed, "grid": grid, "temperature": args.temperature,
        "selected": selected, "seconds": round(time.perf_counter() - t0, 1),
        "validation_prauc": {n: {"mean": float(np.mean(v)), "folds": v} for n, v in val.items()},
        "test_prauc": {n: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)), "folds": v} for n, v in test.items()},
        "paired": {ref: _paired(test[selected], test[ref]) for ref in ("student-a0-b0", "logreg", "teacher") if ref in test and ref != selected},
        "evaluation": res.to_json(),
    }
    lines = [f"### {res.dataset}: {args.folds}-fold patient-level CV; students chosen by mean validation PRAUC", "",
             "| model | validation PRAUC (mean) | test PRAUC | test Jaccard | test F1 | fit s/fold |", "|---|---|---|---|---|---|"]
    for n, ev in res.models.items():
        m = ev.summary["metrics"]
        v = f"{np.mean(val[n]):.4f}" if n in val else "–"
        mark = " **(selected)**" if n == selected else ""
        lines.append(f"| {n}{mark} | {v} | {m['prauc']['mean']:.4f} ± {m['prauc']['std']:.4f} | {m['jaccard']['mean']:.4f} ± {m['jaccard']['std']:.4f} | "
                     f"{m['f1']['mean']:.4f} ± {m['f1']['std']:.4f} | {ev.summary['fit_seconds']['mean']:.1f} |")
    lines += ["", "Paired per-fold test PRAUC differences of the selected student:", "", "| selected − reference | mean ± std | folds better |", "|---|---|---|"]
    for ref, d in out["paired"].items():
        lines.append(f"| {selected} − {ref} | {d['mean']:+.4f} ± {d['std']:.4f} | {d['n_better']}/{args.folds} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
