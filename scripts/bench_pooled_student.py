#!/usr/bin/env python
"""The pooled, distilled student (``student-pooled``) against its teacher and the in-domain models.

    python scripts/bench_pooled_student.py --target WS --source WS2 [--folds 5] [--beta 0 --beta 1 ...]
        [--teacher site-ensemble-names] [--throughput-batch 64] [--json OUT.json]

On the target's K patient-level folds (``kgrec evaluate --folds K``' patients; the sources' patients added
to each fold's training patients, as ``kgrec transfer --mode pooled``):

* PRAUC mean ± std of in-domain logistic regression, the pooled teacher and one ``student-pooled`` per
  soft-label weight ``--beta`` (0: the pooled student without distillation);
* per variant its mean *validation* PRAUC (the student's early-stopping score on the target's validation
  patients): the variant to deploy is chosen on it, never on the test folds;
* paired per-fold test differences: student − teacher, student − in-domain logreg (folds better);
* throughput: the teacher and the student of fold 1, in this process, on the same test visits in
  batches of ``--throughput-batch``, the teacher encoding them as new patients (no state cache), visits/s:
  on fold 1's test visits, and (when those are fewer than one batch) on every test visit of the K folds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="target workspace (kgrec prepare + load-graph + embeddings)")
    p.add_argument("--source", action="append", required=True, help="pooled site workspace (repeat)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--teacher", default="site-ensemble-names")
    p.add_argument("--beta", type=float, action="append", help="soft-label weights to compare (default: 0 and the default)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--arch", action="append", help="student architecture(s): wide (default), network")
    p.add_argument("--throughput-batch", type=int, default=64)
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args()

    import numpy as np

    from kgrec.evaluation import fit_model, paired_difference
    from kgrec.models import register
    from kgrec.teacher.cache import no_state_cache
    from kgrec.transfer.distill import POOLED_STUDENT, PooledStudent
    from kgrec.transfer.pool import load_site
    from kgrec.transfer.protocol import TransferRun, _factory

    betas = args.beta or [0.0, POOLED_STUDENT["beta"]]
    names = []
    for arch in args.arch or ["wide"]:
        for b in betas:
            name = f"student-pooled@{arch},beta={b:g}"

            def init(self, vocab, workspace=None, _b=b, _a=arch, **kw):
                PooledStudent.__init__(self, vocab, workspace, args.teacher, {"beta": _b, "temperature": args.temperature}, arch=_a)

            register(name, type(f"PooledStudent_{arch}_{b:g}".replace(".", "_"), (PooledStudent,), {"__init__": init, "name": name}))
            names.append(name)
    target, sources = load_site(args.target), [load_site(s) for s in args.source]
    say = lambda s: print(time.strftime("%H:%M:%S"), s, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    ind = TransferRun(target, sources, ["logreg"], args.folds, args.seed, progress=say).in_domain()
    run = TransferRun(target, sources, [args.teacher, *names], args.folds, args.seed, progress=say)
    pooled = run.with_target_share(1.0)
    out: dict = {"target": str(args.target), "sources": args.source, "folds": args.folds, "teacher": args.teacher, "models": {}, "seconds": {}}
    ref = ind.models["logreg"].metric_folds("prauc")
    teach = pooled.models[args.teacher].metric_folds("prauc")
    out["models"]["in-domain logreg"] = {"prauc": _ms(ref)}
    out["models"][f"pooled {args.teacher}"] = {"prauc": _ms(teach), "vs_in_domain_logreg": paired_difference(teach, ref)}
    for n in names:
        f = pooled.models[n].metric_folds("prauc")
        vals = [fold["chosen"]["student"].get("val_prauc") for fold in pooled.models[n].folds]
        vals = [v for v in vals if v is not None]
        out["models"][n] = {"prauc": _ms(f), "validation_prauc": float(np.mean(vals)), "vs_teacher": paired_difference(f, teach),
                            "vs_in_domain_logreg": paired_difference(f, ref),
                            "fit_seconds": float(np.mean([fold["fit_seconds"] for fold in pooled.models[n].folds]))}
    best = max(names, key=lambda n: out["models"][n]["validation_prauc"])
    out["chosen_on_validation"] = best
    out["seconds"]["cv"] = round(time.perf_counter() - t0, 1)
    # throughput: fold 1's teacher and student on the same test visits, batch B, in this process
    f = run.folds[0]
    tr, va, te = (run._samples(f[k]) for k in ("train", "val", "test"))
    teacher, _ = fit_model(_factory(args.teacher, target.workspace), run.vocab, run.cohort, tr, va)
    from kgrec.models.memo import remember

    remember(args.teacher, teacher, run.cohort, tr, va)
    student, _ = fit_model(_factory(best, target.workspace), run.vocab, run.cohort, tr, va)
    def timed(model, visits) -> float:
        with no_state_cache():
            t1 = time.perf_counter()
            for s in range(0, len(visits), args.throughput_batch):
                model.predict_proba(run.cohort, visits.subset(range(s, min(s + args.throughput_batch, len(visits)))))
            return len(visits) / (time.perf_counter() - t1)

    # fold 1's test visits; and, where they are fewer than one batch (MIMIC-III demo: 22), every target test
    # visit of the K folds, so that full batches are timed too (the same visits for both models)
    sets = {"fold1_test": te}
    if len(te) < args.throughput_batch:
        sets["all_test"] = run._samples([p for fold in run.folds for p in fold["test"]])
    out["throughput"] = {}
    for key, visits in sets.items():
        speed = {label: timed(model, visits) for label, model in (("teacher", teacher), ("student", student))}
        out["throughput"][key] = {"visits": len(visits), "batch": args.throughput_batch, "teacher_visits_per_s": round(speed["teacher"], 2),
                                  "student_visits_per_s": round(speed["student"], 1), "ratio": round(speed["student"] / speed["teacher"], 1)}
    out["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    for n, m in out["models"].items():
        line = f"{n:32s} PRAUC {m['prauc']['mean']:.4f} ± {m['prauc']['std']:.4f}"
        for k in ("vs_teacher", "vs_in_domain_logreg"):
            if k in m:
                line += f"  {k} {m[k]['mean']:+.4f} ± {m[k]['std']:.4f} ({m[k]['n_better']}/{len(m[k]['folds'])})"
        if "validation_prauc" in m:
            line += f"  val {m['validation_prauc']:.4f}"
        print(line, file=sys.stderr)
    print(f"chosen on validation: {best}", file=sys.stderr)
    for key, t in out["throughput"].items():
        print(f"throughput on {t['visits']} visits ({key}, batch {t['batch']}): teacher {t['teacher_visits_per_s']:.1f} visits/s, "
              f"student {t['student_visits_per_s']:.0f} visits/s ({t['ratio']}x)", file=sys.stderr)


def _ms(folds) -> dict:
    import numpy as np

    return {"mean": round(float(np.mean(folds)), 4), "std": round(float(np.std(folds, ddof=1)), 4), "folds": [round(float(x), 4) for x in folds]}


if __name__ == "__main__":
    main()
