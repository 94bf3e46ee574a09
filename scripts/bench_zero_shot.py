"""How far can zero-shot transfer go? Corrections tried on top of the source-trained models.

    python scripts/bench_zero_shot.py --target WS_MIMIC3 --source WS_EICU [-o zero-shot.md]

Both workspaces are made by `kgrec prepare` + `kgrec load-graph`. Zero-shot is `kgrec transfer --mode
zero-shot`: train on the source's patients (9:1, the tenth choosing C), score every target visit that has
a drug of the shared vocabulary (the target's ATC3 classes the source prescribes). On top of the raw-id
`logreg` and the graph-grounded `logreg-graph`, this script tries what could close the gap to the target's
own model without a target label:

- **label-shift EM** (Saerens, Latinne & Decaestecker, 2002): each drug's prior on the target estimated
  by EM from the model's probabilities on the unlabeled target visits, then the probabilities re-weighted;
  ``lambda`` shrinks the log prior ratio towards the source (0 = no correction, 1 = full EM);
- **the oracle prior**: the same re-weighting with the target's *true* drug frequencies. It uses target
  labels, so it is not a method: it bounds what any prior correction can give;
- **graph indication prior**: ``logit + beta * S``, where ``S`` sums log(1 + supporting paths) of the
  graph's indication, MEDI and trial links from the visit's codes to each drug
  (:func:`kgrec.graph.neighbourhood.prior_matrix`), ``beta`` chosen on the source's validation visits;
- **names + graph**: the mean of the zero-shot teacher (code names in its prompt; the CPU configuration of
  `kgrec run`) and `logreg-graph`.

The reference is the target's own logistic regression, K-fold CV, scored on the same classes and visits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

LAMBDAS = (0.25, 0.5, 1.0)
BETAS = (0.0, 0.05, 0.1, 0.2, 0.4)


def em_priors(p: np.ndarray, pi_s: np.ndarray, iters: int = 100) -> np.ndarray:
    """Saerens et al.'s EM: the target's prior of each (binary) label from the source model's probabilities."""
    pi = pi_s.copy()
    for _ in range(iters):
        q = reweight(p, pi_s, pi)
        pi = np.clip(q.mean(0), 1e-4, 1 - 1e-4)
    return pi


