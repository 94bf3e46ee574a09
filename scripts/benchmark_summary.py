"""One markdown table from several `kgrec benchmark` reports (benchmark.json), for the README.

    python scripts/benchmark_summary.py WS1/reports/mimic3/benchmark.json WS2/reports/eicu/benchmark.json ...

Per dataset and model: PRAUC on the saved split with its patient-bootstrap 95% interval, K-fold mean ±
std, the paired per-fold difference against the reference (the best of kgrec's baselines and PyHealth's
models) with the folds where the model was better, Jaccard and F1 over the folds, training seconds and
inference speed on the saved split; a model that did not run gets its reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

NAMES = {"mimic3": "MIMIC-III demo", "eicu": "eICU demo", "synthea": "Synthea", "mimic4": "MIMIC-IV"}


def _ms(summary: dict, k: str) -> str:
    m = (summary.get("metrics") or {}).get(k)
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if m else "–"


def rows(path: Path) -> list[str]:
    b = json.loads(path.read_text())
    ref = (b.get("paired_differences") or {}).get("reference")
    paired = b.get("paired_differences") or {}
    ds = NAMES.get(b["dataset"], b["dataset"])
    out = []
    for name, row in b["models"].items():
        label = f"**{name}**" if name in ("teacher", "student") else name
        if row["status"] != "ok" or not row.get("split"):
            out.append(f"| {ds} | {label} | not run: {(row.get('reason') or row['status'])[:160]} | | | | | |")
            continue
        s = row["split"]
        ci = s.get("intervals", {}).get("prauc")
        split = f"{s['metrics']['prauc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        summ = (row.get("folds") or {}).get("summary") or {}
        if name == ref:
            delta = "reference"
        elif name in paired:
            d = paired[name]["prauc"]
            delta = f"{d['mean']:+.3f} ± {d['std']:.3f} ({d['n_better']}/{len(d['folds'])})"
        else:
            delta = "split only"
        train = s.get("train_seconds")
        tsec = "–" if train is None else f"{train:,.1f}"
        if (s.get("teacher_seconds") or 0) >= 1:  # the student trained its teacher itself (no teacher row before it)
            tsec += f" (+ teacher {s['teacher_seconds']:,.0f})"
        vps = s.get("visits_per_second")
        out.append(f"| {ds} | {label} | {split} | {_ms(summ, 'prauc')} | {delta} | {_ms(summ, 'jaccard')} | {tsec} | {'–' if not vps else f'{vps:,.0f}'} |")
    return out


def pivot(paths: list[Path]) -> list[str]:
    """Models as rows, datasets as columns: K-fold PRAUC with the paired difference against each
    dataset's reference; then training seconds and inference speed on the saved split."""
    bs = [json.loads(p.read_text()) for p in paths]
    names = [NAMES.get(b["dataset"], b["dataset"]) for b in bs]
    models = list(dict.fromkeys(m for b in bs for m in b["models"]))
    k = max((b.get("folds") or 0) for b in bs)
    out = ["| model | " + " | ".join(f"{n}: PRAUC {k}-fold | Δ vs best baseline" for n in names) + " |", "|---" * (1 + 2 * len(bs)) + "|"]
    for m in models:
        cells = [f"**{m}**" if m in ("teacher", "student") else m]
        for b in bs:
            row = b["models"].get(m) or {}
            summ = (row.get("folds") or {}).get("summary") or {}
            cells.append(_ms(summ, "prauc") if summ else (f"not run: {row.get('reason', '')[:60]}" if row.get("status") != "ok" else "split only"))
            pd = b.get("paired_differences") or {}
            if m == pd.get("reference"):
                cells.append("best baseline")
            elif m in pd:
                d = pd[m]["prauc"]
                cells.append(f"{d['mean']:+.3f} ± {d['std']:.3f} ({d['n_better']}/{len(d['folds'])})")
            else:
                cells.append("–")
        out.append("| " + " | ".join(cells) + " |")
    # kgrec's models against the best PyHealth model, fold by fold (the folds are the same for every model)
    out += ["", "| model | " + " | ".join(f"{n}: Δ PRAUC vs best PyHealth model" for n in names) + " |", "|---" * (1 + len(bs)) + "|"]
    for m in ("teacher", "student"):
        cells = [f"**{m}**"]
        for b in bs:
            per = {n: np.array([f["metrics"]["prauc"] for f in r["folds"]["per_fold"]]) for n, r in b["models"].items()
                   if (r.get("folds") or {}).get("per_fold") and not (r.get("folds") or {}).get("errors")}
            peers = [n for n, r in b["models"].items() if r["family"] == "pyhealth" and n in per]
            if m not in per or not peers:
                cells.append("–")
                continue
            best = max(peers, key=lambda n: per[n].mean())
            d = per[m] - per[best]
            cells.append(f"{d.mean():+.3f} ± {d.std(ddof=1):.3f} ({int((d > 0).sum())}/{len(d)}) vs {best}")
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| model | " + " | ".join(f"{n}: train s | infer visits/s" for n in names) + " |", "|---" * (1 + 2 * len(bs)) + "|"]
    for m in models:
        cells = [m]
        for b in bs:
            s = (b["models"].get(m) or {}).get("split") or {}
            t, v = s.get("train_seconds"), s.get("visits_per_second")
            cells += ["–" if t is None else f"{t:,.1f}", "–" if not v else f"{v:,.0f}"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", type=Path, nargs="+")
    ap.add_argument("--pivot", action="store_true", help="models as rows, datasets as columns (the README's tables)")
    args = ap.parse_args()
    if args.pivot:
        print("\n".join(pivot(args.reports)))
        return
    print("| dataset | model | PRAUC saved split [95% CI] | PRAUC 5-fold | ΔPRAUC vs best baseline (folds better) | Jaccard 5-fold | train s | infer visits/s |")
    print("|---|---|---|---|---|---|---|---|")
    for p in args.reports:
        for line in rows(p):
            print(line)
    for p in args.reports:
        b = json.loads(p.read_text())
        ref = (b.get("paired_differences") or {}).get("reference")
        print(f"\n{NAMES.get(b['dataset'], b['dataset'])}: reference `{ref}`; {b['cohort']['n_patients']} patients, "
              f"{b['cohort']['n_eval_visits']} target visits, {b['cohort']['n_test_visits']} test visits; benchmark {b['seconds']:.0f} s")


if __name__ == "__main__":
    main()
