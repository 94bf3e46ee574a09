"""Teacher benchmark: speed on this machine, patient-level K-fold CV with ablations, learning curve.

Every variant runs through :func:`kgrec.evaluation.evaluate_models` with the same seed, so the folds
are the same patients for every variant and the per-fold differences are paired. Each run writes its
own JSON (per-fold metrics and per-visit test PRAUC), so long runs can be split and resumed; ``report``
combines them into Markdown tables with paired per-fold differences and patient-bootstrap intervals of
the pooled per-visit PRAUC difference. Hyper-parameters are chosen on validation patients only (the
teacher early-stops on them; logistic regression picks C on them; thresholds are tuned on them).

    python scripts/bench_teacher.py speed -w /tmp/tw-mimic3 --out bench/mimic3-speed.json
    python scripts/bench_teacher.py cv -w /tmp/tw-mimic3 --variants frequency,logreg,teacher-plain,teacher-graph --out-dir bench
    python scripts/bench_teacher.py curve -w /tmp/tw-eicu --variants logreg,teacher-fuse --out-dir bench
    python scripts/bench_teacher.py report bench/mimic3-*.json --reference logreg --ablation teacher-graph:teacher-plain
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

VARIANTS: dict[str, dict] = {
    # LoRA-tuned MiniLM, prompt only / with graph soft prompts (the ablation pair)
    "teacher-plain": dict(lora_r=8, graph_prompt=False),
    "teacher-graph": dict(lora_r=8, graph_prompt=True),
    "teacher-graph-fuse": dict(lora_r=8, graph_prompt=True, fuse_codes=True),
    "teacher-plain-fuse": dict(lora_r=8, graph_prompt=False, fuse_codes=True),
    # frozen backbone: pooled states cached once per cohort, only the head trains
    "teacher-frozen": dict(lora_r=0, graph_prompt=False),
    "teacher-fuse": dict(lora_r=0, graph_prompt=False, fuse_codes=True),
    "teacher-fuse-graph": dict(lora_r=0, graph_prompt=False, fuse_codes=True, fuse_graph=True),
    "teacher-frozen-graph": dict(lora_r=0, graph_prompt=True),
}
BASELINES = ("frequency", "logreg")


def _config(name: str, args, workspace: str):
    from kgrec.teacher import TeacherConfig

    over = {k: v for k, v in (("epochs", args.epochs), ("max_length", args.max_length), ("batch_size", args.batch_size),
                              ("lr", args.lr), ("head_lr", args.head_lr), ("soft_tokens", args.soft_tokens), ("history", args.history),
                              ("model", args.model), ("seed", args.seed)) if v is not None}
    return TeacherConfig(**{**VARIANTS[name], **over})


class Recording:
    """Wraps a recommender factory: records every ``predict_proba`` call (the last call per fit is the test part)."""

    def __init__(self, factory, frac: float = 1.0, seed: int = 0):
        self.factory, self.frac, self.seed = factory, frac, seed
        self.calls: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []

    def __call__(self, vocab):
        from kgrec.models.base import Recommender

        inner = self.factory(vocab)
        rec = self
        rec.calls.append([])
        calls = rec.calls[-1]

        class Wrapped(Recommender):
            name = inner.name

            def fit(self, cohort, train, val):
                if rec.frac < 1.0:  # learning curve: a patient subsample of the training part
                    pats = np.array(sorted(set(train.patient_id)))
                    rng = np.random.default_rng(rec.seed)
                    keep = set(rng.choice(pats, max(1, int(round(rec.frac * len(pats)))), replace=False))
                    train = train.subset([i for i, p in enumerate(train.patient_id) if p in keep])
                inner.fit(cohort, train, val)
                self.chosen = inner.chosen
                self.chosen["n_train_used"] = len(train)
                return self

            def predict_proba(self, cohort, samples):
                p = inner.predict_proba(cohort, samples)
                calls.append((np.asarray(samples.visit_idx), np.asarray(samples.patient_id), p))
                return p

        return Wrapped(vocab)


def _factory(name: str, args, workspace: str):
    if name in BASELINES:
        from kgrec.models import get_model

        return get_model(name)
    from kgrec.teacher import TeacherRecommender

    cfg = _config(name, args, workspace)
    return lambda vocab: TeacherRecommender(vocab, cfg, workspace=workspace, cache=False)


def _per_visit_prauc(cohort, vocab, rec: Recording) -> dict:
    from kgrec.metrics import per_visit

    index = {d: j for j, d in enumerate(vocab)}
    rows, pats, folds, ap = [], [], [], []
    for k, calls in enumerate(rec.calls):
        vidx, pid, proba = calls[-1]
        y = np.zeros_like(proba, dtype=bool)
        for i, r in enumerate(vidx):
            for d in cohort.visits["drugs"].iat[int(r)]:
                if d in index:
                    y[i, index[d]] = True
        ap += per_visit(y, proba, np.zeros_like(y))["prauc"].tolist()
        rows += [int(r) for r in vidx]
        pats += [str(p) for p in pid]
        folds += [k] * len(vidx)
    return {"visit_idx": rows, "patient_id": pats, "fold": folds, "prauc": ap}


def run_cv(args, fraction: float = 1.0, tag: str = "") -> list[Path]:
    from kgrec.api import load_cohort
    from kgrec.evaluation import evaluate_models

    cohort = load_cohort(args.workspace)
    vocab = cohort.vocab("drug")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in args.variants.split(","):
        path = out_dir / f"{args.dataset or cohort.source}-{name}{tag}.json"
        if path.exists() and not args.force:
            print(f"skip {path} (exists)", file=sys.stderr)
            written.append(path)
            continue
        rec = Recording(_factory(name, args, args.workspace), frac=fraction, seed=args.seed)
        t0 = time.perf_counter()
        res = evaluate_models(cohort, [(name, rec)], folds=args.folds, seed=args.seed, n_boot=0,
                              progress=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))
        ev = res.models[name]
        out = {
            "dataset": args.dataset or cohort.source, "variant": name, "fraction": fraction, "folds": args.folds, "seed": args.seed,
            "config": _config(name, args, args.workspace).to_json() if name not in BASELINES else None,
            "summary": ev.summary, "fold_results": [{k: v for k, v in f.items() if k != "intervals"} for f in ev.folds],
            "per_visit": _per_visit_prauc(cohort, vocab, rec), "seconds": round(time.perf_counter() - t0, 1),
        }
        path.write_text(json.dumps(out, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
        pr = ev.summary["metrics"]["prauc"]
        print(f"{name}{tag}: PRAUC {pr['mean']:.4f} ± {pr['std']:.4f} ({out['seconds']} s) -> {path}", file=sys.stderr, flush=True)
        written.append(path)
    return written


def run_curve(args) -> None:
    for frac in [float(f) for f in args.fractions.split(",")]:
        run_cv(args, fraction=frac, tag="" if frac == 1.0 else f"-frac{int(round(frac * 100))}")


def run_speed(args) -> None:
    """Seconds per training epoch and inference visits/s with the real backbone on the saved split."""
    import torch

    from kgrec.api import load_cohort
    from kgrec.cohort.samples import build_samples
    from kgrec.teacher import TeacherRecommender

    cohort = load_cohort(args.workspace)
    vocab = cohort.vocab("drug")
    sp = cohort.split
    train, val = build_samples(cohort, sp["train"]), build_samples(cohort, sp["val"])
    allv = build_samples(cohort)
    out = {"dataset": args.dataset or cohort.source, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg(), "n_train_visits": len(train), "n_eval_visits": len(allv), "runs": {}}
    for name in args.variants.split(","):
        cfg = _config(name, args, args.workspace)
        rec = TeacherRecommender(vocab, cfg, workspace=args.workspace, progress=True, cache=False)
        t0 = time.perf_counter()
        rec.fit(cohort, train, val)
        fit_s = time.perf_counter() - t0
        ids = rec._token_ids(cohort, allv)
        t0 = time.perf_counter()
        rec.predict_proba(cohort, allv)
        inf_s = time.perf_counter() - t0
        lens = np.array([len(t) for t in ids])
        out["runs"][name] = {
            "config": cfg.to_json(), "fit_seconds": round(fit_s, 1), "epochs": rec.log, "chosen": rec.chosen,
            "seconds_per_epoch": rec.chosen.get("seconds_per_epoch"), "train_visits_per_second": round(len(train) / rec.chosen["seconds_per_epoch"], 2) if rec.chosen.get("seconds_per_epoch") else None,
            "inference_seconds": round(inf_s, 2), "inference_visits_per_second": round(len(allv) / inf_s, 2),
            "prompt_tokens": {"mean": float(lens.mean()), "p50": float(np.median(lens)), "p90": float(np.percentile(lens, 90)), "max": int(lens.max())},
        }
        print(json.dumps({name: {k: v for k, v in out["runs"][name].items() if k not in ("config", "epochs")}}, indent=1, default=str), file=sys.stderr, flush=True)
    out["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))


# ---------------- report ----------------
def _bootstrap_diff(a: dict, b: dict, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean per-visit PRAUC difference a − b over all test visits (each patient once), patient-bootstrap 95%."""
    pa = {r: v for r, v in zip(a["visit_idx"], a["prauc"])}
    pb = {r: v for r, v in zip(b["visit_idx"], b["prauc"])}
    pat = {r: p for r, p in zip(a["visit_idx"], a["patient_id"])}
    rows = sorted(set(pa) & set(pb))
    d = np.array([pa[r] - pb[r] for r in rows])
    groups = np.array([pat[r] for r in rows])
    uniq, inv = np.unique(groups, return_inverse=True)
    sums = np.bincount(inv, weights=d, minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        draws.append(sums[pick].sum() / counts[pick].sum())
    return float(d.mean()), float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def report(paths: list[str], reference: str, ablations: list[str]) -> str:
    runs = {}
    for p in paths:
        r = json.loads(Path(p).read_text())
        runs[(r["dataset"], r["variant"], r.get("fraction", 1.0))] = r
    lines = []
    for ds in sorted({k[0] for k in runs}):
        full = {v: r for (d, v, f), r in runs.items() if d == ds and f == 1.0}
        if full:
            lines += [f"### {ds}: {next(iter(full.values()))['folds']}-fold patient-level CV (mean ± std over folds)", "",
                      "| model | PRAUC | Jaccard | F1 | DDI rate | #meds | fit s/fold |", "|---|---|---|---|---|---|---|"]
            for v, r in full.items():
                m = r["summary"]["metrics"]
                cell = lambda k: f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f}" if k in m else "–"  # noqa: E731
                fs = r["summary"].get("fit_seconds") or {}
                lines.append(f"| {v} | {cell('prauc')} | {cell('jaccard')} | {cell('f1')} | {cell('ddi_rate')} | {m['n_meds']['mean']:.1f} | {fs.get('mean', 0):.0f} |")
            pairs = [(v, reference) for v in full if v != reference and reference in full]
            pairs += [tuple(a.split(":")) for a in ablations if all(x in full for x in a.split(":"))]
            if pairs:
                lines += ["", "Paired differences (same folds; PRAUC; per-fold mean ± std, folds better, pooled per-visit difference with patient-bootstrap 95% interval):", "",
                          "| model − reference | PRAUC diff per fold | folds better | pooled diff [95% CI] | Jaccard diff per fold |", "|---|---|---|---|---|"]
                for a, b in pairs:
                    fa, fb = (np.array(full[x]["summary"]["metrics"]["prauc"]["folds"]) for x in (a, b))
                    ja, jb = (np.array(full[x]["summary"]["metrics"]["jaccard"]["folds"]) for x in (a, b))
                    d, dj = fa - fb, ja - jb
                    mean, lo, hi = _bootstrap_diff(full[a]["per_visit"], full[b]["per_visit"])
                    lines.append(f"| {a} − {b} | {d.mean():+.4f} ± {d.std(ddof=1):.4f} | {(d > 0).sum()}/{len(d)} | {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] | {dj.mean():+.4f} ± {dj.std(ddof=1):.4f} |")
            lines.append("")
        fracs = sorted({f for (d, v, f) in runs if d == ds})
        if len(fracs) > 1:
            variants = sorted({v for (d, v, f) in runs if d == ds and f < 1.0})
            lines += [f"### {ds}: learning curve (PRAUC, mean ± std over folds; share of each fold's training patients)", "",
                      "| model | " + " | ".join(f"{int(f * 100)}%" for f in fracs) + " |", "|---|" + "---|" * len(fracs)]
            for v in variants:
                cells = []
                for f in fracs:
                    r = runs.get((ds, v, f))
                    cells.append(f"{r['summary']['metrics']['prauc']['mean']:.4f} ± {r['summary']['metrics']['prauc']['std']:.4f}" if r else "–")
                lines.append(f"| {v} | " + " | ".join(cells) + " |")
            if reference in variants:
                for v in variants:
                    if v == reference:
                        continue
                    cells = []
                    for f in fracs:
                        a, b = runs.get((ds, v, f)), runs.get((ds, reference, f))
                        if a and b:
                            d = np.array(a["summary"]["metrics"]["prauc"]["folds"]) - np.array(b["summary"]["metrics"]["prauc"]["folds"])
                            cells.append(f"{d.mean():+.4f} ({(d > 0).sum()}/{len(d)})")
                        else:
                            cells.append("–")
                    lines.append(f"| {v} − {reference} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("speed", "cv", "curve"):
        p = sub.add_parser(cmd)
        p.add_argument("-w", "--workspace", required=True)
        p.add_argument("--dataset", default=None, help="label in the outputs (default: the cohort's source)")
        p.add_argument("--variants", default="teacher-plain" if cmd == "speed" else "frequency,logreg,teacher-plain,teacher-graph")
        p.add_argument("--folds", type=int, default=5)
        p.add_argument("--seed", type=int, default=42)
        for opt, typ in (("--epochs", int), ("--max-length", int), ("--batch-size", int), ("--lr", float), ("--head-lr", float),
                         ("--soft-tokens", int), ("--history", int), ("--model", str)):
            p.add_argument(opt, type=typ, default=None)
        p.add_argument("--force", action="store_true", help="re-run variants whose JSON exists")
        if cmd == "speed":
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--out-dir", default="bench")
        if cmd == "curve":
            p.add_argument("--fractions", default="0.25,0.5,0.75,1.0")
    p = sub.add_parser("report")
    p.add_argument("paths", nargs="+")
    p.add_argument("--reference", default="logreg")
    p.add_argument("--ablation", action="append", default=[], help="A:B pairs to difference (e.g. teacher-graph:teacher-plain)")
    args = ap.parse_args(argv)
    if args.cmd == "speed":
        run_speed(args)
    elif args.cmd == "cv":
        run_cv(args)
    elif args.cmd == "curve":
        run_curve(args)
    else:
        print(report(args.paths, args.reference, args.ablation))


if __name__ == "__main__":
    main()