def reweight(p: np.ndarray, pi_s: np.ndarray, pi_t: np.ndarray) -> np.ndarray:
    a, b = pi_t / pi_s, (1 - pi_t) / (1 - pi_s)
    return a * p / (a * p + b * (1 - p))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="target workspace")
    ap.add_argument("--source", required=True, help="source workspace")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-teacher", action="store_true", help="skip the zero-shot teacher (MiniLM)")
    ap.add_argument("-o", "--out", type=Path, default=Path("zero-shot-bench.md"))
    a = ap.parse_args(argv)

    from kgrec.evaluation import fit_model
    from kgrec.graph.neighbourhood import code_drug_evidence, prior_matrix
    from kgrec.graph.tables import GraphTables
    from kgrec.metrics import per_visit
    from kgrec.cohort.samples import multi_hot
    from kgrec.transfer.pool import load_site
    from kgrec.transfer.protocol import TransferRun, _factory

    t0 = time.perf_counter()
    run = TransferRun(load_site(a.target), [load_site(a.source)], ["logreg"], a.folds, a.seed)
    tr, va = run._samples(run.source_train), run._samples(run.source_val)
    tests = [run._zs_test(f["test"]) for f in run.folds]
    unlabeled = run._samples([p for f in run.folds for p in f["train"]])  # target inputs; labels never read

    def prauc(y, p):
        return float(per_visit(y, p, p > 0.5)["prauc"].mean())

    rows: dict[str, list[float]] = {}

    # the target's own logistic regression on the same classes and visits: the bar to reach
    for i, f in enumerate(run.folds):
        model, _ = fit_model(_factory("logreg", Path(a.target)), run.zs_vocab, run.cohort, run._samples(f["train"]), run._samples(f["val"]))
        rows.setdefault("in-domain logreg (target's own folds)", []).append(prauc(model.targets(tests[i]), model.predict_proba(run.cohort, tests[i])))
        print(f"in-domain fold {i + 1}/{a.folds}", file=sys.stderr, flush=True)

    ev = code_drug_evidence(GraphTables.load(Path(a.target) / "graph" / "tables"))
    codes = sorted({c for s in (tr, va, *tests) for d, p in zip(s.diagnoses, s.procedures) for c in list(d) + list(p)})
    pm = prior_matrix(ev, codes, run.zs_vocab)

    def graph_prior(s):
        x = multi_hot([list(d) + list(p) for d, p in zip(s.diagnoses, s.procedures)], codes)
        return np.asarray((x @ pm).todense())

    def logit(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    zs = {}
    for m in ("logreg", "logreg-graph"):
        print(f"zero-shot {m}", file=sys.stderr, flush=True)
        model, _ = fit_model(_factory(m, Path(a.target)), run.zs_vocab, run.cohort, tr, va)
        zs[m] = model
        pi_s = np.clip(model.targets(tr).mean(0), 1e-4, 1 - 1e-4)
        pi_em = em_priors(np.clip(model.predict_proba(run.cohort, unlabeled), 1e-6, 1 - 1e-6), pi_s)
        yv, sv = model.targets(va), graph_prior(va)
        lv = logit(model.predict_proba(run.cohort, va))
        beta = max(BETAS, key=lambda b: prauc(yv, 1 / (1 + np.exp(-(lv + b * sv)))))
        for s in tests:
            y, p = model.targets(s), np.clip(model.predict_proba(run.cohort, s), 1e-6, 1 - 1e-6)
            rows.setdefault(f"zero-shot {m}", []).append(prauc(y, p))
            for lam in LAMBDAS:
                pi = np.exp(np.log(pi_s) + lam * (np.log(pi_em) - np.log(pi_s)))
                rows.setdefault(f"zero-shot {m}, label-shift EM, lambda {lam}", []).append(prauc(y, reweight(p, pi_s, pi)))
            oracle = np.clip(y.mean(0), 1e-4, 1 - 1e-4)
            rows.setdefault(f"zero-shot {m}, oracle target prior (uses target labels)", []).append(prauc(y, reweight(p, pi_s, oracle)))
            rows.setdefault(f"zero-shot {m}, graph indication prior (beta {beta} on source validation)", []).append(
                prauc(y, 1 / (1 + np.exp(-(logit(p) + beta * graph_prior(s))))))

    if not a.no_teacher:
        from kgrec.teacher.config import TeacherConfig
        from kgrec.teacher.recommender import TeacherRecommender

        print("zero-shot teacher", file=sys.stderr, flush=True)
        cfg = TeacherConfig(lora_r=0, fuse_codes=True, graph_prompt=False)
        teacher, _ = fit_model(lambda v: TeacherRecommender(v, cfg, workspace=a.target), run.zs_vocab, run.cohort, tr, va)
        for s in tests:
            y, pt = teacher.targets(s), teacher.predict_proba(run.cohort, s)
            rows.setdefault("zero-shot teacher (names; CPU configuration)", []).append(prauc(y, pt))
            rows.setdefault("zero-shot mean(teacher, logreg-graph)", []).append(prauc(y, (pt + zs["logreg-graph"].predict_proba(run.cohort, s)) / 2))

    ref = np.array(rows["in-domain logreg (target's own folds)"])
    raw = np.array(rows["zero-shot logreg"])
    lines = [f"# Zero-shot {run.source_names[0]} -> {run.target_name}: {len(run.zs_vocab)} shared classes, {a.folds} folds",
             "", "| model | PRAUC | vs the target's own logreg | vs zero-shot raw-id logreg |", "|---|---|---|---|"]
    out = {}
    for name, v in rows.items():
        v = np.array(v)
        d, dr = v - ref, v - raw
        out[name] = {"mean": v.mean(), "std": v.std(ddof=1), "folds": v.tolist(), "vs_in_domain": d.mean(), "vs_raw": dr.mean()}
        lines.append(f"| {name} | {v.mean():.4f} ± {v.std(ddof=1):.4f} | {d.mean():+.4f} ± {d.std(ddof=1):.4f} ({(d > 0).sum()}/{len(d)}) | {dr.mean():+.4f} |")
    lines += ["", f"{time.perf_counter() - t0:.0f} s"]
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
