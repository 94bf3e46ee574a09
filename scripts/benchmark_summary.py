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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", type=Path, nargs="+")
    args = ap.parse_args()
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
